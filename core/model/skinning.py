"""Rotation helpers, level-batched forward kinematics and linear blend skinning of anchors and Gaussians.

Pure functions: every buffer is an argument. Transforms are named by frame; `T_skin` maps a canonical
(rest-pose) point to its posed world position for one bone (`T_world_bone @ inv(T_world_bone_rest)`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def axis_angle_to_matrix(aa: Tensor) -> Tensor:
    """[..., 3] axis-angle (radians) -> [..., 3, 3] rotation matrices (Rodrigues; smooth at zero)."""
    theta2 = (aa * aa).sum(-1, keepdim=True).unsqueeze(-1)  # [..., 1, 1]
    theta = theta2.clamp_min(1e-12).sqrt()
    small = theta2 < 1e-8
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    Kx = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(Kx)
    return eye + a * Kx + b * (Kx @ Kx)


def matrix_to_rot6d(R: Tensor) -> Tensor:
    """[..., 3, 3] -> [..., 6]: the first two columns, a continuous rotation code for networks."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def quat_to_matrix(q: Tensor) -> Tensor:
    """[..., 4] wxyz (any norm) -> [..., 3, 3]."""
    q = F.normalize(q, dim=-1)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(R: Tensor) -> Tensor:
    """[..., 3, 3] (near-)rotation -> [..., 4] unit wxyz with w >= 0 (branch-free Shepperd form)."""
    m = R
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate (unnormalised) quaternions; pick the best-conditioned one per element.
    cands = torch.stack(
        [
            torch.stack(
                [1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1
            ),
            torch.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    1 + 2 * m[..., 0, 0] - tr,
                    m[..., 0, 1] + m[..., 1, 0],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 0, 1] + m[..., 1, 0],
                    1 + 2 * m[..., 1, 1] - tr,
                    m[..., 1, 2] + m[..., 2, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 1, 2] + m[..., 2, 1],
                    1 + 2 * m[..., 2, 2] - tr,
                ],
                -1,
            ),
        ],
        -2,
    )  # [..., 4 candidates, 4]
    diag = torch.stack([tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = diag.argmax(-1, keepdim=True)  # [..., 1]
    q = torch.gather(cands, -2, best.unsqueeze(-1).expand(*best.shape, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_mul(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a*b of [..., 4] wxyz quaternions (rotation b first, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


def axis_angle_to_quat(aa: Tensor) -> Tensor:
    """[..., 3] axis-angle -> [..., 4] unit wxyz (smooth at zero)."""
    half2 = (aa * aa).sum(-1, keepdim=True) / 4
    half = half2.clamp_min(1e-12).sqrt()
    small = half2 < 1e-8
    s = torch.where(small, 0.5 - half2 / 12, torch.sin(half) / (2 * half))
    c = torch.where(small, 1 - half2 / 2, torch.cos(half))
    return torch.cat([c, aa * s], -1)


def gaze_to_matrix(gaze: Tensor) -> Tensor:
    """[..., 2] (yaw about +y, pitch about +x) radians -> [..., 3, 3] eye rotation R_y(yaw) @ R_x(pitch)."""
    yaw, pitch = gaze.unbind(-1)
    zero = torch.zeros_like(yaw)
    ry = torch.stack([zero, yaw, zero], -1)
    rx = torch.stack([pitch, zero, zero], -1)
    return axis_angle_to_matrix(ry) @ axis_angle_to_matrix(rx)


def kinematic_levels(parents: tuple[int, ...]) -> list[list[int]]:
    """Group joints by depth in the tree so forward kinematics runs one batched matmul per level."""
    depth: list[int] = []
    for j, p in enumerate(parents):
        if p >= j:
            raise ValueError(f"parents must list every joint after its parent; joint {j} has parent {p}")
        depth.append(0 if p < 0 else depth[p] + 1)
    levels: list[list[int]] = [[] for _ in range(max(depth) + 1)] if depth else []
    for j, d in enumerate(depth):
        levels[d].append(j)
    return levels


_INDEX_CACHE: dict[tuple, dict] = {}


def _index_cache(parents: tuple[int, ...], levels: list[list[int]], device: torch.device) -> dict:
    """Index tensors of the kinematic tree on `device`, built once (no host-to-device copies per frame)."""
    key = (tuple(parents), str(device))
    if key not in _INDEX_CACHE:
        _INDEX_CACHE[key] = {
            "is_root": torch.tensor([p < 0 for p in parents], device=device)[:, None],
            "par": torch.tensor([max(p, 0) for p in parents], device=device),
            "levels": [
                (torch.tensor(lvl, device=device), torch.tensor([max(parents[j], 0) for j in lvl], device=device))
                for lvl in levels
            ],
        }
    return _INDEX_CACHE[key]


def forward_kinematics(
    R_local: Tensor,  # [..., J, 3, 3] rotation of each bone relative to its rest orientation in its parent
    rest_joints: Tensor,  # [..., J, 3] rest-pose joint positions (canonical frame)
    parents: tuple[int, ...],
    levels: list[list[int]] | None = None,
) -> Tensor:
    """Skinning transforms [..., J, 4, 4]: canonical point -> posed point, for each bone (root at the origin)."""
    J = R_local.shape[-3]
    if len(parents) != J:
        raise ValueError(f"forward_kinematics: {J} rotations but {len(parents)} parents")
    levels = levels if levels is not None else kinematic_levels(parents)
    lead = R_local.shape[:-3]
    dev = R_local.device
    cache = _index_cache(parents, levels, dev)
    rel = rest_joints - torch.where(cache["is_root"], torch.zeros_like(rest_joints), rest_joints[..., cache["par"], :])
    R_world = torch.empty(*lead, J, 3, 3, dtype=R_local.dtype, device=dev)
    p_world = torch.empty(*lead, J, 3, dtype=R_local.dtype, device=dev)
    for lvl, (idx, pi) in enumerate(cache["levels"]):
        if lvl == 0:  # roots
            R_world[..., idx, :, :] = R_local[..., idx, :, :]
            p_world[..., idx, :] = rest_joints[..., idx, :]
            continue
        Rp = R_world[..., pi, :, :]
        R_world[..., idx, :, :] = Rp @ R_local[..., idx, :, :]
        p_world[..., idx, :] = p_world[..., pi, :] + (Rp @ rel[..., idx, :, None])[..., 0]
    # T_skin = [R_world, p_world - R_world @ rest_joint]
    t = p_world - (R_world @ rest_joints[..., None])[..., 0]
    T = torch.zeros(*lead, J, 4, 4, dtype=R_local.dtype, device=R_local.device)
    T[..., :3, :3] = R_world
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def blend_transforms(
    weights: Tensor,  # [A, J] skinning weights (rows sum to 1)
    T_skin: Tensor,  # [..., J, 4, 4]
) -> Tensor:
    """Linear blend of bone transforms per anchor -> [..., A, 3, 4] (the affine part only)."""
    flat = T_skin[..., :3, :].flatten(-2)  # [..., J, 12]
    return (weights @ flat).unflatten(-1, (3, 4))  # [..., A, 3, 4]


def skin_points(
    points: Tensor,  # [..., A, K, 3] canonical points grouped by the anchor whose weights they inherit
    T_anchor: Tensor,  # [..., A, 3, 4] blended skinning transform per anchor
) -> Tensor:
    """Apply each anchor's blended transform to its K points -> [..., A, K, 3]."""
    R = T_anchor[..., :3]  # [..., A, 3, 3]
    t = T_anchor[..., 3]  # [..., A, 3]
    return points @ R.transpose(-1, -2) + t.unsqueeze(-2)
