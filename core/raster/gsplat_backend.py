"""Adapter from our records to `gsplat.rasterization` (CUDA). gsplat is imported only when this runs."""

from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

from core.raster.types import Gaussians


def gsplat_available() -> bool:
    """True when the gsplat package can be imported (its CUDA kernels load on first use)."""
    return importlib.util.find_spec("gsplat") is not None


def rasterize_gsplat(
    gaussians: Gaussians,  # unbatched: means [G, 3], ...
    K: Tensor,  # [C, 3, 3]
    T_cam_world: Tensor,  # [C, 4, 4]
    width: int,
    height: int,
    background: Tensor,  # [C, 3]
    *,
    near: float = 0.01,
    far: float = 1e3,
) -> tuple[Tensor, Tensor, Tensor]:  # colour [C, H, W, 3], alpha [C, H, W, 1], expected depth [C, H, W, 1]
    """Render with gsplat's fused CUDA kernels (float32 inside; outputs cast back to the input dtype)."""
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
    render, alpha, _meta = gsplat.rasterization(
        means=gaussians.means.to(f32),
        quats=gaussians.quats.to(f32),
        scales=gaussians.scales.to(f32),
        opacities=gaussians.opacities.to(f32),
        colors=gaussians.sh.to(f32),
        viewmats=T_cam_world.to(f32),
        Ks=K.to(f32),
        width=width,
        height=height,
        near_plane=near,
        far_plane=far,
        sh_degree=gaussians.sh_degree,
        packed=False,
        render_mode="RGB+ED",
        backgrounds=background.to(f32),
    )  # render [C, H, W, 4] (RGB + expected depth), alpha [C, H, W, 1]
    return render[..., :3].to(dtype), alpha.to(dtype), render[..., 3:4].to(dtype)
