"""Adapter from our records to `gsplat.rasterization` (CUDA). gsplat is imported only when this runs."""

from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

from core.raster.types import SH_C0, Gaussians


def gsplat_available() -> bool:
    """True when the gsplat package can be imported (its CUDA kernels load on first use)."""
    return importlib.util.find_spec("gsplat") is not None


def rasterize_gsplat(
    gaussians: Gaussians,  # means [..., G, 3], ... (leading dims: sets rendered in one call)
    K: Tensor,  # [..., C, 3, 3]
    T_cam_world: Tensor,  # [..., C, 4, 4]
    width: int,
    height: int,
    background: Tensor,  # [..., C, 3]
    *,
    near: float = 0.01,
    far: float = 1e3,
    features: Tensor | None = None,  # [..., G, D] extra channels composited like colour, over 0
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:  # colour [..., C, H, W, 3], alpha, expected depth, features
    """Render with gsplat's fused CUDA kernels (float32 inside; outputs cast back to the input dtype).

    Extra feature channels ride in the same pass as the colour when the colour is view-independent (SH degree
    0, colour = C0 * sh + 0.5 clamped at 0, as gsplat evaluates it); otherwise they take a second pass."""
    try:
        import gsplat
    except ImportError as e:
        raise RuntimeError(
            "backend='gsplat' needs the gsplat package (pip install 'lca-studio[gpu]' on a CUDA machine); "
            "use backend='torch' for the pure-torch rasteriser"
        ) from e
    if gaussians.means.device.type != "cuda":
        raise ValueError(f"backend='gsplat' needs CUDA tensors, got Gaussians on {gaussians.means.device}")
    dtype = gaussians.means.dtype
    f32 = torch.float32
    colors, degree, bg = gaussians.sh.to(f32), gaussians.sh_degree, background.to(f32)
    d = 0 if features is None else features.shape[-1]
    joint = d > 0 and degree == 0
    if joint:
        rgb = (SH_C0 * colors[..., 0, :] + 0.5).clamp_min(0.0)
        colors, degree = torch.cat([rgb, features.to(f32)], dim=-1), None
        bg = torch.cat([bg, bg.new_zeros(*bg.shape[:-1], d)], dim=-1)

    def splat(colors: Tensor, degree: int | None, bg: Tensor) -> tuple[Tensor, Tensor]:
        render, alpha, _meta = gsplat.rasterization(
            means=gaussians.means.to(f32),
            quats=gaussians.quats.to(f32),
            scales=gaussians.scales.to(f32),
            opacities=gaussians.opacities.to(f32),
            colors=colors,
            viewmats=T_cam_world.to(f32),
            Ks=K.to(f32),
            width=width,
            height=height,
            near_plane=near,
            far_plane=far,
            sh_degree=degree,
            packed=False,
            render_mode="RGB+ED",
            backgrounds=bg,
        )  # render [..., C, H, W, channels + 1] (channels then expected depth), alpha [C, H, W, 1]
        return render, alpha

    render, alpha = splat(colors, degree, bg)
    feats = None
    if joint:
        feats = render[..., 3 : 3 + d].to(dtype)
    elif d > 0:
        zeros = bg.new_zeros(*bg.shape[:-1], d)
        feats = splat(features.to(f32), None, zeros)[0][..., :d].to(dtype)
    return render[..., :3].to(dtype), alpha.to(dtype), render[..., -1:].to(dtype), feats
