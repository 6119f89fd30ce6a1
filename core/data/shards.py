"""WebDataset-style tar shards: one sample = one clip or capture, its files grouped by a shared key.

Layout of a sample with key `wild-train-000012` inside a shard:
    wild-train-000012.json              metadata (kind, identity, sizes, lighting, camera model, ...)
    wild-train-000012.npz               arrays (cameras, body parameters, head boxes, ...)
    wild-train-000012.0003-00.rgb.png   frame 3, camera 0: colour (RGB, 8 bit)
    wild-train-000012.0003-00.mask.png  foreground alpha (8 bit)
    wild-train-000012.0003-00.parts.png part id per pixel (index into PART_NAMES, 255 = background)
    wild-train-000012.0003-00.closeup.rgb.png   head close-up of that frame (optional; .json `closeup_size` N > 0,
    wild-train-000012.0003-00.closeup.mask.png  N x N; its intrinsics are the .npz's `closeup_K` [F, C, 3, 3])
A shard is written under a temporary name and renamed when complete, so a file named `*.tar` is always
whole; a killed run leaves at most `.NAME.tar.<pid>.<random>.tmp` files, ignored by readers and removed by the
next save of that shard.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from core.io import FileFormatError, atomic_write, loads_json, npz_headers

PART_BACKGROUND = 255
MAX_MEMBER_BYTES = 256 << 20  # one encoded image or array file; a larger member means a corrupt or foreign tar
MAX_SAMPLE_PIXELS = 1 << 28  # frames x cameras x height x width of one decoded sample (~1 GiB of RGB)
# A sample's .npz (cameras, body parameters, boxes: kilobytes per frame) as declared by its .npy headers, checked
# before numpy allocates: a 2 MB member of zeros could otherwise unpack to gigabytes.
MAX_SAMPLE_ARRAYS = 64
MAX_SAMPLE_ARRAY_BYTES = 64 << 20


class ShardError(FileFormatError):
    """A shard (or one of its samples) is truncated, corrupt or not in the layout this project writes."""


def _check_meta(key: str, meta: object) -> tuple[int, int, int, int]:
    """(F, C, H, W) from a sample's JSON header, checked to be sane (close-ups included) before anything is
    allocated."""
    if not isinstance(meta, dict):
        raise ShardError(f"sample {key!r}: .json is not a mapping")
    try:
        dims = tuple(int(meta[k]) for k in ("num_frames", "num_cameras", "height", "width"))
    except (KeyError, TypeError, ValueError) as e:
        raise ShardError(f"sample {key!r}: .json lacks valid num_frames/num_cameras/height/width ({e})") from e
    F, C, H, W = dims
    if min(dims) < 1 or F * C * H * W > MAX_SAMPLE_PIXELS:
        raise ShardError(f"sample {key!r}: implausible sizes frames={F} cameras={C} height={H} width={W}")
    closeup_size(key, meta, F * C)
    return F, C, H, W


def closeup_size(key: str, meta: dict, views: int = 1) -> int:
    """The side N of a sample's head close-ups from its JSON header (0: it has none), checked to be sane."""
    try:
        n = int(meta.get("closeup_size") or 0)
    except (TypeError, ValueError) as e:
        raise ShardError(f"sample {key!r}: .json has an unusable closeup_size ({e})") from e
    if n < 0 or n > 4096 or views * n * n > MAX_SAMPLE_PIXELS:
        raise ShardError(f"sample {key!r}: implausible closeup_size {n} for {views} views")
    return n


def _read_meta_arrays(key: str, files: dict[str, bytes]) -> tuple[dict, dict[str, np.ndarray]]:
    if "json" not in files or "npz" not in files:
        raise ShardError(f"sample {key!r} lacks its .json or .npz file (has {sorted(files)[:5]}...)")
    try:
        meta = loads_json(files["json"], f"sample {key!r}: .json")
        npz = io.BytesIO(files["npz"])
        declared = npz_headers(
            f"sample {key!r}: .npz", npz, max_arrays=MAX_SAMPLE_ARRAYS, max_array_bytes=MAX_SAMPLE_ARRAY_BYTES
        )
        total = sum(math.prod(shape) * dtype.itemsize for shape, dtype in declared.values())
        if total > MAX_SAMPLE_ARRAY_BYTES:
            raise ShardError(
                f"sample {key!r}: its arrays declare {total / 2**20:.0f} MiB, over the "
                f"{MAX_SAMPLE_ARRAY_BYTES >> 20} MiB limit for one sample"
            )
        npz.seek(0)
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileFormatError as e:
        raise e if isinstance(e, ShardError) else ShardError(str(e)) from e
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise ShardError(f"sample {key!r}: unreadable .json or .npz ({type(e).__name__}: {e})") from e
    return meta, arrays


@dataclass
class Sample:
    """One clip (wild, video) or capture (studio), decoded. Images are indexed [frame, camera]."""

    key: str
    meta: dict
    arrays: dict[str, np.ndarray]
    rgb: np.ndarray  # [F, C, H, W, 3] uint8
    mask: np.ndarray  # [F, C, H, W] uint8 (255 = person)
    parts: np.ndarray | None = None  # [F, C, H, W] uint8 part ids, 255 = background
    extra: dict = field(default_factory=dict)
    closeup_rgb: np.ndarray | None = None  # [F, C, N, N, 3] uint8 head close-ups (intrinsics: arrays["closeup_K"])
    closeup_mask: np.ndarray | None = None  # [F, C, N, N] uint8 (255 = person)

    @property
    def num_frames(self) -> int:
        return self.rgb.shape[0]

    @property
    def num_cameras(self) -> int:
        return self.rgb.shape[1]

    def rgb_at(self, f: int, c: int) -> np.ndarray:  # [H, W, 3]
        return self.rgb[f, c]

    def mask_at(self, f: int, c: int) -> np.ndarray:  # [H, W]
        return self.mask[f, c]

    def parts_at(self, f: int, c: int) -> np.ndarray | None:  # [H, W]
        return None if self.parts is None else self.parts[f, c]

    @property
    def closeup_size(self) -> int:
        """Side N of the head close-ups (0: none)."""
        return 0 if self.closeup_rgb is None else self.closeup_rgb.shape[2]

    def closeup_rgb_at(self, f: int, c: int) -> np.ndarray:  # [N, N, 3]
        return self.closeup_rgb[f, c]

    def closeup_mask_at(self, f: int, c: int) -> np.ndarray:  # [N, N]
        return self.closeup_mask[f, c]


class LazySample:
    """A sample whose images are decoded only when asked for (loaders use a few views of many)."""

    def __init__(self, key: str, files: dict[str, bytes]) -> None:
        self.key, self.files = key, files
        self.meta, self.arrays = _read_meta_arrays(key, files)
        self.num_frames, self.num_cameras, self.height, self.width = _check_meta(key, self.meta)
        self.has_parts = bool(self.meta.get("has_parts"))
        self.closeup_size = closeup_size(key, self.meta)

    def _image(self, name: str, colour: bool, size: tuple[int, int] | None = None) -> np.ndarray:
        if name not in self.files:
            raise ShardError(f"sample {self.key!r} lacks its image {name}")
        return _unpng(self.files[name], colour, size or (self.height, self.width))

    def rgb_at(self, f: int, c: int) -> np.ndarray:
        return self._image(f"{f:04d}-{c:02d}.rgb.png", True)

    def mask_at(self, f: int, c: int) -> np.ndarray:
        return self._image(f"{f:04d}-{c:02d}.mask.png", False)

    def parts_at(self, f: int, c: int) -> np.ndarray | None:
        return self._image(f"{f:04d}-{c:02d}.parts.png", False) if self.has_parts else None

    def closeup_rgb_at(self, f: int, c: int) -> np.ndarray:  # [N, N, 3]
        return self._image(f"{f:04d}-{c:02d}.closeup.rgb.png", True, (self.closeup_size,) * 2)

    def closeup_mask_at(self, f: int, c: int) -> np.ndarray:  # [N, N]
        return self._image(f"{f:04d}-{c:02d}.closeup.mask.png", False, (self.closeup_size,) * 2)


def _png(img: np.ndarray) -> bytes:
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError(f"PNG encoding failed for an image of shape {img.shape}")
    return buf.tobytes()


def _unpng(data: bytes, colour: bool, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a PNG; with `size` (H, W) its declared size is checked from the header before decoding."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ShardError("corrupt PNG in shard (no PNG header)")
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if size is not None and (h, w) != tuple(size):
        raise ShardError(f"PNG in shard declares {w} x {h} pixels; the sample says {size[1]} x {size[0]}")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ShardError("corrupt PNG in shard")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if colour else img


def encode_sample(sample: Sample) -> dict[str, bytes]:
    """Sample -> {file suffix: bytes} (suffix after the key and its dot)."""
    F, C = sample.rgb.shape[:2]
    if sample.mask.shape != sample.rgb.shape[:-1]:
        raise ValueError(f"mask shape {sample.mask.shape} does not match rgb {sample.rgb.shape}")
    meta = dict(
        sample.meta, num_frames=F, num_cameras=C, height=int(sample.rgb.shape[2]), width=int(sample.rgb.shape[3])
    )
    meta["has_parts"] = sample.parts is not None
    meta.pop("closeup_size", None)  # set again below when the sample carries close-ups
    closeups = sample.closeup_rgb is not None
    if closeups:
        N = sample.closeup_rgb.shape[2]
        mask_shape = None if sample.closeup_mask is None else sample.closeup_mask.shape
        if sample.closeup_rgb.shape != (F, C, N, N, 3) or mask_shape != (F, C, N, N):
            raise ValueError(f"close-ups [F={F}, C={C}, N, N, 3] and masks [F, C, N, N] expected, got "
                             f"{sample.closeup_rgb.shape} and {mask_shape}")  # fmt: skip
        if sample.arrays.get("closeup_K", np.zeros(0)).shape != (F, C, 3, 3):
            raise ValueError(f"close-ups need their intrinsics arrays['closeup_K'] [F={F}, C={C}, 3, 3]")
        meta["closeup_size"] = N
    files = {"json": json.dumps(meta, sort_keys=True).encode()}
    buf = io.BytesIO()
    np.savez_compressed(buf, **sample.arrays)
    files["npz"] = buf.getvalue()
    for f in range(F):
        for c in range(C):
            tag = f"{f:04d}-{c:02d}"
            files[f"{tag}.rgb.png"] = _png(sample.rgb[f, c])
            files[f"{tag}.mask.png"] = _png(sample.mask[f, c])
            if sample.parts is not None:
                files[f"{tag}.parts.png"] = _png(sample.parts[f, c])
            if closeups:
                files[f"{tag}.closeup.rgb.png"] = _png(sample.closeup_rgb[f, c])
                files[f"{tag}.closeup.mask.png"] = _png(sample.closeup_mask[f, c])
    return files


def decode_sample(key: str, files: dict[str, bytes]) -> Sample:
    """Inverse of `encode_sample`."""
    meta, arrays = _read_meta_arrays(key, files)
    F, C, H, W = _check_meta(key, meta)
    rgb = np.empty((F, C, H, W, 3), np.uint8)
    mask = np.empty((F, C, H, W), np.uint8)
    parts = np.empty((F, C, H, W), np.uint8) if meta.get("has_parts") else None
    N = closeup_size(key, meta, F * C)
    close_rgb = np.empty((F, C, N, N, 3), np.uint8) if N else None
    close_mask = np.empty((F, C, N, N), np.uint8) if N else None
    images = (
        ("rgb", rgb, True, (H, W)),
        ("mask", mask, False, (H, W)),
        ("parts", parts, False, (H, W)),
        ("closeup.rgb", close_rgb, True, (N, N)),
        ("closeup.mask", close_mask, False, (N, N)),
    )
    for f in range(F):
        for c in range(C):
            tag = f"{f:04d}-{c:02d}"
            for name, out, colour, size in images:
                if out is None:
                    continue
                if f"{tag}.{name}.png" not in files:
                    raise ShardError(f"sample {key!r} lacks its image {tag}.{name}.png")
                out[f, c] = _unpng(files[f"{tag}.{name}.png"], colour, size)
    sample = Sample(key=key, meta=meta, arrays=arrays, rgb=rgb, mask=mask, parts=parts)
    sample.closeup_rgb, sample.closeup_mask = close_rgb, close_mask
    return sample


def write_shard(path: Path, samples: list[Sample]) -> None:
    """Write `samples` to the tar `path` atomically (temporary file, fsync, rename)."""

    def write(tmp: Path) -> None:
        with tarfile.open(tmp, mode="w") as tar:
            for s in samples:
                for suffix, data in encode_sample(s).items():
                    info = tarfile.TarInfo(f"{s.key}.{suffix}")
                    info.size = len(data)
                    info.mtime = 0  # bit-identical shards for identical content
                    tar.addfile(info, io.BytesIO(data))

    atomic_write(path, write)  # a full disk must not also keep a half-written temporary


def iter_raw_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {suffix: bytes}) groups from one shard, in file order, one sample in memory at a time."""
    for ref in index_shard(path):
        yield ref.key, ref.read()


def iter_shard_lazy(path: Path) -> Iterator[LazySample]:
    """Samples of one shard with their images left encoded until used."""
    for ref in index_shard(path):
        yield ref.load()


@dataclass(frozen=True)
class SampleRef:
    """Where one sample's members lie in its shard: enough to shuffle and assign samples without reading them."""

    path: Path
    key: str
    members: tuple[tuple[str, int, int], ...]  # (suffix, byte offset of the data, size)

    def read(self) -> dict[str, bytes]:
        """This sample's member files (only these are read)."""
        files: dict[str, bytes] = {}
        try:
            with open(self.path, "rb") as fh:
                for suffix, offset, size in self.members:
                    fh.seek(offset)
                    data = fh.read(size)
                    if len(data) != size:
                        raise ShardError(
                            f"{self.path}: member {self.key}.{suffix} is cut short; the shard is truncated"
                        )
                    files[suffix] = data
        except OSError as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise ShardError(f"{self.path}: cannot read sample {self.key} ({e})") from e
        return files

    def load(self) -> LazySample:
        """Read this sample's bytes and parse its metadata; images stay encoded."""
        try:
            return LazySample(self.key, self.read())
        except ShardError as e:
            raise e if str(self.path) in str(e) else ShardError(f"{self.path}: {e}") from e


def index_shard(path: Path) -> list[SampleRef]:
    """The samples of one shard in file order, from its tar headers alone (the data is skipped, not read)."""
    path = Path(path)
    refs: list[SampleRef] = []
    key: str | None = None
    group: list[tuple[str, int, int]] = []
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    raise ShardError(f"{path}: member {member.name} declares {member.size} bytes; the shard is corrupt")
                k, _, suffix = member.name.rsplit("/", 1)[-1].partition(".")
                if key is not None and k != key:
                    refs.append(SampleRef(path, key, tuple(group)))
                    group = []
                key = k
                group.append((suffix, member.offset_data, member.size))
        size = path.stat().st_size
    except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ShardError(f"{path}: not a readable tar shard ({type(e).__name__}: {e}); it may be truncated") from e
    if key is not None:
        refs.append(SampleRef(path, key, tuple(group)))
    for ref in refs:
        for suffix, offset, n in ref.members:
            if offset + n > size:
                raise ShardError(f"{path}: member {ref.key}.{suffix} runs past the end of the file; it is truncated")
    return refs


def iter_shard(path: Path) -> Iterator[Sample]:
    """Decoded samples of one shard."""
    for key, files in iter_raw_samples(path):
        try:
            sample = decode_sample(key, files)
        except ShardError as e:
            raise ShardError(f"{path}: {e}") from e
        yield sample


def list_shards(root: Path, pattern: str = "*.tar") -> list[Path]:
    """Complete shards under `root` (sorted); temporary files of an interrupted run are not listed."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"no dataset folder at {root}; create one with `python main.py prepare synth --out {root}`"
        )
    return sorted(p for p in root.rglob(pattern) if p.is_file() and p.suffix == ".tar")
