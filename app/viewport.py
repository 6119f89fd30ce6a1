"""The preview: orbit view -> `Camera`, and an offscreen splat renderer whose image feeds the GUI texture."""

from __future__ import annotations

import logging
import threading
import time
from typing import Literal

import moderngl
import numpy as np
import torch

from app.state import OrbitView
from core.raster.types import Camera, Gaussians
from render.orbit import OrbitController
from render.upload import Transfer

log = logging.getLogger(__name__)

BACKGROUND = (0.13, 0.14, 0.16)


def _controller(view: OrbitView) -> OrbitController:
    return OrbitController(
        target=np.asarray(view.target, dtype=np.float64),
        yaw_deg=view.yaw_deg,
        pitch_deg=view.pitch_deg,
        distance=view.distance,
        fov_y_deg=view.fov_y_deg,
    )


def _view(c: OrbitController) -> OrbitView:
    return OrbitView(
        yaw_deg=c.yaw_deg, pitch_deg=c.pitch_deg, distance=c.distance,
        target=tuple(float(v) for v in c.target), fov_y_deg=c.fov_y_deg,
    )  # fmt: skip


def orbit_camera(view: OrbitView, width: int, height: int) -> Camera:
    """The camera an orbit view describes (looks at `view.target` from yaw/pitch/distance)."""
    return _controller(view).camera(width, height)


def orbit(view: OrbitView, dx_px: float, dy_px: float) -> OrbitView:
    """The view after a mouse drag of (dx, dy) pixels with the orbit button."""
    c = _controller(view)
    c.orbit(dx_px, dy_px)
    return _view(c)


def pan(view: OrbitView, dx_px: float, dy_px: float, height: int) -> OrbitView:
    """The view after a pan drag: the scene follows the mouse."""
    c = _controller(view)
    c.pan(dx_px, dy_px, height)
    return _view(c)


def zoom(view: OrbitView, steps: float) -> OrbitView:
    """The view after `steps` wheel notches (positive: closer)."""
    c = _controller(view)
    c.zoom(steps)
    return _view(c)


RasterPath = Literal["auto", "gl", "gsplat"]


def new_image(height: int, width: int) -> np.ndarray:
    """A [H, W, 3] float32 host image for the GUI texture (pinned on CUDA machines: the GPU copies into it)."""
    return torch.zeros(height, width, 3, dtype=torch.float32, pin_memory=torch.cuda.is_available()).numpy()


class Viewport:
    """Owns the preview's renderers and the host image the GUI texture shows (`image`, float RGB).

    Decoded Gaussians on a CUDA device are drawn there by gsplat ("gsplat" path) and only the picture is copied
    out; otherwise the OpenGL splat renderer draws them ("gl" path; CUDA tensors reach its textures without a
    host round trip where interop works). Either way the picture lands in `image` with at most one conversion.
    Every GL call runs inside `with self.ctx`.

    By default every frame lands in the same `image`. With `lend_images` (a preview thread handing pictures to
    the GUI thread) each frame gets an image that is not reused until the receiver hands it back with `recycle`:
    no copy, and no allocation once a few images circulate.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        *,
        backend: Literal["glx", "egl"] = "glx",
        raster: RasterPath = "auto",
        transfer: Transfer = "auto",
        lend_images: bool = False,
    ) -> None:
        from render.gl_context import create_context, renderer_name
        from render.splat_renderer import SplatRenderer

        self.width, self.height = width, height
        if backend == "glx":
            # glcontext's default standalone backend on Linux is GLX (it has no backend named "glx").
            self.ctx: moderngl.Context = moderngl.create_standalone_context(require=330)
        else:
            self.ctx = create_context(backend)
        self.gl_name = renderer_name(self.ctx)
        self.device_name = self.gl_name
        # An 8-bit target blends about a quarter faster than half floats on both Mesa llvmpipe (50K splats at
        # 640x480: 77 vs 101 ms) and an H100 (131K at 1080p: 3.9 vs 5.1 ms), and agrees with a float32 target
        # to 56 dB PSNR on the avatar-like scene: the preview is shown at 8 bits anyway. The shader writes the top
        # row first, so the read-back lands in the display image as it is.
        with self.ctx:
            self.renderer = SplatRenderer(self.ctx, width=width, height=height, transfer=transfer, top_row_first=True)
        self.raster = raster
        self.path = ""  # "gl" or "gsplat": how the last frame was drawn
        self.profile = False  # synchronise around each phase and record `phases` (benchmarks)
        self.phases: dict[str, float] = {}
        self.render_ms = 0.0
        self.upload_ms = 0.0
        self._gsplat = None  # render.gsplat_preview.GsplatPreview, made on first use
        self.lends_images = lend_images
        self._spare: list[np.ndarray] = []  # images handed back by the receiver (lend_images)
        self._spare_lock = threading.Lock()
        self.image = new_image(height, width)
        self._small: np.ndarray | None = None  # reduced-resolution read-back, reused

    @property
    def _rgba(self) -> np.ndarray:  # the name the GUI tests and panels used before the image became RGB
        return self.image

    def recycle(self, image: np.ndarray | None) -> None:
        """Hand back an image `render` lent (any thread); it will be drawn over by a later frame."""
        if image is None or image.dtype != np.float32 or image.ndim != 3 or not image.flags.c_contiguous:
            return
        with self._spare_lock:
            if len(self._spare) < 3 and all(image is not s for s in self._spare):
                self._spare.append(image)

    def _target(self, height: int, width: int) -> np.ndarray:
        """The image this frame is drawn into (see `lend_images`)."""
        if not self.lends_images:
            if self.image.shape[:2] != (height, width):
                self.image = new_image(height, width)
            return self.image
        with self._spare_lock:
            for i, image in enumerate(self._spare):
                if image.shape == (height, width, 3):
                    self.image = self._spare.pop(i)
                    return self.image
        self.image = new_image(height, width)
        return self.image

    def _use_gsplat(self, gaussians: Gaussians) -> bool:
        if self.raster == "gl" or not gaussians.means.is_cuda:
            if self.raster == "gsplat":
                raise ValueError(f"raster='gsplat' needs CUDA Gaussians, got them on {gaussians.means.device}")
            return False
        if self._gsplat is None:
            from core.raster.gsplat_backend import gsplat_available

            if not gsplat_available():
                if self.raster == "gsplat":
                    raise RuntimeError("raster='gsplat' needs the gsplat package; use raster='gl' or 'auto'")
                self.raster = "gl"
                return False
            from render.gsplat_preview import GsplatPreview

            self._gsplat = GsplatPreview(gaussians.means.device)
            self.device_name = f"gsplat on {torch.cuda.get_device_name(gaussians.means.device)}"
        return True

    def _clock(self) -> float:
        if self.profile and torch.cuda.is_available():
            torch.cuda.synchronize()
        return 1e3 * time.perf_counter()

    def render(
        self, gaussians: Gaussians, camera: Camera, *, parts_view: bool = False, scale: float = 1.0
    ) -> np.ndarray:
        """[H, W, 3] float32 image, top row first (`image`, reused: copy to keep).

        `scale` < 1 renders fewer pixels and enlarges the result to the camera's size (fast previews while
        a control is being dragged on the software path; the GPU paths always draw every pixel).
        """
        from render.gl_camera import camera_params
        from render.splat_renderer import PART_COLORS

        full = (camera.height, camera.width)
        image = self._target(*full)
        host = torch.from_numpy(image)  # the same memory (pinned where the GPU writes into it)
        if self._use_gsplat(gaussians):
            self.path = "gsplat"
            assert self._gsplat is not None
            t0 = self._clock()
            params = camera_params(camera)
            colors = np.asarray(PART_COLORS, dtype=np.float32) if parts_view else None
            img = self._gsplat.draw(gaussians, params, background=BACKGROUND, part_colors=colors)
            t1 = self._clock()
            self._gsplat.read_into(img, host)
            t2 = self._clock()
            self.upload_ms, self.render_ms = 0.0, t2 - t0
            if self.profile:
                self.phases = {"upload_ms": 0.0, "raster_ms": t1 - t0, "read_ms": t2 - t1}
            return image
        self.path = "gl"
        if scale != 1.0:
            camera = camera.scaled(scale)
        r = self.renderer
        r.profile = self.profile
        t0 = 1e3 * time.perf_counter()
        with self.ctx:
            r.color_mode = "parts" if parts_view else "sh"
            r.set_gaussians(gaussians)
            t1 = 1e3 * time.perf_counter()
            r.draw(camera, background=BACKGROUND)
            if (camera.height, camera.width) == full:
                # On CUDA machines the picture can become float RGB on the GPU and come over in one copy.
                if not (gaussians.means.is_cuda and r.read_into_pinned(host)):
                    r.read_into(image)
            else:
                import cv2  # only needed for reduced-resolution previews

                small = (camera.height, camera.width, 3)
                if self._small is None or self._small.shape != small:
                    self._small = np.empty(small, dtype=np.float32)
                r.read_into(self._small)
                cv2.resize(self._small, (full[1], full[0]), dst=image, interpolation=cv2.INTER_LINEAR)
        t2 = 1e3 * time.perf_counter()
        self.upload_ms, self.render_ms = t1 - t0, t2 - t1
        if self.profile:
            self.phases = {k: r.stats.extra.get(k, 0.0) for k in ("upload_ms", "sort_ms", "draw_ms", "read_ms")}
        return image

    def release(self) -> None:
        with self.ctx:
            self.renderer.release()
        self.ctx.release()
