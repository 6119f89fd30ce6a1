"""Decoder heads on geometry features: canonical (once per identity), pose-conditioned (per frame), single-branch.

Each anchor expands to K Gaussians. Raw network outputs are turned into bounded attributes by the pure
`decode_*` functions, so tests and the training code can call them alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.constants import constant
from core.model.skinning import axis_angle_to_quat, matrix_to_rot6d
from core.raster.types import PART_NAMES

CANONICAL_CHANNELS = 3 + 3 + 1 + 4 + 3 + len(PART_NAMES) + 3  # albedo, offset, opacity, quat, scale, parts, transfer
DELTA_CHANNELS = 3 + 3 + 3 + 3  # colour, position, rotation (axis-angle), log-scale


@dataclass(frozen=True)
class CanonicalGaussians:
    """Per-identity Gaussians in the canonical (rest) frame, grouped by anchor: leading dims [..., A, K]."""

    offsets: Tensor  # [..., A, K, 3] position relative to the anchor (metres)
    albedo: Tensor  # [..., A, K, 3] in [0, 1]
    opacity_logits: Tensor  # [..., A, K]
    quats: Tensor  # [..., A, K, 4] unit wxyz
    log_scales: Tensor  # [..., A, K, 3]
    part_logits: Tensor  # [..., A, K, P]
    transfer: Tensor  # [..., A, K, 3] degree-1 radiance transfer (canonical frame)


@dataclass(frozen=True)
class PoseDeltas:
    """Per-frame corrections added to the canonical Gaussians (no opacity delta)."""

    colour: Tensor  # [..., A, K, 3]
    offsets: Tensor  # [..., A, K, 3] metres
    quats: Tensor  # [..., A, K, 4] unit wxyz rotation applied after the canonical one
    log_scales: Tensor  # [..., A, K, 3]


def part_prior(anchor_parts: Tensor) -> Tensor:
    """[A] int64 prior part label of each anchor -> the logits [A, 1, P] the canonical part logits start from."""
    return F.one_hot(anchor_parts, len(PART_NAMES)).float()[:, None, :] * 4.0


def decode_canonical(
    raw: Tensor,  # [..., A, K, CANONICAL_CHANNELS]
    normals: Tensor,  # [A, 3] anchor normals (transfer prior)
    prior: Tensor,  # [A, 1, P] part logits of each anchor's prior label (`part_prior`; precomputed, a constant)
    *,
    max_offset: float,
    base_log_scale: float,
) -> CanonicalGaussians:
    albedo, off, opa, quat, scale, parts, transfer = raw.split([3, 3, 1, 4, 3, len(PART_NAMES), 3], dim=-1)
    return CanonicalGaussians(
        offsets=max_offset * torch.tanh(off),
        albedo=torch.sigmoid(albedo),
        opacity_logits=opa[..., 0] + 2.0,
        quats=F.normalize(quat + constant((1.0, 0.0, 0.0, 0.0), raw.dtype, raw.device), dim=-1),  # about the identity
        log_scales=base_log_scale + scale,
        part_logits=parts + prior.to(raw.dtype),
        transfer=normals[:, None, :] + transfer,
    )


def decode_deltas(raw: Tensor, zero: Tensor, *, max_offset: float) -> PoseDeltas:
    """raw, zero [..., A, K, DELTA_CHANNELS]: the head at this frame's pose and at the zero pose.

    Bounded outputs minus their zero-pose values: the zero pose/expression/gaze gives exactly no change.
    """

    # every channel is bounded by tanh (colour, rotation and scale to +-0.5, offsets to +-max_offset); one
    # difference of the whole tensor, then the scales (few kernels per frame)
    c, p, r, s = (torch.tanh(raw) - torch.tanh(zero)).split(3, dim=-1)
    return PoseDeltas(colour=0.5 * c, offsets=max_offset * p, quats=axis_angle_to_quat(0.5 * r), log_scales=0.5 * s)


def pose_code(R_local: Tensor) -> Tensor:
    """[..., J, 3, 3] local bone rotations -> [..., J, 6] zero at the rest pose."""
    eye = torch.eye(3, dtype=R_local.dtype, device=R_local.device)
    return matrix_to_rot6d(R_local) - matrix_to_rot6d(eye)


class PoseEncoder(nn.Module):
    """Per-anchor pose feature: per-joint embeddings blended by the anchor's skinning weights, plus a global
    expression-and-gaze embedding. Locality comes from the weights, so a wrist twist changes the hand's tokens."""

    def __init__(self, num_joints: int, num_expressions: int, hidden: int) -> None:
        super().__init__()
        self.joint_weight = nn.Parameter(torch.randn(num_joints, 6, hidden) / math.sqrt(6))
        self.joint_bias = nn.Parameter(torch.zeros(num_joints, hidden))
        self.face = nn.Linear(num_expressions + 2, hidden)

    def forward(
        self,
        code: Tensor,  # [..., J, 6] pose_code of the frame(s)
        expression: Tensor,  # [..., E]
        gaze: Tensor,  # [..., 2]
        weights: Tensor,  # [A, J] skinning weights of the anchors (or nodes) to condition
    ) -> Tensor:
        """-> [..., A, h]: one frame ([J, 6], [E], [2]) or a batch of frames with the same leading dims."""
        if code.dim() == 2:
            joint = torch.einsum("jc,jch->jh", code, self.joint_weight) + self.joint_bias  # [J, h]
            return weights @ joint + self.face(torch.cat([expression, gaze], -1))  # [A, h]
        joint = torch.einsum("...jc,jch->...jh", code, self.joint_weight) + self.joint_bias  # [..., J, h]
        return weights @ joint + self.face(torch.cat([expression, gaze], -1))[..., None, :]  # [..., A, h]


class ConditionedMLP(nn.Module):
    """out = MLP(in_proj(feature) + condition); `in_proj(feature)` is cached once per identity."""

    def __init__(self, dim: int, hidden: int, out: int, *, zero_last: bool = False) -> None:
        super().__init__()
        self.in_proj = nn.Linear(dim, hidden)
        self.mid = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, out)
        if zero_last:
            nn.init.normal_(self.out.weight, std=1e-3)
            nn.init.zeros_(self.out.bias)

    def forward(self, proj: Tensor, condition: Tensor | None = None) -> Tensor:
        """proj [..., A, h] = in_proj(features); condition [..., A, h] or None -> [..., A, out]."""
        h = proj if condition is None else proj + condition
        return self.out(F.gelu(self.mid(F.gelu(h))))


class CanonicalHead(nn.Module):
    """Geometry feature -> K canonical Gaussians per anchor (raw channels; see `decode_canonical`)."""

    def __init__(self, dim: int, hidden: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.mlp = ConditionedMLP(dim, hidden, k * CANONICAL_CHANNELS)
        nn.init.normal_(self.mlp.out.weight, std=1e-2)
        nn.init.zeros_(self.mlp.out.bias)

    def forward(self, features: Tensor) -> Tensor:
        """features [..., A, D] -> raw [..., A, K, CANONICAL_CHANNELS]."""
        return self.mlp(self.mlp.in_proj(features)).unflatten(-1, (self.k, CANONICAL_CHANNELS))
