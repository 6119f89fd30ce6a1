"""Linear blend skinning as pure functions: rotations, forward kinematics, skinning of vertices and points.

Every buffer is an argument, so each function is testable alone (gradcheck in float64 on a tiny rig).
Frames are named in variables: `T_world_bone` maps a point of the rest mesh to its posed world position
under one bone; `W_world_bone` is a bone's posed frame (its axes and head) in the world.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from core.constants import constant


def axis_angle_to_matrix(rotvec: Tensor) -> Tensor:
    """Rodrigues' formula, smooth at zero. rotvec: [..., 3] -> [..., 3, 3]."""
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)[..., None]  # [..., 1, 1]
    small = theta2 < 1e-8
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe2.sqrt()
    # sin(t)/t and (1-cos(t))/t^2 with their Taylor series near zero, so gradients stay finite at t=0.
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / safe2)
    skew, eye = _skew_tables(rotvec.device, rotvec.dtype)
    K = (rotvec @ skew).unflatten(-1, (3, 3))  # the cross-product matrix [v]x, one product (few kernels)
    return eye + a * K + b * (K @ K)


@functools.lru_cache(maxsize=16)
def _skew_tables(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """v [3] @ skew [3, 9] = [v]x row-major, and the identity; cached per device (copied once)."""
    skew = torch.zeros(3, 9, dtype=dtype)
    for (r, c), (k, sign) in {(0, 1): (2, -1), (0, 2): (1, 1), (1, 0): (2, 1), (1, 2): (0, -1),
                              (2, 0): (1, -1), (2, 1): (0, 1)}.items():  # fmt: skip
        skew[k, 3 * r + c] = sign
    return skew.to(device), torch.eye(3, dtype=dtype, device=device)


def rotation_about_axes(yaw: Tensor, pitch: Tensor) -> Tensor:
    """Rotation R_y(yaw) @ R_x(-pitch) in the y-up world: yaw>0 turns +z toward +x, pitch>0 turns +z up.

    yaw, pitch: [...] radians -> [..., 3, 3]. Written out (one sine, one cosine, a few products: it runs every
    frame, and Rodrigues' formula twice and a product took three times the launches).
    """
    angles = torch.stack([yaw, pitch], -1)  # [..., 2]
    (sy, sp), (cy, cp) = angles.sin().unbind(-1), angles.cos().unbind(-1)
    rows = [cy, -sy * sp, sy * cp, torch.zeros_like(yaw), cp, sp, -sy, -cy * sp, cy * cp]
    return torch.stack(rows, -1).unflatten(-1, (3, 3))


def apply_gaze(
    rotations: Tensor,  # [..., J, 3, 3] local bone rotations
    gaze: Tensor,  # [..., 2] (yaw, pitch) radians
    eye_joints: Tensor | Sequence[int],  # [n] the bones gaze turns (left and right eye)
) -> Tensor:
    """The one gaze rule: [..., J, 3, 3] with `rotation_about_axes(yaw, pitch)` composed onto each eye bone's own
    rotation (R_gaze @ R_bone). A copy; rotations are returned as they are when there are no eye bones."""
    if len(eye_joints) == 0:
        return rotations
    R_eye = rotation_about_axes(gaze[..., 0], gaze[..., 1])[..., None, :, :]  # [..., 1, 3, 3]
    out = rotations.clone()
    out[..., eye_joints, :, :] = R_eye @ rotations[..., eye_joints, :, :]
    return out


def special_procrustes(M: Tensor) -> Tensor:
    """The rotation nearest to M in Frobenius norm. M: [..., 3, 3] -> [..., 3, 3]. Through an SVD, so any M
    (also det M < 0); `polar_rotation` is the form for the model's paths (M near a rotation)."""
    U, _, Vh = torch.linalg.svd(M)
    det = torch.det(U @ Vh)
    D = torch.ones_like(M[..., 0])  # [..., 3]
    D = torch.cat([D[..., :2], det[..., None]], dim=-1)
    return (U * D[..., None, :]) @ Vh


def polar_rotation(M: Tensor, iters: int = 6) -> Tensor:
    """The rotation nearest to M [..., 3, 3] for det M > 0 (bone axes with a shape blend, blended skinning
    transforms: a rotation's neighbourhood), by Newton's polar iteration with determinant scaling (Higham),
    R <- (g R + R^-T / g) / 2 with g = |det R|^(-1/3), the inverse written out through the cofactors.

    The value `special_procrustes` gives (to float64 rounding once the singular values lie in [0.1, 10]), without
    an SVD, which waits for the device to check its result (no CUDA graph can hold it), and with a gradient
    where the SVD's is undefined (equal singular values, as at a rotation)."""
    R = M.double()
    for _ in range(iters):
        cof = torch.linalg.cross(R.roll(-1, dims=-2), R.roll(-2, dims=-2))  # rows b x c, c x a, a x b: det * R^-T
        det = (R[..., :1, :] * cof[..., :1, :]).sum(-1, keepdim=True)  # [..., 1, 1]
        g = det.abs().pow(-1.0 / 3.0)
        R = 0.5 * (g * R + cof / (g * det))
    return R.to(M.dtype)


def rigid(R: Tensor, t: Tensor) -> Tensor:
    """[..., 3, 3] rotation and [..., 3] translation -> [..., 4, 4] homogeneous transform."""
    top = torch.cat([R, t[..., None]], dim=-1)  # [..., 3, 4]
    bottom = constant((0.0, 0.0, 0.0, 1.0), top.dtype, top.device).expand(*top.shape[:-2], 1, 4)  # a cached row
    return torch.cat([top, bottom], dim=-2)


def kinematic_levels(parents: Sequence[int]) -> list[list[int]]:
    """Bones grouped by depth: [[root], [its children], ...]. parents[0] < 0 is the single root."""
    parents = [int(p) for p in parents]
    if not parents or parents[0] >= 0 or min(parents[1:], default=0) < 0:
        raise ValueError(f"parents must start with the single root (a negative index), got {parents[:8]}...")
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        if parents[j] >= j:
            raise ValueError(f"bones must be ordered parents first; bone {j} has parent {parents[j]}")
        depth[j] = depth[parents[j]] + 1
    levels: list[list[int]] = [[] for _ in range(max(depth) + 1)]
    for j, d in enumerate(depth):
        levels[d].append(j)
    return levels


@lru_cache(maxsize=32)
def _parent_indices(parents: tuple[int, ...], device: torch.device) -> Tensor:
    """Parent index per bone (root: itself), cached on the device."""
    kinematic_levels(parents)  # checks the order: parents first
    return torch.tensor([0, *parents[1:]], device=device)


@lru_cache(maxsize=32)
def _jump_indices(parents: tuple[int, ...], device: torch.device) -> tuple[Tensor, ...]:
    """For pointer jumping over the chain: at each doubling step, the entry each bone multiplies by (step 0: its
    parent; the root and the extra identity entry J point at J; step s + 1: that entry's own of step s), as many
    steps as reach the root from the deepest bone. Made once per device, not every pose."""
    J = len(parents)
    up = torch.tensor([J, *parents[1:], J])
    levels = len(kinematic_levels(parents))  # the deepest bone's path holds this many transforms
    steps = []
    for _ in range(math.ceil(math.log2(levels)) if levels > 1 else 0):
        steps.append(up.to(device))
        up = up[up]
    return tuple(steps)


@dataclass(frozen=True)
class RestChain:
    """The pose-independent half of forward kinematics for one set of rest bones (see `rest_chain`)."""

    U: Tensor  # [B, J, 3, 3] reference orientation of each bone
    U_parent_T: Tensor  # [B, J, 3, 3] transposed reference orientation of each bone's parent
    t_parent: Tensor  # [B, J, 3] the bone's head in its parent's reference frame
    R_rest_T: Tensor  # [B, J, 3, 3] transposed rest orientation (what the mesh was bound to)
    heads: Tensor  # [B, J, 3] rest bone heads


def rest_chain(
    rest_poses: Tensor,  # [B, J, 4, 4] or [J, 4, 4] bone frames (axes, head) of the rest mesh
    parents: Sequence[int],  # [J] parent index, -1 for the root
    ref_orients: Tensor | None = None,  # [J, 3, 3] reference bone axes; None: the rest axes
) -> RestChain:
    """What `batch_rigid_transform` needs from the rest bones; compute it once per identity, pose many times."""
    if rest_poses.dim() == 3:
        rest_poses = rest_poses[None]
    B, J = rest_poses.shape[:2]
    if rest_poses.shape != (B, J, 4, 4):
        raise ValueError(f"rest_poses: expected [B, J, 4, 4] or [J, 4, 4], got {tuple(rest_poses.shape)}")
    if len(parents) != J:
        raise ValueError(f"parents has {len(parents)} entries but rest_poses has J={J} bones")
    R = rest_poses[..., :3, :3]  # [B, J, 3, 3]
    h = rest_poses[..., :3, 3]  # [B, J, 3]
    U = R if ref_orients is None else ref_orients.expand(B, J, 3, 3)
    par = _parent_indices(tuple(int(p) for p in parents), rest_poses.device)
    A = U @ R.transpose(-1, -2)  # [B, J, 3, 3] rest -> reference rotation of each bone
    A = torch.cat([torch.eye(3, dtype=A.dtype, device=A.device).expand(B, 1, 3, 3), A[:, 1:]], dim=1)
    offsets = (A[:, par] @ (h - h[:, par])[..., None])[..., 0]  # [B, J, 3] reference head offsets
    U_pt = U[:, par].transpose(-1, -2)  # [B, J, 3, 3]
    return RestChain(
        U=U, U_parent_T=U_pt, t_parent=(U_pt @ offsets[..., None])[..., 0], R_rest_T=R.transpose(-1, -2), heads=h
    )


def pose_chain(
    rot_local: Tensor,  # [B, J, 3, 3] per-bone rotations in world-aligned axes, applied at the bone's reference pose
    chain: RestChain,  # from `rest_chain`, batch B or 1
    parents: Sequence[int],  # [J] parent index, -1 for the root
    root_position: Tensor,  # [B, 3] where the root's head goes (reference position + translation)
) -> tuple[Tensor, Tensor]:
    """The per-pose half of `batch_rigid_transform` -> (T_world_bone [B, J, 4, 4], W_world_bone [B, J, 4, 4])."""
    B, J = rot_local.shape[:2]
    if rot_local.shape != (B, J, 3, 3):
        raise ValueError(f"rot_local: expected [B, J, 3, 3], got {tuple(rot_local.shape)}")
    if chain.U.shape[1] != J:
        raise ValueError(f"the rest chain has {chain.U.shape[1]} bones but rot_local has J={J}")
    jumps = _jump_indices(tuple(int(p) for p in parents), rot_local.device)
    U = chain.U
    K = rigid(chain.U_parent_T @ rot_local @ U, chain.t_parent.expand(B, J, 3))  # [B, J, 4, 4] parent -> child
    W0 = rigid(rot_local[:, 0] @ U[:, 0], root_position)  # [B, 4, 4]
    # W_c = W_root K_.. K_c along the path from the root, by pointer jumping: after step s every bone holds the
    # product of the 2^s transforms above it (log2(depth) steps instead of one per depth level). Index J is an
    # identity that the root and finished bones point at.
    eye = torch.eye(4, dtype=K.dtype, device=K.device).expand(B, 1, 4, 4)
    W_all = torch.cat([W0[:, None], K[:, 1:], eye], 1)  # [B, J + 1, 4, 4]
    for up in jumps:
        W_all = W_all[:, up] @ W_all
    W_all = W_all[:, :J]
    R_T = W_all[..., :3, :3] @ chain.R_rest_T  # [B, J, 3, 3]
    T = rigid(R_T, W_all[..., :3, 3] - (R_T @ chain.heads[..., None])[..., 0])
    return T, W_all


def batch_rigid_transform(
    rot_local: Tensor,  # [B, J, 3, 3] per-bone rotations in world-aligned axes, applied at the bone's reference pose
    rest_poses: Tensor,  # [B, J, 4, 4] or [J, 4, 4] bone frames (axes, head) of the rest mesh
    parents: Sequence[int],  # [J] parent index, -1 for the root
    root_position: Tensor,  # [B, 3] where the root's head goes (reference position + translation)
    ref_orients: Tensor | None = None,  # [J, 3, 3] reference bone axes; None: the rest axes
) -> tuple[Tensor, Tensor]:
    """Forward kinematics -> (T_world_bone [B, J, 4, 4] skinning transforms, W_world_bone [B, J, 4, 4] bone frames).

    With identity rotations every bone takes its reference orientation U_c, carrying its descendants about
    its head; the rest orientation R_c is what the rest mesh was bound to. For a bone c of parent p:
        W_c = W_p [U_p^T D_c U_c | U_p^T A_p (h_c - h_p)],  A_p = U_p R_p^T (A_root = I),
        W_root = [D_root U_root | root_position],  T_c = W_c P_c^-1 with P_c = [R_c | h_c].
    With ref_orients=None and identity rest axes this is the SMPL kinematic chain about joints h.
    `rest_chain` + `pose_chain` split it for callers that pose one rest skeleton many times.
    """
    B, J = rot_local.shape[:2]
    if rot_local.shape != (B, J, 3, 3):
        raise ValueError(f"rot_local: expected [B, J, 3, 3], got {tuple(rot_local.shape)}")
    if len(parents) != J:
        raise ValueError(f"parents has {len(parents)} entries but rot_local has J={J} bones")
    if rest_poses.dim() == 3:
        rest_poses = rest_poses.expand(B, J, 4, 4)
    if rest_poses.shape != (B, J, 4, 4):
        raise ValueError(f"rest_poses: expected [B, J, 4, 4] or [J, 4, 4], got {tuple(rest_poses.shape)}")
    return pose_chain(rot_local, rest_chain(rest_poses, parents, ref_orients), parents, root_position)


def lbs(
    vertices: Tensor,  # [B, V, 3] rest positions (shape and expression applied)
    weights: Tensor,  # [V, J] skinning weights, rows summing to 1
    T_world_bone: Tensor,  # [B, J, 4, 4]
) -> Tensor:
    """Linear blend skinning -> posed vertices [B, V, 3]."""
    return skin_points(vertices, weights, T_world_bone)[0]


def skin_points(
    points: Tensor,  # [B, P, 3] or [P, 3] rest positions
    weights: Tensor,  # [P, J] or [B, P, J] skinning weights per point
    T_world_bone: Tensor,  # [B, J, 4, 4]
) -> tuple[Tensor, Tensor]:
    """Skin arbitrary points -> (posed points [B, P, 3], blended linear parts [B, P, 3, 3]).

    The blended 3x3 carries each point's frame (e.g. a Gaussian's rotation and scale) along; it is a rotation
    only where one bone dominates, so callers that need a rotation orthonormalise it (special_procrustes).
    """
    B = T_world_bone.shape[0]
    if points.dim() == 2:
        points = points.expand(B, *points.shape)
    if points.shape[0] != B or points.shape[-1] != 3:
        raise ValueError(f"points: expected [B={B}, P, 3], got {tuple(points.shape)}")
    if weights.shape[-2] != points.shape[1] or weights.shape[-1] != T_world_bone.shape[1]:
        raise ValueError(
            f"weights: expected [P={points.shape[1]}, J={T_world_bone.shape[1]}], got {tuple(weights.shape)}"
        )
    J = T_world_bone.shape[1]
    flat = T_world_bone[:, :, :3, :].reshape(B, J, 12)  # [B, J, 12]
    blend = (weights @ flat).reshape(B, -1, 3, 4)  # [B, P, 3, 4]; weights [P, J] or [B, P, J]
    # Broadcast multiply-sum: much faster than P tiny batched 3x3 matmuls.
    posed = (blend[..., :3] * points[..., None, :]).sum(-1) + blend[..., 3]
    return posed, blend[..., :3]


def dense_weights(indices: Tensor, values: Tensor, num_bones: int) -> Tensor:
    """Top-k skinning weights (indices [V, k] int, values [V, k]) -> dense [V, J]."""
    out = torch.zeros(indices.shape[0], num_bones, dtype=values.dtype, device=values.device)
    return out.scatter_add_(1, indices.long(), values)
