"""`rasterize()`: one entry point over the two splat rasterisers (gsplat CUDA, pure-torch reference)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Literal

import torch
from torch import Tensor

from core.constants import constant
from core.raster.gsplat_backend import gsplat_available, rasterize_gsplat
from core.raster.torch_ref import TorchRasterSettings, rasterize_torch
from core.raster.types import Camera, Gaussians

log = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "gsplat"]


@dataclass(frozen=True)
class RasterOutput:
    color: Tensor  # [(B,) C, H, W, 3] composited over the background
    alpha: Tensor  # [(B,) C, H, W, 1] accumulated opacity
    depth: Tensor  # [(B,) C, H, W, 1] expected camera z-depth (sum w z / sum w; 0 where nothing was drawn)
    features: Tensor | None = None  # [(B,) C, H, W, D] the `features` channels, composited over 0


def _as_tensor(background: Sequence[float] | Tensor, like: Tensor) -> Tensor:
    """`background` on `like`'s device and dtype; a plain colour (3 numbers) is copied there once (`constant`)."""
    if (
        not isinstance(background, Tensor)
        and len(background) == 3
        and all(isinstance(v, float | int) for v in background)
    ):
        return constant(tuple(float(v) for v in background), like.dtype, like.device)
    return torch.as_tensor(background, dtype=like.dtype, device=like.device)


def _background(background: Sequence[float] | Tensor, num_cams: int, like: Tensor) -> Tensor:  # [C, 3]
    bg = _as_tensor(background, like)
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
    gaussians: Gaussians,  # means [G, 3], ... shared by all cameras; or a batch of sets, means [B, G, 3], ...
    camera: Camera,  # K [3, 3] or [C, 3, 3]; for a batch of sets [B, C, 3, 3] (set b seen by cameras [b, :])
    *,
    background: Sequence[float] | Tensor = (0.0, 0.0, 0.0),  # [3] or [C, 3] ([B, C, 3] for a batch)
    backend: Backend = "auto",
    near: float = 0.01,
    far: float = 1e3,
    torch_settings: TorchRasterSettings | None = None,
    features: Tensor | None = None,  # [G, D] ([B, G, D]) per-Gaussian values rendered alongside the colour
) -> RasterOutput:
    """Render Gaussian splats from one or more pinhole cameras. An unbatched camera gives C = 1.

    A batch of B sets of Gaussians, each with its own C cameras, renders in one call (one gsplat launch; the
    torch reference loops over the sets): every output then has a leading B, e.g. colour [B, C, H, W, 3].
    `features` are blended with the same weights as the colour (over 0 where nothing is drawn), in the same
    pass where the backend allows: semantic labels or any per-Gaussian quantity as images."""
    batched = gaussians.means.dim() == 3
    if gaussians.means.dim() not in (2, 3):
        raise ValueError(
            f"rasterize takes one set of Gaussians (means [G, 3]) or a batch of sets (means [B, G, 3]), got means "
            f"{tuple(gaussians.means.shape)}; flatten the leading dims first"
        )
    B = gaussians.means.shape[0] if batched else None
    if batched and (len(camera.batch_shape) != 2 or camera.batch_shape[0] != B):
        raise ValueError(
            f"a batch of {B} sets of Gaussians needs cameras K [B={B}, C, 3, 3], got K {tuple(camera.K.shape)}"
        )
    if not batched and len(camera.batch_shape) > 1:
        raise ValueError(f"rasterize takes K [3, 3] or [C, 3, 3], got K {tuple(camera.K.shape)}; flatten the cameras")
    device = gaussians.means.device
    for name, t in (("K", camera.K), ("T_cam_world", camera.T_cam_world)):
        if t.device != device:
            raise ValueError(
                f"camera.{name} is on {t.device} but the Gaussians are on {device}; move one with .to(device)"
            )
    lead = gaussians.means.shape[:-1]  # (G,) or (B, G)
    if features is not None and (features.dim() != len(lead) + 1 or features.shape[:-1] != lead):
        want = "[B, G, D]" if batched else "[G, D]"
        raise ValueError(f"features: expected {want} with {'B, G' if batched else 'G'} = {tuple(lead)}, got "
                         f"{tuple(features.shape)}")  # fmt: skip
    if not gaussians.means.is_floating_point():
        raise TypeError(f"Gaussians.means must be floating point, got {gaussians.means.dtype}")
    cams = (B, -1) if batched else (-1,)
    K = camera.K.reshape(*cams, 3, 3).to(gaussians.means.dtype)
    T = camera.T_cam_world.reshape(*cams, 4, 4).to(gaussians.means.dtype)
    if not (0.0 < near < far):
        raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
    width, height = int(camera.width), int(camera.height)
    C = K.shape[-3]
    if batched:
        bg = _as_tensor(background, gaussians.means)
        if bg.shape not in ((3,), (B, C, 3)):
            raise ValueError(f"background: expected 3 values or a [B={B}, C={C}, 3] tensor, got {tuple(bg.shape)}")
        bg = bg.expand(B, C, 3)
    else:
        bg = _background(background, C, gaussians.means)
    which = resolve_backend(backend, device)
    if which == "gsplat":
        color, alpha, depth, feats = rasterize_gsplat(
            gaussians, K, T, width, height, bg, near=near, far=far, features=features
        )
    elif batched:  # the reference renders one set after another
        outs = [
            rasterize_torch(
                gaussians.map_tensors(itemgetter(b)), K[b], T[b], width, height, bg[b], near=near, far=far,
                settings=torch_settings, features=None if features is None else features[b],
            )
            for b in range(B)
        ]  # fmt: skip
        color, alpha, depth = (torch.stack([o[i] for o in outs]) for i in range(3))
        feats = None if features is None else torch.stack([o[3] for o in outs])
    else:
        color, alpha, depth, feats = rasterize_torch(
            gaussians, K, T, width, height, bg, near=near, far=far, settings=torch_settings, features=features
        )
    return RasterOutput(color=color, alpha=alpha, depth=depth, features=feats)
