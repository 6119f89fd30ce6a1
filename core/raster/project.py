"""Pure maths of splat projection: rotations, 3D covariances, world->camera, EWA to 2D, conics, radii.

Conventions follow gsplat's pinhole path (OpenCV camera, pixel centres at +0.5) so the torch reference and
the CUDA kernels agree to float precision.
"""

from __future__ import annotations

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
