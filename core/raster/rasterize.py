"""`rasterize()`: one entry point over the two splat rasterisers (gsplat CUDA, pure-torch reference)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from core.raster.gsplat_backend import gsplat_available, rasterize_gsplat
from core.raster.torch_ref import TorchRasterSettings, rasterize_torch
from core.raster.types import Camera, Gaussians

log = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "gsplat"]


@dataclass(frozen=True)
class RasterOutput:
    color: Tensor  # [C, H, W, 3] composited over the background
    alpha: Tensor  # [C, H, W, 1] accumulated opacity
    depth: Tensor  # [C, H, W, 1] expected camera z-depth (sum w z / sum w; 0 where nothing was drawn)
    features: Tensor | None = None  # [C, H, W, D] the `features` channels, composited over 0


def _background(background: Sequence[float] | Tensor, num_cams: int, like: Tensor) -> Tensor:  # [C, 3]
    bg = torch.as_tensor(background, dtype=like.dtype, device=like.device)
    if bg.shape == (3,):
        return bg.expand(num_cams, 3)
    if bg.shape == (num_cams, 3):
        return bg
    raise ValueError(f"background: expected 3 values or a [C={num_cams}, 3] tensor, got shape {tuple(bg.shape)}")


def resolve_backend(backend: Backend, device: torch.device) -> Literal["torch", "gsplat"]:
    """'auto' picks gsplat for CUDA tensors when it is installed, else the torch reference."""
    if backend == "auto":
        return "gsplat" if device.type == "cuda" and gsplat_available() else "torch"
    if backend not in ("torch", "gsplat"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'gsplat', got {backend!r}")
    return backend


def rasterize(
    gaussians: Gaussians,  # unbatched: means [G, 3], quats [G, 4], ... shared by all cameras
    camera: Camera,  # K [3, 3] or [C, 3, 3]
    *,
    background: Sequence[float] | Tensor = (0.0, 0.0, 0.0),  # [3] or [C, 3]
    backend: Backend = "auto",
    near: float = 0.01,
    far: float = 1e3,
    torch_settings: TorchRasterSettings | None = None,
    features: Tensor | None = None,  # [G, D] per-Gaussian values to render alongside the colour (e.g. labels)
) -> RasterOutput:
    """Render Gaussian splats from one or more pinhole cameras. An unbatched camera gives C = 1.

    `features` are blended with the same weights as the colour (over 0 where nothing is drawn), in the same
    pass where the backend allows: semantic labels or any per-Gaussian quantity as images."""
    if gaussians.means.dim() != 2:
        raise ValueError(
            f"rasterize takes one unbatched set of Gaussians (means [G, 3]), got means {tuple(gaussians.means.shape)}; "
            "loop over the batch or index it first"
        )
    if len(camera.batch_shape) > 1:
        raise ValueError(f"rasterize takes K [3, 3] or [C, 3, 3], got K {tuple(camera.K.shape)}; flatten the cameras")
    device = gaussians.means.device
    for name, t in (("K", camera.K), ("T_cam_world", camera.T_cam_world)):
        if t.device != device:
            raise ValueError(
                f"camera.{name} is on {t.device} but the Gaussians are on {device}; move one with .to(device)"
            )
    if features is not None and (features.dim() != 2 or features.shape[0] != gaussians.means.shape[0]):
        raise ValueError(f"features: expected [G={gaussians.means.shape[0]}, D], got {tuple(features.shape)}")
    if not gaussians.means.is_floating_point():
        raise TypeError(f"Gaussians.means must be floating point, got {gaussians.means.dtype}")
    K = camera.K.reshape(-1, 3, 3).to(gaussians.means.dtype)
    T = camera.T_cam_world.reshape(-1, 4, 4).to(gaussians.means.dtype)
    if not (0.0 < near < far):
        raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
    width, height = int(camera.width), int(camera.height)
    bg = _background(background, K.shape[0], gaussians.means)
    which = resolve_backend(backend, device)
    if which == "gsplat":
        color, alpha, depth, feats = rasterize_gsplat(
            gaussians, K, T, width, height, bg, near=near, far=far, features=features
        )
    else:
        color, alpha, depth, feats = rasterize_torch(
            gaussians, K, T, width, height, bg, near=near, far=far, settings=torch_settings, features=features
        )
    return RasterOutput(color=color, alpha=alpha, depth=depth, features=feats)
