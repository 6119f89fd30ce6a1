"""Splat data into the renderer's float textures: packed by torch where the Gaussians live, only what changed.

CPU tensors are packed into a reused host buffer that the textures read directly. CUDA tensors are packed on
the GPU into a reused device buffer and reach the textures either through one asynchronous copy into a reused
pinned host buffer ("pinned") or without leaving the GPU through CUDA-OpenGL interop ("interop", needs the
`cuda-python` bindings and a GL context on the same GPU); `transfer="auto"` takes interop when it works.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import moderngl
import torch
from torch import Tensor

from core.raster.types import Gaussians
from render import packing

log = logging.getLogger(__name__)

Transfer = Literal["auto", "pinned", "interop"]

# Which texture each Gaussians field feeds, and the texels per Gaussian of each texture (sh: K per Gaussian).
TEXTURE_OF = {
    "means": "mean",
    "opacity_logits": "mean",
    "quats": "cov",
    "log_scales": "cov",
    "parts": "cov",
    "sh": "sh",
}
TEXTURES = ("mean", "cov", "sh")


@dataclass(frozen=True)
class _Segment:
    start: int  # first texel of this texture in the staging buffer
    rows: int  # texture rows (of packing.TEXTURE_WIDTH texels)

    @property
    def stop(self) -> int:
        return self.start + self.rows * packing.TEXTURE_WIDTH


class FieldTracker:
    """Which fields changed since the last upload: a new tensor object (or an in-place edit) whose values differ.

    Snapshots live in buffers reused from frame to frame (no allocation once sizes settle); a field that arrives
    as the very same tensor at the same version is unchanged without looking at its values.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[Tensor, int]] = {}  # the tensor last seen (held, so its id is not reused)
        self._snap: dict[str, Tensor | None] = {}

    def changed(self, name: str, t: Tensor | None) -> bool:
        if t is None:
            was = self._snap.get(name, 0)
            self._snap[name] = None
            self._seen.pop(name, None)
            return was is not None
        seen = self._seen.get(name)
        if seen is not None and seen[0] is t and seen[1] == t._version:
            return False
        self._seen[name] = (t, t._version)
        t = t.detach()
        snap = self._snap.get(name)
        same = snap is not None and snap.shape == t.shape and snap.dtype == t.dtype and snap.device == t.device
        if same and torch.equal(snap, t):
            return False
        if same:
            snap.copy_(t)
        else:
            self._snap[name] = t.clone()
        return True

    def clear(self) -> None:
        self._seen.clear()
        self._snap.clear()


class TextureUploader:
    """Owns the `mean`, `cov` and `sh` textures and the buffers that fill them (see the module docstring)."""

    def __init__(self, ctx: moderngl.Context, *, transfer: Transfer = "auto") -> None:
        self.ctx = ctx
        self.transfer_mode = transfer
        self.textures: dict[str, moderngl.Texture] = {}
        self.fields = FieldTracker()
        self._segments: dict[str, _Segment] = {}
        self._staging: Tensor | None = None  # [T, 4] float32 on the Gaussians' device, every texture in a row
        self._pinned: Tensor | None = None  # [T, 4] float32 pinned host mirror (CUDA, "pinned")
        self._interop = None  # render.cuda_gl.TextureInterop once it is set up
        self._layout: tuple | None = None
        self.transfer_used = ""  # "host", "pinned" or "interop" for the last upload

    # Layout --------------------------------------------------------------------------------
    def _ensure_layout(self, num: int, num_sh: int, device: torch.device) -> bool:
        """(Re)allocate the staging buffers and textures for `num` Gaussians; True when they were replaced."""
        layout = (num, num_sh, device)
        if layout == self._layout:
            return False
        if self._interop is not None:  # unregister from CUDA before GL deletes the textures
            self._interop.release()
            self._interop = None
        texels = {"mean": num, "cov": 2 * num, "sh": num_sh * num}
        start = 0
        self._segments = {}
        for name in TEXTURES:
            rows = packing.texture_rows(texels[name])
            self._segments[name] = _Segment(start, rows)
            start += rows * packing.TEXTURE_WIDTH
        self._staging = torch.zeros(start, 4, dtype=torch.float32, device=device)
        self._pinned = torch.zeros(start, 4, dtype=torch.float32, pin_memory=True) if device.type == "cuda" else None
        for name in TEXTURES:
            size = (packing.TEXTURE_WIDTH, self._segments[name].rows)
            tex = self.textures.get(name)
            if tex is None or tex.size != size:
                if tex is not None:
                    tex.release()
                tex = self.ctx.texture(size, 4, dtype="f4")
                tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
                self.textures[name] = tex
        self.fields.clear()
        self._layout = layout
        return True

    def staging(self, name: str) -> Tensor:  # [rows * TEXTURE_WIDTH, 4]
        assert self._staging is not None
        seg = self._segments[name]
        return self._staging[seg.start : seg.stop]

    @property
    def means_host(self) -> Tensor | None:
        """[G, 3] float32 host view of the packed positions (CPU Gaussians only), for the CPU depth sort."""
        if self._staging is None or self._staging.device.type != "cpu" or self._layout is None:
            return None
        return self.staging("mean")[: self._layout[0], :3]

    # Upload --------------------------------------------------------------------------------
    def upload(self, g: Gaussians) -> tuple[str, ...]:
        """Pack and write the textures whose inputs changed; returns their names, sorted."""
        num, num_sh = g.num, g.sh.shape[-2]
        self._ensure_layout(num, num_sh, g.means.device)
        dirty = {TEXTURE_OF[name] for name in TEXTURE_OF if self.fields.changed(name, getattr(g, name))}
        if not dirty:
            return ()
        if "mean" in dirty:
            packing.pack_mean(g.means, g.opacity_logits, self.staging("mean")[:num])
        if "cov" in dirty:
            packing.pack_covariance(g.quats, g.log_scales, g.parts, self.staging("cov")[: 2 * num])
        if "sh" in dirty:
            packing.pack_sh(g.sh, self.staging("sh")[: num_sh * num])
        self._write(sorted(dirty))
        return tuple(sorted(dirty))

    def _write(self, names: list[str]) -> None:
        assert self._staging is not None
        if self._staging.device.type != "cuda":
            for name in names:
                self.textures[name].write(self.staging(name).numpy())
            self.transfer_used = "host"
            return
        if self.transfer_mode in ("auto", "interop") and self._write_interop(names):
            self.transfer_used = "interop"
            return
        # One asynchronous copy of the span of changed textures into the pinned mirror, then GL reads the mirror.
        assert self._pinned is not None
        lo = min(self._segments[n].start for n in names)
        hi = max(self._segments[n].stop for n in names)
        self._pinned[lo:hi].copy_(self._staging[lo:hi], non_blocking=True)
        torch.cuda.current_stream(self._staging.device).synchronize()
        for name in names:
            seg = self._segments[name]
            self.textures[name].write(self._pinned[seg.start : seg.stop].numpy())
        self.transfer_used = "pinned"

    def _write_interop(self, names: list[str]) -> bool:
        from render.cuda_gl import InteropUnavailable, TextureInterop

        try:
            if self._interop is None:
                self._interop = TextureInterop(dict(self.textures))
            self._interop.write({n: self.staging(n) for n in names})
        except InteropUnavailable as e:
            if self.transfer_mode == "interop":
                raise RuntimeError(f"transfer='interop' is not available here: {e}") from e
            log.info("CUDA-OpenGL interop unavailable (%s); uploading through pinned host memory", e)
            if self._interop is not None:
                self._interop.release()
                self._interop = None
            self.transfer_mode = "pinned"
            return False
        return True

    def release(self) -> None:
        if self._interop is not None:
            self._interop.release()
            self._interop = None
        for tex in self.textures.values():
            tex.release()
        self.textures.clear()
        self._layout = None
        self.fields.clear()
