"""Pure maths of splat projection: rotations, 3D covariances, world->camera, EWA to 2D, conics, radii.

Conventions follow gsplat's pinhole path (OpenCV camera, pixel centres at +0.5) so the torch reference and
the CUDA kernels agree to float precision.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0  # alphas below this are skipped when compositing
MAX_EXTENT_SIGMAS = 3.33  # beyond 3.33 sigma even opacity 1 falls below ALPHA_THRESHOLD (exp(-3.33^2/2) < 1/255)


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Quaternions (w, x, y, z) [..., 4], any non-zero length -> rotation matrices [..., 3, 3]."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    R = torch.stack(
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
        dim=-1,
    )
    return R.reshape(*quats.shape[:-1], 3, 3)


def covariance_3d(
    quats: Tensor,  # [..., G, 4] wxyz
    scales: Tensor,  # [..., G, 3] standard deviations along the local axes
) -> Tensor:  # [..., G, 3, 3]
    """Sigma = R S S^T R^T."""
    M = quat_to_rotmat(quats) * scales.unsqueeze(-2)  # [..., G, 3, 3] = R @ diag(s)
    return M @ M.transpose(-1, -2)


def world_to_camera(
    means: Tensor,  # [G, 3] world positions
    covs: Tensor,  # [G, 3, 3] world covariances
    T_cam_world: Tensor,  # [..., 4, 4]
) -> tuple[Tensor, Tensor]:  # means_c [..., G, 3], covs_c [..., G, 3, 3]
    R = T_cam_world[..., :3, :3]
    t = T_cam_world[..., :3, 3]
    means_c = means @ R.transpose(-1, -2) + t.unsqueeze(-2)
    Rg = R.unsqueeze(-3)  # [..., 1, 3, 3]
    covs_c = Rg @ covs @ Rg.transpose(-1, -2)
    return means_c, covs_c


def project_ewa(
    means_c: Tensor,  # [..., G, 3] camera-frame positions (z > 0 in front)
    covs_c: Tensor,  # [..., G, 3, 3] camera-frame covariances
    K: Tensor,  # [..., 3, 3] intrinsics (batch dims broadcast against those of means_c)
    width: int,
    height: int,
) -> tuple[Tensor, Tensor]:  # means2d [..., G, 2] pixels, cov2d [..., G, 2, 2]
    """Pinhole projection of the mean and first-order (EWA) projection of the covariance.

    The Jacobian is evaluated at a point whose x/z and y/z are clamped to 1.3x the half field of view,
    as 3DGS and gsplat do, so splats far outside the frustum do not get absurdly stretched footprints.
    """
    fx, fy = K[..., 0, 0].unsqueeze(-1), K[..., 1, 1].unsqueeze(-1)  # [..., 1]
    cx, cy = K[..., 0, 2].unsqueeze(-1), K[..., 1, 2].unsqueeze(-1)
    x, y, z = means_c.unbind(-1)  # [..., G]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    rz = 1.0 / z
    tx = z * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x * rz))
    ty = z * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y * rz))
    zero = torch.zeros_like(z)
    J = torch.stack(
        [fx * rz, zero, -fx * tx * rz * rz, zero, fy * rz, -fy * ty * rz * rz],
        dim=-1,
    ).reshape(*z.shape, 2, 3)  # [..., G, 2, 3]
    cov2d = J @ covs_c @ J.transpose(-1, -2)
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)
    return means2d, cov2d


def add_blur(cov2d: Tensor, eps2d: float = 0.3) -> Tensor:
    """Low-pass filter: dilate every footprint by `eps2d` px^2 (gsplat's eps2d) so none is thinner than a pixel."""
    return cov2d + eps2d * torch.eye(2, dtype=cov2d.dtype, device=cov2d.device)


def conic_from_cov2d(cov2d: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse 2D covariance packed as (a, b, c) [..., G, 3] with d^T Sigma^-1 d = a dx^2 + 2 b dx dy + c dy^2,
    and the determinant [..., G] (<= 0 marks a degenerate footprint)."""
    a, b, c = cov2d[..., 0, 0], 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0]), cov2d[..., 1, 1]
    det = a * c - b * b
    inv_det = 1.0 / det.clamp_min(1e-12)
    return torch.stack([c * inv_det, -b * inv_det, a * inv_det], dim=-1), det


def extent_sigmas(opacities: Tensor, alpha_threshold: float = ALPHA_THRESHOLD) -> Tensor:
    """How many sigmas out a splat of this opacity still reaches `alpha_threshold`, capped at 3.33 [..., G].

    With this bound the tile cull is lossless: every pixel outside the box would be skipped anyway.
    """
    ratio = (opacities / alpha_threshold).clamp_min(1.0)
    return torch.sqrt(2.0 * torch.log(ratio)).clamp_max(MAX_EXTENT_SIGMAS)


@torch.no_grad()
def pixel_radius(
    cov2d: Tensor,  # [..., G, 2, 2] (already blurred)
    opacities: Tensor | None = None,  # [..., G]; None -> plain 3-sigma box
    sigmas: float = 3.0,
) -> Tensor:  # [..., G, 2] int32 half sizes (x, y) of the axis-aligned box, in pixels
    """Half-size of the pixel box around the projected mean that holds the footprint (3 sigma by default,
    tightened/extended to the opacity-aware extent when opacities are given)."""
    if opacities is None:
        k = torch.full_like(cov2d[..., 0, 0], float(sigmas))
    else:
        k = extent_sigmas(opacities)
    sx = cov2d[..., 0, 0].clamp_min(0.0).sqrt()
    sy = cov2d[..., 1, 1].clamp_min(0.0).sqrt()
    return torch.stack([torch.ceil(k * sx), torch.ceil(k * sy)], dim=-1).to(torch.int32)


def focal_from_fov(fov_deg: float, size: int) -> float:
    """Focal length in pixels for a field of view of `fov_deg` across `size` pixels."""
    return 0.5 * size / math.tan(math.radians(fov_deg) / 2)


def _quat_tables() -> tuple[Tensor, Tensor, Tensor]:
    """Constant maps that turn the quaternion maths into a few matrix products (few kernels per call):
    rotation matrix entries -> Shepperd's four candidates and their conditioning, and the Hamilton product."""
    W = torch.zeros(9, 20, dtype=torch.float64)  # m (row-major) -> 4 candidates x 4 + 4 diagonal terms
    bias = torch.zeros(20, dtype=torch.float64)

    def m(r: int, c: int) -> int:
        return 3 * r + c

    rows = [  # each candidate's four components as ({entry: weight}, constant); tr = m00 + m11 + m22
        [({m(0, 0): 1, m(1, 1): 1, m(2, 2): 1}, 1), ({m(2, 1): 1, m(1, 2): -1}, 0),
         ({m(0, 2): 1, m(2, 0): -1}, 0), ({m(1, 0): 1, m(0, 1): -1}, 0)],
        [({m(2, 1): 1, m(1, 2): -1}, 0), ({m(0, 0): 1, m(1, 1): -1, m(2, 2): -1}, 1),
         ({m(0, 1): 1, m(1, 0): 1}, 0), ({m(0, 2): 1, m(2, 0): 1}, 0)],
        [({m(0, 2): 1, m(2, 0): -1}, 0), ({m(0, 1): 1, m(1, 0): 1}, 0),
         ({m(1, 1): 1, m(0, 0): -1, m(2, 2): -1}, 1), ({m(1, 2): 1, m(2, 1): 1}, 0)],
        [({m(1, 0): 1, m(0, 1): -1}, 0), ({m(0, 2): 1, m(2, 0): 1}, 0),
         ({m(1, 2): 1, m(2, 1): 1}, 0), ({m(2, 2): 1, m(0, 0): -1, m(1, 1): -1}, 1)],
    ]  # fmt: skip
    for ci, cand in enumerate(rows):
        for j, (terms, const) in enumerate(cand):
            for k, w in terms.items():
                W[k, 4 * ci + j] = w
            bias[4 * ci + j] = const
    for j, terms in enumerate(({m(0, 0): 1, m(1, 1): 1, m(2, 2): 1}, {m(0, 0): 1}, {m(1, 1): 1}, {m(2, 2): 1})):
        for k, w in terms.items():
            W[k, 16 + j] = w
    H = torch.zeros(4, 4, 4, dtype=torch.float64)  # (a b)_i = sum_jk H[j, k, i] a_j b_k, wxyz
    for i, j, k, sign in (
        (0, 0, 0, 1), (0, 1, 1, -1), (0, 2, 2, -1), (0, 3, 3, -1),
        (1, 0, 1, 1), (1, 1, 0, 1), (1, 2, 3, 1), (1, 3, 2, -1),
        (2, 0, 2, 1), (2, 1, 3, -1), (2, 2, 0, 1), (2, 3, 1, 1),
        (3, 0, 3, 1), (3, 1, 2, 1), (3, 2, 1, -1), (3, 3, 0, 1),
    ):  # fmt: skip
        H[j, k, i] = sign
    return W, bias, H.reshape(16, 4)


_QUAT_TABLES = _quat_tables()


@functools.lru_cache(maxsize=16)
def _tables_on(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    # Cached per device: the first call copies them (before any CUDA-graph capture, which warms up first).
    return tuple(t.to(device=device, dtype=dtype) for t in _QUAT_TABLES)


def matrix_to_quat(R: Tensor) -> Tensor:
    """[..., 3, 3] (near-)rotation -> [..., 4] unit wxyz with w >= 0 (branch-free Shepperd form)."""
    W, bias, _ = _tables_on(R.device, R.dtype)
    lin = R.flatten(-2) @ W + bias  # [..., 20]
    cands = lin[..., :16].unflatten(-1, (4, 4))  # [..., 4 candidates, 4] (unnormalised)
    best = lin[..., 16:].argmax(-1, keepdim=True)  # the best-conditioned: the largest of tr, m00, m11, m22
    q = torch.gather(cands, -2, best.unsqueeze(-1).expand(*best.shape, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_mul(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a*b of [..., 4] wxyz quaternions (rotation b first, then a)."""
    a, b = torch.broadcast_tensors(a, b)
    H = _tables_on(a.device, a.dtype)[2]
    return (a.unsqueeze(-1) * b.unsqueeze(-2)).flatten(-2) @ H
