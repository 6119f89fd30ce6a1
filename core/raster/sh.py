"""Real spherical harmonics up to degree 3, with the constants and signs of 3DGS and gsplat."""

from __future__ import annotations

import torch
from torch import Tensor

from core.raster.types import SH_C0, sh_degree_of

SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Basis values for unit directions `dirs` [..., 3] -> [..., (degree + 1)**2], ordered (l, m = -l..l)."""
    if not 0 <= degree <= 3:
        raise ValueError(f"SH degree must be 0, 1, 2 or 3, got {degree}")
    if dirs.shape[-1] != 3:
        raise ValueError(f"dirs: expected shape [..., 3], got {tuple(dirs.shape)}")
    out = [torch.full_like(dirs[..., 0], SH_C0)]
    if degree >= 1:
        x, y, z = dirs.unbind(-1)
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        out += [
            SH_C2[0] * xy,
            SH_C2[1] * yz,
            SH_C2[2] * (2.0 * zz - xx - yy),
            SH_C2[3] * xz,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3.0 * xx - yy),
            SH_C3[1] * xy * z,
            SH_C3[2] * y * (4.0 * zz - xx - yy),
            SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            SH_C3[4] * x * (4.0 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(
    sh: Tensor,  # [..., G, K, 3] coefficients, K in {1, 4, 9, 16}
    dirs: Tensor,  # [..., G, 3] viewing directions (camera centre -> Gaussian), any length
) -> Tensor:  # [..., G, 3] colour, clamped at 0 from below like gsplat
    """Colour seen along `dirs`: sum_k basis_k(dir) * sh_k + 0.5, clamped >= 0."""
    if sh.dim() < 3 or sh.shape[-1] != 3:
        raise ValueError(f"sh: expected shape [..., G, K, 3], got {tuple(sh.shape)}")
    if dirs.shape[-1] != 3 or dirs.shape[:-1] != sh.shape[:-2]:
        raise ValueError(
            f"dirs: expected shape {(*sh.shape[:-2], 3)} to match sh {tuple(sh.shape)}, got {tuple(dirs.shape)}"
        )
    degree = sh_degree_of(sh.shape[-2])
    if degree == 0:
        rgb = SH_C0 * sh[..., 0, :]
    else:
        unit = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        basis = sh_basis(degree, unit)  # [..., G, K]
        rgb = (basis.unsqueeze(-1) * sh).sum(dim=-2)
    return (rgb + 0.5).clamp_min(0.0)
