"""Depth sorting on the GPU with OpenGL 4.3 compute shaders (bitonic sort of float keys)."""

from __future__ import annotations

from importlib import resources

import moderngl
import numpy as np

BLOCK = 1024  # elements sorted per workgroup in shared memory


def shader_source(name: str) -> str:
    return resources.files("render.shaders").joinpath(name).read_text()


def padded_size(count: int) -> int:
    """The power of two >= max(count, BLOCK) that the bitonic network sorts."""
    return max(BLOCK, 1 << max(0, count - 1).bit_length())


class ComputeSorter:
    """Writes the back-to-front order of the Gaussians in a mean texture into a GL buffer, on the GPU.

    `order` holds `padded_size(count)` uint32 entries, the first `count` the real ids farthest first;
    it serves directly as the splat draw's index buffer.
    """

    def __init__(self, ctx: moderngl.Context) -> None:
        if ctx.version_code < 430:
            raise RuntimeError(f"GPU sorting needs OpenGL 4.3 compute shaders; this context is {ctx.version_code}")
        self.ctx = ctx
        self._keys_prog = ctx.compute_shader(shader_source("sort_keys.comp.glsl"))
        self._global_prog = ctx.compute_shader(shader_source("sort_global.comp.glsl"))
        self._local_prog = ctx.compute_shader(shader_source("sort_local.comp.glsl"))
        self._keys: moderngl.Buffer | None = None
        self.order: moderngl.Buffer | None = None
        self.size = 0

    def ensure_capacity(self, count: int) -> bool:
        """Reallocate buffers for `count` Gaussians; True when the buffers were replaced."""
        size = padded_size(count)
        if size == self.size:
            return False
        for buf in (self._keys, self.order):
            if buf is not None:
                buf.release()
        self._keys = self.ctx.buffer(reserve=size * 4)
        self.order = self.ctx.buffer(np.arange(size, dtype=np.uint32).tobytes())
        self.size = size
        return True

    def sort(self, mean_texture: moderngl.Texture, tex_width: int, count: int, T_cam_world: np.ndarray) -> None:
        """Fill `self.order` with ids of the `count` Gaussians, farthest first from camera `T_cam_world` [4, 4]."""
        self.ensure_capacity(count)
        assert self._keys is not None and self.order is not None
        self._keys.bind_to_storage_buffer(0)
        self.order.bind_to_storage_buffer(1)
        mean_texture.use(0)
        p = self._keys_prog
        p["u_mean"] = 0
        p["u_tex_width"] = tex_width
        p["u_count"] = count
        p["u_depth_row"] = tuple(float(v) for v in T_cam_world[2])
        p.run(group_x=self.size // 256)
        barrier = moderngl.SHADER_STORAGE_BARRIER_BIT
        self.ctx.memory_barrier(barrier)
        self._local_prog["u_k"] = 0
        self._local_prog.run(group_x=self.size // BLOCK)
        self.ctx.memory_barrier(barrier)
        k = 2 * BLOCK
        while k <= self.size:
            j = k // 2
            while j >= BLOCK:
                self._global_prog["u_k"] = k
                self._global_prog["u_j"] = j
                self._global_prog.run(group_x=self.size // 2 // 256)
                self.ctx.memory_barrier(barrier)
                j //= 2
            self._local_prog["u_k"] = k
            self._local_prog.run(group_x=self.size // BLOCK)
            self.ctx.memory_barrier(barrier)
            k *= 2
        self.ctx.memory_barrier(moderngl.ELEMENT_ARRAY_BARRIER_BIT | barrier)

    def release(self) -> None:
        for obj in (self._keys, self.order, self._keys_prog, self._global_prog, self._local_prog):
            if obj is not None:
                obj.release()
