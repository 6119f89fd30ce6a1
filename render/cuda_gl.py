"""CUDA-OpenGL interop for the splat textures: device-to-device copies from torch tensors into GL textures.

Uses NVIDIA's `cuda-python` runtime bindings (`cuda.bindings.runtime`) when they are installed; the GL context
that owns the textures must be current and on the same GPU as torch. Anything missing raises
`InteropUnavailable`, and the caller falls back to pinned host memory.
"""

from __future__ import annotations

import moderngl
import torch
from torch import Tensor

GL_TEXTURE_2D = 0x0DE1


class InteropUnavailable(RuntimeError):
    """CUDA-OpenGL interop cannot be used here (no bindings, no CUDA, or the driver refused the GL object)."""


def _runtime():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as e:
            raise InteropUnavailable("the cuda-python bindings are not installed (pip install cuda-python)") from e
    return cudart


def _check(cudart, result, what: str):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise InteropUnavailable(f"{what} failed: {err}")
    return rest[0] if len(rest) == 1 else rest


class TextureInterop:
    """Registers float RGBA textures with CUDA once; `write` copies [rows * width, 4] float32 CUDA tensors in."""

    def __init__(self, textures: dict[str, moderngl.Texture]) -> None:
        if not torch.cuda.is_available():
            raise InteropUnavailable("no CUDA device")
        self.cudart = _runtime()
        flags = self.cudart.cudaGraphicsRegisterFlags.cudaGraphicsRegisterFlagsWriteDiscard
        self.textures = textures
        self._resources = {}
        try:
            for name, tex in textures.items():
                if tex.dtype != "f4" or tex.components != 4:
                    raise InteropUnavailable(f"texture {name} is not float RGBA ({tex.components} x {tex.dtype})")
                self._resources[name] = _check(
                    self.cudart,
                    self.cudart.cudaGraphicsGLRegisterImage(tex.glo, GL_TEXTURE_2D, int(flags)),
                    f"registering GL texture {name}",
                )
        except Exception:
            self.release()
            raise

    def write(self, sources: dict[str, Tensor]) -> None:
        """Copy each [rows * width, 4] float32 CUDA tensor into the texture of that name (stream-ordered)."""
        cudart = self.cudart
        stream = cudart.cudaStream_t(torch.cuda.current_stream().cuda_stream)
        kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        resources = [self._resources[n] for n in sources]
        for res in resources:
            _check(cudart, cudart.cudaGraphicsMapResources(1, res, stream), "mapping a GL texture")
        try:
            for name, src in sources.items():
                tex = self.textures[name]
                width_bytes = tex.width * 16
                if not src.is_contiguous() or src.numel() * 4 != width_bytes * tex.height:
                    raise ValueError(f"interop source for {name}: {tuple(src.shape)} does not fill {tex.size}")
                array = _check(
                    cudart, cudart.cudaGraphicsSubResourceGetMappedArray(self._resources[name], 0, 0), "mapped array"
                )
                _check(
                    cudart,
                    cudart.cudaMemcpy2DToArrayAsync(
                        array, 0, 0, src.data_ptr(), width_bytes, width_bytes, tex.height, kind, stream
                    ),
                    f"copy into texture {name}",
                )
        finally:
            for res in resources:
                _check(cudart, cudart.cudaGraphicsUnmapResources(1, res, stream), "unmapping a GL texture")

    def release(self) -> None:
        for res in self._resources.values():
            self.cudart.cudaGraphicsUnregisterResource(res)
        self._resources.clear()


class ImageInterop:
    """Reads an 8-bit RGBA GL texture (the renderer's colour target) into a CUDA tensor, device to device."""

    def __init__(self, texture: moderngl.Texture) -> None:
        if not torch.cuda.is_available():
            raise InteropUnavailable("no CUDA device")
        if texture.dtype != "f1" or texture.components != 4:
            raise InteropUnavailable(f"colour target is {texture.components} x {texture.dtype}, not RGBA8")
        self.cudart = _runtime()
        self.texture = texture
        flags = self.cudart.cudaGraphicsRegisterFlags.cudaGraphicsRegisterFlagsReadOnly
        self._resource = _check(
            self.cudart,
            self.cudart.cudaGraphicsGLRegisterImage(texture.glo, GL_TEXTURE_2D, int(flags)),
            "registering the GL colour target",
        )

    def read(self, out: Tensor) -> None:
        """Copy the texture into `out` ([H, W, 4] uint8 CUDA, GL row order), ordered on torch's current stream."""
        cudart = self.cudart
        w, h = self.texture.size
        if out.dtype != torch.uint8 or tuple(out.shape) != (h, w, 4) or not out.is_contiguous():
            raise ValueError(f"ImageInterop.read: expected a contiguous uint8 [{h}, {w}, 4] tensor, got {out.shape}")
        stream = cudart.cudaStream_t(torch.cuda.current_stream().cuda_stream)
        _check(cudart, cudart.cudaGraphicsMapResources(1, self._resource, stream), "mapping the colour target")
        try:
            array = _check(cudart, cudart.cudaGraphicsSubResourceGetMappedArray(self._resource, 0, 0), "mapped array")
            kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice
            _check(
                cudart,
                cudart.cudaMemcpy2DFromArrayAsync(out.data_ptr(), w * 4, array, 0, 0, w * 4, h, kind, stream),
                "copy from the colour target",
            )
        finally:
            _check(cudart, cudart.cudaGraphicsUnmapResources(1, self._resource, stream), "unmapping the colour target")

    def release(self) -> None:
        self.cudart.cudaGraphicsUnregisterResource(self._resource)
