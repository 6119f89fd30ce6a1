"""Quaternion helpers and the skinning of anchors and their Gaussians on top of core.body's LBS.

Pure functions: every buffer is an argument. Bone transforms come from `core.body.lbs` (the kinematics the
body model uses); here each anchor's posed position is interpolated from its triangle's skinned corners, so
an anchor lands exactly on the posed body surface, and its Gaussians follow the anchor's blended frame.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.body.lbs import axis_angle_to_matrix, skin_points
from core.raster.project import matrix_to_quat, quat_mul  # noqa: F401  (re-exported)
from core.raster.project import quat_to_rotmat as quat_to_matrix  # noqa: F401

__all__ = [
    "attach_to_anchors",
    "axis_angle_to_matrix",
    "axis_angle_to_quat",
    "matrix_to_quat",
    "matrix_to_rot6d",
    "quat_mul",
    "quat_to_matrix",
    "skin_anchors",
]


def matrix_to_rot6d(R: Tensor) -> Tensor:
    """[..., 3, 3] -> [..., 6]: the first two columns, a continuous rotation code for networks."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def axis_angle_to_quat(aa: Tensor) -> Tensor:
    """[..., 3] axis-angle -> [..., 4] unit wxyz (smooth at zero)."""
    half2 = (aa * aa).sum(-1, keepdim=True) / 4
    half = half2.clamp_min(1e-12).sqrt()
    small = half2 < 1e-8
    s = torch.where(small, 0.5 - half2 / 12, torch.sin(half) / (2 * half))
    c = torch.where(small, 1 - half2 / 2, torch.cos(half))
    return torch.cat([c, aa * s], -1)


def skin_anchors(
    support: Tensor,  # [U, 3] rest positions of the anchors' triangle corners (identity shape and expression applied)
    support_weights: Tensor,  # [U, J] their skinning weights
    T_world_bone: Tensor,  # [1, J, 4, 4] skinning transforms (core.body.lbs.pose_chain)
    corners: Tensor,  # [A, 3] int64 index into support of each anchor's triangle corners
    bary: Tensor,  # [A, 3] barycentric coordinates of each anchor
) -> tuple[Tensor, Tensor, Tensor]:
    """-> (rest anchors [A, 3], posed anchors [A, 3], blended linear frame of each anchor [A, 3, 3]).

    Posed anchors interpolate the skinned corners, i.e. they are the posed body surface at `bary`; skinning the
    interpolated point with interpolated weights would miss it by a second-order term near bent joints.
    """
    posed, linear = skin_points(support[None], support_weights, T_world_bone)  # [1, U, 3], [1, U, 3, 3]
    w = bary[..., None]  # [A, 3, 1]
    rest = (support[corners] * w).sum(-2)
    posed_anchor = (posed[0, corners] * w).sum(-2)
    frame = (linear[0, corners] * w[..., None]).sum(-3)  # [A, 3, 3], equal to the blend of interpolated weights
    return rest, posed_anchor, frame


def attach_to_anchors(
    points: Tensor,  # [A, K, 3] canonical points grouped by anchor
    rest_anchors: Tensor,  # [A, 3]
    posed_anchors: Tensor,  # [A, 3]
    frames: Tensor,  # [A, 3, 3] linear part each anchor's points follow
) -> Tensor:
    """Posed points [A, K, 3]: each point keeps its offset from its anchor, carried by the anchor's frame."""
    return posed_anchors[:, None, :] + (points - rest_anchors[:, None, :]) @ frames.transpose(-1, -2)
