"""The preview on CUDA machines: gsplat rasterises the decoded Gaussians where they are, on the GPU, and only the
finished picture leaves the card, copied once into a reused pinned host image in the display's format.

gsplat's output is already what the studio shows (float RGB, top row first, composited over the background),
so the picture needs no conversion on the host. `draw` returns the CUDA image for callers that keep it on the
GPU; `render_into` also copies it to the host.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from core.raster.types import Gaussians
from render.gl_camera import CameraParams


class GsplatPreview:
    """Draws one camera per call with `gsplat.rasterization`; per-frame buffers are reused."""

    def __init__(self, device: torch.device | str = "cuda", *, packed: bool = False) -> None:
        import gsplat  # noqa: F401 - fail here, with gsplat's own message, when it is missing

        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.packed = packed
        self.opacity_scale = 1.0
        self._camera_host = torch.zeros(25, dtype=torch.float32, pin_memory=True)  # viewmat (16), K (9)
        self._camera = torch.zeros(25, dtype=torch.float32, device=self.device)
        self._background = torch.zeros(1, 3, dtype=torch.float32, device=self.device)
        self._background_key: tuple[float, ...] | None = None
        self._part_colors: Tensor | None = None
        self._done = torch.cuda.Event()

    def _set_camera(self, params: CameraParams) -> tuple[Tensor, Tensor]:  # viewmat [1, 4, 4], K [1, 3, 3]
        host = self._camera_host.numpy()
        host[:16] = params.T_cam_world.reshape(-1)
        host[16:] = (params.fx, 0.0, params.cx, 0.0, params.fy, params.cy, 0.0, 0.0, 1.0)
        self._camera.copy_(self._camera_host, non_blocking=True)
        return self._camera[:16].view(1, 4, 4), self._camera[16:].view(1, 3, 3)

    def draw(
        self,
        g: Gaussians,  # unbatched, on self.device
        params: CameraParams,
        *,
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
        part_colors: np.ndarray | None = None,  # [P, 3]: colour by part label instead of SH
    ) -> Tensor:  # [H, W, 3] float32 on the GPU, top row first, in [0, 1]
        import gsplat

        if g.means.device != self.device:
            raise ValueError(f"GsplatPreview draws Gaussians on {self.device}, got them on {g.means.device}")
        viewmat, K = self._set_camera(params)
        if self._background_key != background:
            self._background.copy_(torch.tensor(background, dtype=torch.float32).view(1, 3))
            self._background_key = background
        f32 = torch.float32
        opacities = torch.sigmoid(g.opacity_logits.to(f32))
        if self.opacity_scale != 1.0:
            opacities = opacities * self.opacity_scale
        if part_colors is not None and g.parts is not None:
            if self._part_colors is None:
                self._part_colors = torch.as_tensor(part_colors, dtype=f32, device=self.device)
            colors, degree = self._part_colors[g.parts.clamp(0, len(part_colors) - 1)], None
        else:
            colors, degree = g.sh.to(f32), g.sh_degree
        image, _alpha, _meta = gsplat.rasterization(
            means=g.means.to(f32),
            quats=g.quats.to(f32),
            scales=g.log_scales.to(f32).exp(),
            opacities=opacities,
            colors=colors,
            viewmats=viewmat,
            Ks=K,
            width=params.width,
            height=params.height,
            near_plane=0.01,
            sh_degree=degree,
            packed=self.packed,
            backgrounds=self._background,
        )  # image [1, H, W, 3]
        return image[0].clamp_(0.0, 1.0)

    def read_into(self, image: Tensor, out: Tensor) -> None:
        """Copy the CUDA `image` [H, W, 3] into the pinned host tensor `out` and wait for it (one copy)."""
        out.copy_(image, non_blocking=True)
        self._done.record()
        self._done.synchronize()
