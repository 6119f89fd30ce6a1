"""`SplatRenderer`: draws `Gaussians` seen by a `Camera` with moderngl (EWA splats, sorted, premultiplied)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import moderngl
import numpy as np
import torch

from core.raster.types import PART_NAMES, Camera, Gaussians
from render import packing
from render.gl_camera import CameraParams, camera_params, mat4_uniform
from render.gl_context import create_context, has_compute
from render.gl_sort import ComputeSorter, shader_source
from render.sort import CachedOrder, back_to_front_torch
from render.upload import TextureUploader, Transfer

log = logging.getLogger(__name__)

SortMode = Literal["auto", "cpu", "torch", "gpu"]

# Colours of the part-label view, indexed like PART_NAMES.
PART_COLORS: tuple[tuple[float, float, float], ...] = (
    (0.90, 0.70, 0.55),  # skin
    (1.00, 0.45, 0.45),  # face
    (0.55, 0.30, 0.10),  # hair
    (0.20, 0.50, 1.00),  # upper_garment
    (0.20, 0.80, 0.35),  # lower_garment
    (0.95, 0.85, 0.20),  # shoes
    (0.75, 0.35, 0.95),  # accessories
    (0.60, 0.60, 0.60),  # anything else
)
assert len(PART_COLORS) >= len(PART_NAMES)


@dataclass
class FrameStats:
    """What the last `set_gaussians` / `draw` did, for benchmarks and tests."""

    uploaded: tuple[str, ...] = ()  # textures written by the last set_gaussians
    transfer: str = ""  # how they reached GL: "host", "pinned" or "interop"
    sorted: bool = False  # whether the last draw recomputed the depth order
    sort_path: str = ""  # "cpu", "torch" or "gpu"
    extra: dict[str, float] = field(default_factory=dict)  # phase times (ms) when `profile` is on


class SplatRenderer:
    """Real-time Gaussian-splat renderer; one camera per draw.

    Usage: `r = SplatRenderer(); r.set_gaussians(g); image = r.render(camera)`. Inside a GUI, call
    `draw(camera, framebuffer=...)` or read `color_texture` after `draw(camera)`.
    """

    def __init__(
        self,
        ctx: moderngl.Context | None = None,
        *,
        width: int = 640,
        height: int = 480,
        sort: SortMode = "auto",
        alpha_max: float = 0.99,
        dilation: float = 0.3,
        near: float = 0.01,
        far: float = 1e10,
        target_dtype: Literal["f4", "f2", "f1"] = "f1",
        transfer: Transfer = "auto",
        top_row_first: bool = False,
    ) -> None:
        self.ctx = ctx if ctx is not None else create_context("egl")
        self.alpha_max = alpha_max
        self.target_dtype = target_dtype
        self.dilation = dilation
        self.near = near
        self.far = far
        self.color_mode: Literal["sh", "parts"] = "sh"
        self.opacity_scale = 1.0
        self.sort_mode = self._resolve_sort(sort)
        self.stats = FrameStats()
        self.program = self.ctx.program(
            vertex_shader=shader_source("splat.vert.glsl"),
            geometry_shader=shader_source("splat.geom.glsl"),
            fragment_shader=shader_source("splat.frag.glsl"),
        )
        # The framebuffer's row 0 is the image's top row (read-backs need no flip) or, as GL has it, the bottom.
        self.top_row_first = top_row_first
        # Synchronise GL (and CUDA) around each phase and record its time in `stats.extra` (benchmarks only).
        self.profile = False
        self._uploader = TextureUploader(self.ctx, transfer=transfer)
        self._textures = self._uploader.textures
        self._means_version = 0
        self._means_torch: torch.Tensor | None = None
        self.num = 0
        self.num_sh = 1
        self._cpu_order = CachedOrder()
        self._order_key: tuple[bytes, int] | None = None
        self._gpu_sorter = ComputeSorter(self.ctx) if self.sort_mode == "gpu" else None
        self._cpu_indices: moderngl.Buffer | None = None
        self._index_buffer: moderngl.Buffer | None = None
        self._vao: moderngl.VertexArray | None = None
        self.fbo: moderngl.Framebuffer | None = None
        self._image_interop = None  # render.cuda_gl.ImageInterop on the colour target; False once it failed
        self.color_texture: moderngl.Texture | None = None
        self._depth_rb: moderngl.Renderbuffer | None = None
        self.resize(width, height)

    # Setup ---------------------------------------------------------------------------------
    def _resolve_sort(self, sort: SortMode) -> SortMode:
        if sort == "gpu" and not has_compute(self.ctx):
            raise RuntimeError(
                f"sort='gpu' needs OpenGL 4.3 compute shaders; {self.ctx.info['GL_VERSION']} lacks them. Use 'cpu'."
            )
        if sort != "auto":
            return sort
        software = "llvmpipe" in self.ctx.info["GL_RENDERER"] or "softpipe" in self.ctx.info["GL_RENDERER"]
        return "gpu" if has_compute(self.ctx) and not software else "cpu"

    @property
    def width(self) -> int:
        return self.color_texture.width if self.color_texture is not None else 0

    @property
    def height(self) -> int:
        return self.color_texture.height if self.color_texture is not None else 0

    def resize(self, width: int, height: int) -> None:
        """(Re)create the offscreen float framebuffer at `width` x `height` pixels."""
        if width <= 0 or height <= 0:
            raise ValueError(f"SplatRenderer.resize: size must be positive, got {width}x{height}")
        if self.color_texture is not None and (width, height) == self.color_texture.size:
            return
        if self._image_interop:
            self._image_interop.release()
            self._image_interop = None
        for obj in (self.fbo, self.color_texture, self._depth_rb):
            if obj is not None:
                obj.release()
        self.color_texture = self.ctx.texture((width, height), 4, dtype=self.target_dtype)
        self._depth_rb = self.ctx.depth_renderbuffer((width, height))
        self.fbo = self.ctx.framebuffer(color_attachments=[self.color_texture], depth_attachment=self._depth_rb)

    # Upload --------------------------------------------------------------------------------
    def set_gaussians(self, gaussians: Gaussians) -> tuple[str, ...]:
        """Upload the splats (torch tensors on any device); only textures whose inputs changed are written.

        CUDA tensors are packed on the GPU and reach GL without a host round trip where interop works, else
        through one copy into a reused pinned buffer. Returns the names of the textures written.
        """
        g = gaussians
        if g.means.dim() != 2:
            raise ValueError(
                f"SplatRenderer.set_gaussians: expected an unbatched set (means [G, 3]), got means {tuple(g.means.shape)}"
            )
        t0 = self._clock()
        uploaded = self._uploader.upload(g)
        self.num, self.num_sh = g.num, g.sh.shape[-2]
        if "mean" in uploaded:
            self._means_version += 1
            self._means_torch = g.means.detach() if g.means.is_cuda else None
        self.stats.uploaded, self.stats.transfer = uploaded, self._uploader.transfer_used
        if self.profile:
            self.stats.extra["upload_ms"] = self._clock() - t0
        return uploaded

    def _clock(self) -> float:
        """Milliseconds; with `profile` on, after waiting for the GPU (GL and CUDA) to finish queued work."""
        if self.profile:
            self.ctx.finish()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
        return 1e3 * time.perf_counter()

    # Sorting -------------------------------------------------------------------------------
    def _bind_indices(self, buffer: moderngl.Buffer) -> None:
        if self._vao is None or self._index_buffer is not buffer:
            if self._vao is not None:
                self._vao.release()
            self._vao = self.ctx.vertex_array(self.program, [], index_buffer=buffer, index_element_size=4)
            self._index_buffer = buffer

    def _sort(self, params: CameraParams) -> None:
        key = (params.T_cam_world.tobytes(), self._means_version)
        mode = self.sort_mode
        if mode == "auto":
            mode = "torch" if self._means_torch is not None else "cpu"
        if mode == "cpu" and self._means_torch is not None and self.sort_mode == "auto":
            mode = "torch"
        self.stats.sort_path = mode
        if key == self._order_key and self._vao is not None:
            self.stats.sorted = False
            return
        self.stats.sorted = True
        if mode == "gpu":
            assert self._gpu_sorter is not None
            self._gpu_sorter.sort(self._textures["mean"], packing.TEXTURE_WIDTH, self.num, params.T_cam_world)
            assert self._gpu_sorter.order is not None
            self._bind_indices(self._gpu_sorter.order)
        else:
            if mode == "torch" and self._means_torch is not None:
                order = back_to_front_torch(self._means_torch, params.T_cam_world).cpu().numpy().view(np.uint32)
            else:
                means = self._uploader.means_host
                assert means is not None
                order = self._cpu_order.get(means.numpy(), self._means_version, params.T_cam_world)
            indices = order
            buf = self._cpu_indices
            if buf is None or buf.size != indices.nbytes:
                if buf is not None:
                    buf.release()
                buf = self._cpu_indices = self.ctx.buffer(indices.tobytes())
            else:
                buf.write(indices.tobytes())
            self._bind_indices(buf)
        self._order_key = key

    # Drawing -------------------------------------------------------------------------------
    def draw(
        self,
        camera: Camera,
        *,
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
        framebuffer: moderngl.Framebuffer | None = None,
        clear: bool = True,
    ) -> None:
        """Draw into `framebuffer` (default: the renderer's own, resized to the camera).

        The colour target ends up holding the splats composited over `background` in rgb and the
        accumulated opacity in alpha.
        """
        params = camera_params(camera)
        if framebuffer is None:
            self.resize(params.width, params.height)
            framebuffer = self.fbo
        assert framebuffer is not None
        framebuffer.use()
        self.ctx.viewport = (0, 0, params.width, params.height)
        if clear:
            framebuffer.clear(*background, 0.0, depth=1.0)
        if self.num == 0:
            return
        t0 = self._clock()
        self._sort(params)
        t1 = self._clock()
        p = self.program
        for unit, name in enumerate(("mean", "cov", "sh")):
            self._textures[name].use(unit)
            p[f"u_{name}"] = unit
        p["u_tex_width"] = packing.TEXTURE_WIDTH
        p["u_num_sh"] = self.num_sh
        p["u_view"].write(mat4_uniform(params.T_cam_world))
        p["u_intrinsics"] = (params.fx, params.fy, params.cx, params.cy)
        p["u_size"] = (float(params.width), float(params.height))
        p["u_flip_y"] = self.top_row_first
        p["u_cam_pos"] = tuple(float(v) for v in params.position)
        p["u_near"] = self.near
        p["u_far"] = self.far
        p["u_dilation"] = self.dilation
        p["u_color_mode"] = 1 if self.color_mode == "parts" else 0
        p["u_part_colors"].write(np.asarray(PART_COLORS, dtype=np.float32).tobytes())
        p["u_opacity_scale"] = self.opacity_scale
        p["u_alpha_max"] = self.alpha_max
        self.ctx.disable(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        self.ctx.enable(moderngl.BLEND)
        self.ctx.blend_func = moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA
        self.ctx.blend_equation = moderngl.FUNC_ADD
        assert self._vao is not None
        self._vao.render(moderngl.POINTS, vertices=self.num)
        self.ctx.disable(moderngl.BLEND)
        if self.profile:
            self.stats.extra["sort_ms"] = t1 - t0
            self.stats.extra["draw_ms"] = self._clock() - t1

    def read(self) -> np.ndarray:
        """[H, W, 4] float32 of the renderer's framebuffer, top row first: rgb over background, alpha."""
        out = np.empty((self.height, self.width, 4), dtype=np.float32)
        self.read_into(out)
        return out

    def read_into(self, out: np.ndarray) -> None:
        """Read the framebuffer straight into `out` ([H, W, 3] or [H, W, 4] float32, top row first).

        The driver converts the 8-bit target to floats during the read; with `top_row_first` no flip is needed,
        otherwise the rows are reversed in place.
        """
        assert self.fbo is not None
        h, w = self.height, self.width
        if out.dtype != np.float32 or out.shape[:2] != (h, w) or out.shape[2] not in (3, 4):
            raise ValueError(f"read_into: expected a float32 [{h}, {w}, 3 or 4] array, got {out.dtype} {out.shape}")
        if not out.flags.c_contiguous:
            raise ValueError("read_into: the destination must be C-contiguous")
        t0 = self._clock()
        self.fbo.read_into(out, components=out.shape[2], dtype="f4")
        if not self.top_row_first:
            out[:] = out[::-1].copy()
        if self.profile:
            self.stats.extra["read_ms"] = self._clock() - t0

    def read_into_pinned(self, out: torch.Tensor) -> bool:
        """CUDA machines: the 8-bit picture goes to CUDA through interop, becomes float RGB there and reaches the
        pinned host tensor `out` ([H, W, 3] float32) in one copy. False (nothing read) where interop is missing."""
        from render.cuda_gl import ImageInterop, InteropUnavailable

        assert self.color_texture is not None
        if self._image_interop is False:
            return False
        t0 = self._clock()
        try:
            if self._image_interop is None or self._image_interop.texture is not self.color_texture:
                if self._image_interop is not None:
                    self._image_interop.release()
                self._image_interop = ImageInterop(self.color_texture)
                h, w = self.height, self.width
                self._rgba8 = torch.empty(h, w, 4, dtype=torch.uint8, device="cuda")
                self._rgb = torch.empty(h, w, 3, dtype=torch.float32, device="cuda")
            self.ctx.finish()  # GL's draw must be done before CUDA reads its target
            self._image_interop.read(self._rgba8)
        except InteropUnavailable as e:
            log.info("reading the picture through CUDA-OpenGL interop is unavailable (%s)", e)
            self._image_interop = False
            return False
        rgba = self._rgba8 if self.top_row_first else self._rgba8.flip(0)
        torch.mul(rgba[..., :3], 1.0 / 255.0, out=self._rgb)
        out.copy_(self._rgb, non_blocking=True)
        torch.cuda.current_stream().synchronize()
        if self.profile:
            self.stats.extra["read_ms"] = self._clock() - t0
        return True

    def render(self, camera: Camera, *, background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
        """[H, W, 4] float32: the splats composited over `background` (rgb) and their opacity (alpha)."""
        self.draw(camera, background=background)
        return self.read()

    @property
    def mean_texture(self) -> moderngl.Texture | None:
        """Texels (x, y, z, opacity) per Gaussian, for overlays that draw centres."""
        return self._textures.get("mean")

    def release(self) -> None:
        for obj in (self._vao, self._cpu_indices, self.program, self.fbo, self.color_texture, self._depth_rb):
            if obj is not None:
                obj.release()
        if self._gpu_sorter is not None:
            self._gpu_sorter.release()
        if self._image_interop:
            self._image_interop.release()
        self._uploader.release()
