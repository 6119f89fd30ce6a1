"""`SplatRenderer`: draws `Gaussians` seen by a `Camera` with moderngl (EWA splats, sorted, premultiplied)."""

from __future__ import annotations

import logging
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

# Which texture each Gaussians field feeds.
_TEXTURE_OF = {
    "means": "mean",
    "opacity_logits": "mean",
    "quats": "cov",
    "log_scales": "cov",
    "parts": "cov",
    "sh": "sh",
}


@dataclass
class FrameStats:
    """What the last `set_gaussians` / `draw` did, for benchmarks and tests."""

    uploaded: tuple[str, ...] = ()  # textures written by the last set_gaussians
    sorted: bool = False  # whether the last draw recomputed the depth order
    sort_path: str = ""  # "cpu", "torch" or "gpu"
    extra: dict[str, float] = field(default_factory=dict)


class _FieldCache:
    """Per-field change detection: same tensor object and version, or equal values, means unchanged."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, int, torch.Tensor | None]] = {}

    def changed(self, name: str, t: torch.Tensor | None) -> bool:
        prev = self._seen.get(name)
        if t is None:
            self._seen[name] = (0, 0, None)
            return prev is None or prev[2] is not None
        if prev is not None and prev[2] is not None:
            if prev[0] == id(t) and prev[1] == t._version and prev[2].shape == t.shape:
                return False
            if prev[2].shape == t.shape and prev[2].device == t.device and torch.equal(prev[2], t.detach()):
                self._seen[name] = (id(t), t._version, prev[2])
                return False
        self._seen[name] = (id(t), t._version, t.detach().clone())
        return True

    def clear(self) -> None:
        self._seen.clear()


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
        self._textures: dict[str, moderngl.Texture] = {}
        self._fields = _FieldCache()
        self._means_np = np.zeros((0, 3), dtype=np.float32)
        self._means_version = 0
        self._means_torch: torch.Tensor | None = None
        self._cov_np: np.ndarray | None = None
        self.num = 0
        self.num_sh = 1
        self._cpu_order = CachedOrder()
        self._order_key: tuple[bytes, int] | None = None
        self._gpu_sorter = ComputeSorter(self.ctx) if self.sort_mode == "gpu" else None
        self._cpu_indices: moderngl.Buffer | None = None
        self._index_buffer: moderngl.Buffer | None = None
        self._vao: moderngl.VertexArray | None = None
        self.fbo: moderngl.Framebuffer | None = None
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
        for obj in (self.fbo, self.color_texture, self._depth_rb):
            if obj is not None:
                obj.release()
        self.color_texture = self.ctx.texture((width, height), 4, dtype=self.target_dtype)
        self._depth_rb = self.ctx.depth_renderbuffer((width, height))
        self.fbo = self.ctx.framebuffer(color_attachments=[self.color_texture], depth_attachment=self._depth_rb)

    # Upload --------------------------------------------------------------------------------
    def _write_texture(self, name: str, texels: np.ndarray) -> None:
        data = packing.to_texels(texels)
        size = (data.shape[1], data.shape[0])
        tex = self._textures.get(name)
        if tex is None or tex.size != size:
            if tex is not None:
                tex.release()
            tex = self.ctx.texture(size, 4, dtype="f4")
            tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
            self._textures[name] = tex
        tex.write(data)

    def set_gaussians(self, gaussians: Gaussians) -> tuple[str, ...]:
        """Upload the splats (torch tensors on any device); only textures whose inputs changed are written.

        Returns the names of the textures written ("mean", "cov", "sh").
        """
        g = gaussians
        if g.means.dim() != 2:
            raise ValueError(
                f"SplatRenderer.set_gaussians: expected an unbatched set (means [G, 3]), got means {tuple(g.means.shape)}"
            )
        if g.num != self.num or g.sh.shape[-2] != self.num_sh:
            self._fields.clear()
        changed = {name for name in _TEXTURE_OF if self._fields.changed(name, getattr(g, name))}
        dirty = {_TEXTURE_OF[name] for name in changed}
        self.num, self.num_sh = g.num, g.sh.shape[-2]
        if "mean" in dirty:
            texels = packing.mean_texels(g.means, g.opacity_logits)
            self._write_texture("mean", texels)
            if "means" in changed:
                self._means_np = np.ascontiguousarray(texels[:, :3])
                self._means_torch = g.means.detach() if g.means.is_cuda else None
                self._means_version += 1
        if "cov" in dirty:
            self._write_texture("cov", packing.covariance_texels(g.quats, g.log_scales, g.parts))
        if "sh" in dirty:
            self._write_texture("sh", packing.sh_texels(g.sh))
        uploaded = tuple(sorted(dirty))
        self.stats.uploaded = uploaded
        return uploaded

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
                order = self._cpu_order.get(self._means_np, self._means_version, params.T_cam_world)
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
        self._sort(params)
        p = self.program
        for unit, name in enumerate(("mean", "cov", "sh")):
            self._textures[name].use(unit)
            p[f"u_{name}"] = unit
        p["u_tex_width"] = packing.TEXTURE_WIDTH
        p["u_num_sh"] = self.num_sh
        p["u_view"].write(mat4_uniform(params.T_cam_world))
        p["u_intrinsics"] = (params.fx, params.fy, params.cx, params.cy)
        p["u_size"] = (float(params.width), float(params.height))
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

    def read(self) -> np.ndarray:
        """[H, W, 4] float32 of the renderer's framebuffer, top row first: rgb over background, alpha."""
        assert self.fbo is not None
        if self.target_dtype == "f1":
            raw = np.frombuffer(self.fbo.read(components=4, dtype="f1"), dtype=np.uint8)
            pixels = raw.astype(np.float32) / 255.0
        else:
            pixels = np.frombuffer(self.fbo.read(components=4, dtype="f4"), dtype=np.float32)
        return pixels.reshape(self.height, self.width, 4)[::-1].copy()

    def render(self, camera: Camera, *, background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
        """[H, W, 4] float32: the splats composited over `background` (rgb) and their opacity (alpha)."""
        self.draw(camera, background=background)
        return self.read()

    @property
    def mean_texture(self) -> moderngl.Texture | None:
        """Texels (x, y, z, opacity) per Gaussian, for overlays that draw centres."""
        return self._textures.get("mean")

    def release(self) -> None:
        for obj in (*self._textures.values(), self._vao, self._cpu_indices, self.program, self.fbo,
                    self.color_texture, self._depth_rb):  # fmt: skip
            if obj is not None:
                obj.release()
        if self._gpu_sorter is not None:
            self._gpu_sorter.release()
        self._textures.clear()
