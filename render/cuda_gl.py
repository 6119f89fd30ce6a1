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
