"""Safe file io shared by every saver: atomic writes and safetensors files with a JSON header (no pickle)."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import math
import os
import re
import stat
import struct
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import save as st_save_bytes

log = logging.getLogger(__name__)
META_KEY = "lca_meta"  # safetensors metadata key holding our JSON header


class FileFormatError(ValueError):
    """A file exists but is not what it claims to be (corrupt, truncated, wrong kind or version)."""


STALE_TEMP_S = 600.0  # a temporary of another save left this long (no live writer named in it) is stale
_TEMP_WITH_PID = re.compile(r"(\d+)\.[A-Za-z0-9_]+")  # `<pid>.<mkstemp's random letters>`


def current_umask() -> int:
    """The process's umask, read without changing it where Linux reports it (os.umask alone must set one)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_file_mode(path: Path) -> int:
    """The mode a saved file gets: the mode of the file it replaces, else what `open` would give (0666 & ~umask),
    not mkstemp's private 0600 (exports are meant to be shared)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of earlier saves of `path` (`.NAME.<pid>.<random>.tmp`, or the older `.NAME.<random>.tmp`)
    that a killed save left: those whose writing process is gone, and unnamed ones older than STALE_TEMP_S."""
    path = Path(path)
    removed = []
    prefix = _temp_prefix(path)
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tmp")]
    except OSError:
        return removed
    now = time.time()
    for tmp in candidates:
        middle = tmp.name[len(prefix) : -len(".tmp")]
        named = _TEMP_WITH_PID.fullmatch(middle)
        try:
            if named:
                if int(named[1]) == os.getpid() or _pid_alive(int(named[1])):
                    continue
            elif "." in middle or now - tmp.stat().st_mtime < STALE_TEMP_S:
                continue  # another file's temporary (NAME.suffix), or one that may still be written
            if tmp.is_file() and not tmp.is_symlink():
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted save of %s", len(removed), path)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists (another user's) or not a pid at all: leave the file alone
    return True


def new_temporary(path: str | os.PathLike) -> Path:
    """An empty temporary file beside `path` (`.NAME.<pid>.<random>.tmp`) for a save that `commit_temporary`
    renames over it; temporaries left by earlier, killed saves of the same `path` are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name to write to")
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def commit_temporary(tmp: Path, path: str | os.PathLike) -> Path:
    """Give the finished temporary `tmp` the mode `path` should have (that of the file it replaces, else the
    umask's), flush it to disk and rename it over `path`. On failure the temporary is removed and a full disk
    is reported as such (OSError naming the file)."""
    path = Path(path)
    try:
        os.chmod(tmp, _new_file_mode(path))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            kept = "the previous file is unchanged" if path.exists() else "nothing was written"
            raise OSError(
                e.errno, f"{path}: the disk is full ({e.strerror}); {kept}: free some space and save again"
            ) from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` then rename over `path`, so a crash never leaves a half-written file.

    The old file (if any) stays intact until the rename; the temporary file is removed on failure, and
    temporaries that an earlier, killed save of the same `path` left behind are removed first. The file gets
    the mode of the file it replaces, or the one the user's umask gives a new file.
    """
    tmp = new_temporary(path)
    try:
        write(tmp)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        kept = "the previous file is unchanged" if Path(path).exists() else "nothing was written"
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(
                e.errno, f"{path}: the disk is full ({e.strerror}); {kept}: free some space and save again"
            ) from e
        if e.filename is None or Path(e.filename) == tmp:  # name the file the user asked for, not our temporary
            raise OSError(e.errno, f"{path}: could not be written ({e.strerror or e}); {kept}") from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return commit_temporary(tmp, path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def write_json(path: str | os.PathLike, data: object, *, default: Callable[[object], object] | None = None) -> Path:
    """`data` as JSON indented by 2 with a final newline, written atomically to `path` (its folder made first);
    `default` converts what JSON cannot hold (as in `json.dumps`). Benchmark results and reports are written so."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, (json.dumps(data, indent=2, default=default) + "\n").encode())


@contextlib.contextmanager
def inconsistent_as_format_error(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Errors from a file's contents that do not fit what reads them (a missing key, a tensor of the wrong shape)
    become one FileFormatError naming the file and `what` it holds ("avatar", "checkpoint")."""
    try:
        yield
    except FileFormatError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
        raise FileFormatError(
            f"{path}: {what} contents are inconsistent ({type(e).__name__}: {e}); the file may be corrupt"
        ) from e


def require_regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """`path` if it names a regular file. A missing one raises FileNotFoundError; a folder, named pipe, socket or
    device raises FileFormatError (a reader would fail late on a folder and block for ever on a pipe)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such {what}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(st.st_mode)
            else "a named pipe"
            if stat.S_ISFIFO(st.st_mode)
            else ("a device or socket")
        )
        raise FileFormatError(f"{path}: is {kind}, not a {what}; give the path of a {what}")
    return path


def check_output_path(path: str | os.PathLike, what: str = "output file") -> Path:
    """Check before any work that `path` can be written as a file: not a folder or special file, its nearest
    existing parent a writable folder. Raises IsADirectoryError / NotADirectoryError / PermissionError (OSErrors
    whose message is the whole explanation)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give the {what}'s file name (e.g. {path / 'out'}...)")
    if path.exists() and not path.is_file():
        raise IsADirectoryError(f"{path} exists and is not a regular file; choose another {what} name")
    parent = path.parent if str(path.parent) else Path(".")
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: no permission to write in {parent}")
    return path


MAX_JSON_DEPTH = 64  # our headers nest a few levels; deeper means a crafted file


def loads_json(text: str | bytes, source: str, *, max_depth: int = MAX_JSON_DEPTH) -> object:
    """json.loads with errors (syntax, encoding, nesting beyond `max_depth`) as FileFormatError naming `source`.
    Python's parser recurses per level, so deep nesting would otherwise surface as RecursionError."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise FileFormatError(f"{source}: JSON nested too deeply (limit {max_depth} levels)") from None
    except (ValueError, TypeError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise FileFormatError(f"{source}: not valid JSON ({e})") from e
    stack = [(value, 1)]
    while stack:  # iterative: a nested value must not make the check itself recurse
        v, depth = stack.pop()
        if isinstance(v, dict | list):
            if depth > max_depth:
                raise FileFormatError(f"{source}: JSON nested more than {max_depth} levels deep")
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
    return value


def npz_headers(
    source: str, file: str | os.PathLike | io.BytesIO, *, max_arrays: int, max_array_bytes: int, kinds: str = "iufU"
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{array name: (shape, dtype)} of an .npz, read from each member's .npy header without loading any data.

    Refused (FileFormatError naming `source`) before numpy allocates: more than `max_arrays` members, a member
    that is not an .npy array, a dtype whose kind is not in `kinds` (no objects, so no pickles), an array that
    declares or unpacks to more than `max_array_bytes`."""
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(file) as zf:
            infos = zf.infolist()
            if len(infos) > max_arrays:
                raise FileFormatError(f"{source}: {len(infos)} arrays in the .npz, at most {max_arrays} expected")
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise FileFormatError(f"{source}: {info.filename!r} in the .npz is not an .npy array")
                if info.file_size > max_array_bytes + 4096:
                    raise FileFormatError(
                        f"{source}: {info.filename} unpacks to {info.file_size} bytes, over the "
                        f"{max_array_bytes / 2**20:.0f} MiB limit for one array"
                    )
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read_header = {
                        (1, 0): np.lib.format.read_array_header_1_0,
                        (2, 0): np.lib.format.read_array_header_2_0,
                    }.get(version)
                    if read_header is None:
                        raise FileFormatError(f"{source}: {info.filename} has an unknown .npy version {version}")
                    shape, _, dtype = read_header(f)
                if dtype.kind not in kinds or dtype.itemsize == 0 or dtype.hasobject:
                    raise FileFormatError(f"{source}: {info.filename} holds {dtype} values, not numbers or text")
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes > max_array_bytes:
                    raise FileFormatError(
                        f"{source}: {info.filename} declares {shape} {dtype} ({nbytes / 2**20:.1f} MiB), over the "
                        f"{max_array_bytes / 2**20:.0f} MiB limit for one array"
                    )
                out[info.filename[: -len(".npy")]] = (tuple(shape), dtype)
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError, ValueError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise FileFormatError(f"{source}: not a readable NPZ file ({type(e).__name__}: {e})") from e
    return out


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict, *, kind: str) -> Path:
    """Write `tensors` and a JSON-serialisable `meta` header (tagged with `kind`) atomically as safetensors."""
    header = {"kind": kind, **meta}
    payload = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    data = st_save_bytes(payload, metadata={META_KEY: json.dumps(header)})
    return atomic_write_bytes(path, data)


MAX_HEADER_BYTES = 100 << 20  # a safetensors header (tensor table and our JSON metadata)


def read_safetensors_header(path: str | os.PathLike, *, max_header_bytes: int = MAX_HEADER_BYTES) -> dict:
    """The JSON header of a safetensors file, checked against the file without reading the tensors: a regular
    file, a bounded header, and every tensor's byte range inside the data (a truncated file is refused here,
    before anything is built from it). FileFormatError says what is wrong."""
    path = require_regular_file(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if size < 8 or n <= 0 or n > min(max_header_bytes, size - 8):
            raise FileFormatError(
                f"{path}: not a safetensors file (header length {n}, file {size} bytes); it may be truncated or corrupt"
            )
        head = f.read(n)
    raw = loads_json(head, f"{path} (safetensors header)", max_depth=4)
    if not isinstance(raw, dict):
        raise FileFormatError(f"{path}: safetensors header is not a JSON object")
    data_len, end = size - 8 - n, 0
    for name, entry in raw.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise FileFormatError(f"{path}: tensor {name!r} has no valid data offsets; the file is corrupt")
        end = max(end, offsets[1])
    if end > data_len:
        raise FileFormatError(
            f"{path}: truncated or corrupt: its tensors need {end} bytes of data, the file holds {data_len}; "
            "copy or download it again"
        )
    return raw


def header_meta(raw: dict, path: str | os.PathLike, kind: str) -> dict:
    """Our JSON metadata (the `lca_meta` string) from a safetensors header, checked to be a `kind` file."""
    meta_json = raw.get("__metadata__", {}).get(META_KEY) if isinstance(raw.get("__metadata__"), dict) else None
    if not isinstance(meta_json, str):
        raise FileFormatError(f"{path}: safetensors file without a {kind} header; was it written by this project?")
    meta = loads_json(meta_json, f"{path} (header)")
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        got = meta.get("kind") if isinstance(meta, dict) else type(meta).__name__
        raise FileFormatError(f"{path}: expected a {kind} file, found a {got!r} file")
    return meta


def load_tensors(
    path: str | os.PathLike, *, kind: str, max_bytes: int = 8 << 30
) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by `save_tensors`; raise `FileFormatError` with the reason if it is not one."""
    path = require_regular_file(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise FileFormatError(f"{path}: {size / 2**30:.1f} GiB is larger than the {max_bytes / 2**30:.0f} GiB limit")
    meta = header_meta(read_safetensors_header(path), path, kind)  # before reading the data
    data = path.read_bytes()
    try:
        tensors = st_load_bytes(data)
    except (SafetensorError, ValueError, UnicodeDecodeError, RuntimeError) as e:
        raise FileFormatError(f"{path}: not a readable safetensors file ({e}); it may be truncated or corrupt") from e
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise FileFormatError(f"{path}: tensor {name!r} holds NaN or infinite values")
    return tensors, meta


def save_image_bgr(path: str | os.PathLike, bgr: np.ndarray) -> Path:
    """Write an OpenCV (BGR) image, encoded by the path's suffix (.png, .jpg), atomically with the user's umask
    (cv2.imwrite writes in place and says only False when it fails)."""
    import cv2

    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or ".png", bgr)
    if not ok:
        raise OSError(f"{path}: could not encode a {bgr.shape} image as {path.suffix or '.png'}")
    return atomic_write_bytes(path, buf.tobytes())


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
