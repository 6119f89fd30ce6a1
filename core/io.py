"""Safe file io shared by every saver: atomic writes and safetensors files with a JSON header (no pickle)."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import save as st_save_bytes

META_KEY = "lca_meta"  # safetensors metadata key holding our JSON header


class FileFormatError(ValueError):
    """A file exists but is not what it claims to be (corrupt, truncated, wrong kind or version)."""


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` then rename over `path`, so a crash never leaves a half-written file.

    The old file (if any) stays intact until the rename; the temporary file is removed on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            kept = "the previous file is unchanged" if path.exists() else "nothing was written"
            raise OSError(
                e.errno, f"{path}: the disk is full ({e.strerror}); {kept}: free some space and save again"
            ) from e
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict, *, kind: str) -> Path:
    """Write `tensors` and a JSON-serialisable `meta` header (tagged with `kind`) atomically as safetensors."""
    header = {"kind": kind, **meta}
    payload = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    data = st_save_bytes(payload, metadata={META_KEY: json.dumps(header)})
    return atomic_write_bytes(path, data)


def load_tensors(
    path: str | os.PathLike, *, kind: str, max_bytes: int = 8 << 30
) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by `save_tensors`; raise `FileFormatError` with the reason if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise FileFormatError(f"{path}: {size / 2**30:.1f} GiB is larger than the {max_bytes / 2**30:.0f} GiB limit")
    data = path.read_bytes()
    try:
        tensors = st_load_bytes(data)
        header_len = int.from_bytes(data[:8], "little")
        raw_header = json.loads(data[8 : 8 + header_len])
    except (SafetensorError, ValueError, UnicodeDecodeError, RuntimeError) as e:
        raise FileFormatError(f"{path}: not a readable safetensors file ({e}); it may be truncated or corrupt") from e
    meta_json = raw_header.get("__metadata__", {}).get(META_KEY)
    if meta_json is None:
        raise FileFormatError(f"{path}: safetensors file without a {kind} header; was it written by this project?")
    try:
        meta = json.loads(meta_json)
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{path}: header is not valid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        got = meta.get("kind") if isinstance(meta, dict) else type(meta).__name__
        raise FileFormatError(f"{path}: expected a {kind} file, found a {got!r} file")
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise FileFormatError(f"{path}: tensor {name!r} holds NaN or infinite values")
    return tensors, meta


MAX_IMAGE_PIXELS = 40_000_000  # about 8K x 5K; a larger declared size is refused before any pixel is decoded


def read_image_rgb(path: str | os.PathLike, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """A photo as [H, W, 3] uint8 RGB, EXIF rotation applied; grey, palette, 16-bit and CMYK files are converted.

    The declared size is checked from the header before decoding (a "decompression bomb" is refused without
    allocating its pixels); truncated or corrupt files raise `FileFormatError` naming the file.
    """
    from PIL import Image, ImageOps

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    too_big = f"is over the {max_pixels / 1e6:.0f} megapixel limit (or empty); resize the photo before opening it"
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w <= 0 or h <= 0 or w * h > max_pixels:
                raise FileFormatError(f"{path}: declared image size {w} x {h} {too_big}")
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                a = np.asarray(img, dtype=np.float64)
                scale = 255.0 / 65535.0 if img.mode.startswith("I") and a.max(initial=0) > 255 else 1.0
                img = Image.fromarray(np.clip(a * scale, 0, 255).astype(np.uint8), mode="L")
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except FileFormatError:
        raise
    except Image.DecompressionBombError as e:  # Pillow's own header check fires first for enormous sizes
        raise FileFormatError(f"{path}: declared image size {too_big} ({e})") from e
    except MemoryError:
        raise
    except Exception as e:  # Pillow raises many types (OSError, SyntaxError, struct.error, ...) for bad files
        raise FileFormatError(
            f"{path}: not a readable image ({type(e).__name__}: {e}); is it a whole JPEG or PNG file?"
        ) from e
    return np.ascontiguousarray(rgb)
