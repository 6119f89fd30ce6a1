"""Recording and replay of driving channels, as JSON (human-readable) or NPZ.

Both hold {"version", "names", "times", "values"}: times [T] seconds from the first frame, values [T, C]
with NaN (JSON: null) where a channel was absent at that instant. `Recording.at(t)` interpolates linearly.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.io import FileFormatError, atomic_write, atomic_write_bytes, npz_headers, require_regular_file
from core.tracking.types import DrivingFrame, channel_group

RECORDING_VERSION = 1
RECORDING_KIND = "lca-driving-channels"
MAX_RECORDING_BYTES = 1 << 30  # an NPZ file; its arrays may hold at most MAX_ARRAY_BYTES each once unpacked
MAX_JSON_BYTES = 64 << 20  # parsed JSON takes about 8x its size in memory: longer takes belong in NPZ
# Declared sizes of an NPZ, checked from its .npy headers before anything is unpacked (docs/RELIABILITY.md).
MAX_CHANNELS = 1024  # the body rig drives about 370 channels (104 bones x 3, 52 expressions, gaze, root)
MAX_NAME_CHARS = 64
MAX_FRAMES = 1 << 22  # 19 hours at 60 frames per second
MAX_VALUES = 1 << 27  # frames x channels: 512 MiB of float32 (two hours of the whole rig at 60 fps)
MAX_ARRAY_BYTES = 8 * MAX_VALUES  # values may come as float64
MAX_CHANNEL_VALUE = 1e4  # degrees, metres or coefficients: anything larger is damage, not motion


@dataclass(frozen=True)
class Recording:
    times: np.ndarray  # [T] seconds, non-decreasing
    names: tuple[str, ...]  # C channel names
    values: np.ndarray  # [T, C] float32, NaN where absent

    def __post_init__(self) -> None:
        T, C = len(self.times), len(self.names)
        if self.times.shape != (T,) or self.values.shape != (T, C):
            raise ValueError(f"Recording: times {self.times.shape} and values {self.values.shape} for {C} names")

    def __len__(self) -> int:
        return len(self.times)

    @property
    def duration(self) -> float:
        return float(self.times[-1] - self.times[0]) if len(self.times) else 0.0

    def at(self, t: float) -> dict[str, float]:
        """Channels at time t (clamped to the recording), linearly interpolated between the two nearest frames.
        A channel absent at one of them takes the other's value; absent at both, it is left out."""
        T = len(self.times)
        if T == 0:
            return {}
        i = int(np.searchsorted(self.times, t, side="right"))
        if i <= 0 or i >= T:
            row = self.values[0 if i <= 0 else T - 1]
            return {n: float(v) for n, v in zip(self.names, row, strict=True) if not math.isnan(v)}
        t0, t1 = float(self.times[i - 1]), float(self.times[i])
        w = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        a, b = self.values[i - 1], self.values[i]
        mixed = np.where(np.isnan(a), b, np.where(np.isnan(b), a, a + w * (b - a)))
        return {n: float(v) for n, v in zip(self.names, mixed, strict=True) if not math.isnan(v)}


class ChannelRecorder:
    """Collects driving frames as they come (columns grow as new channels appear) and saves them."""

    def __init__(self) -> None:
        self._col: dict[str, int] = {}
        self._times: list[float] = []
        self._rows: list[np.ndarray] = []  # each [C at that time] float32

    def __len__(self) -> int:
        return len(self._times)

    def add(self, frame: DrivingFrame, t: float) -> None:
        """Record `frame`'s channels at time `t` (seconds; any clock, saved relative to the first frame)."""
        for name in frame.channels:
            if name not in self._col:
                self._col[name] = len(self._col)
        row = np.full(len(self._col), np.nan, np.float32)
        for name, v in frame.channels.items():
            row[self._col[name]] = v
        self._times.append(float(t))
        self._rows.append(row)

    def clear(self) -> None:
        self.__init__()

    def recording(self) -> Recording:
        C = len(self._col)
        values = np.full((len(self._rows), C), np.nan, np.float32)
        for i, row in enumerate(self._rows):
            values[i, : len(row)] = row
        times = np.asarray(self._times, np.float64)
        if len(times):
            times = times - times[0]
        return Recording(times=times, names=tuple(self._col), values=values)

    def save(self, path: str | os.PathLike) -> Path:
        """Write .json or .npz (chosen by the suffix), atomically."""
        return save_recording(self.recording(), path)


def save_recording(rec: Recording, path: str | os.PathLike) -> Path:
    path = Path(path)
    T, C = rec.values.shape
    if C > MAX_CHANNELS or T > MAX_FRAMES or T * C > MAX_VALUES:
        raise ValueError(
            f"{path}: {T} frames of {C} channels is more than a recording may hold ({MAX_FRAMES} frames, "
            f"{MAX_CHANNELS} channels, {MAX_VALUES} values); record shorter takes"
        )
    suffix = path.suffix.lower()
    if suffix == ".json":
        doc = {
            "version": RECORDING_VERSION,
            "kind": RECORDING_KIND,
            "names": list(rec.names),
            "times": [round(float(t), 6) for t in rec.times],
            "values": [[None if math.isnan(v) else round(float(v), 6) for v in row] for row in rec.values],
        }
        text = json.dumps(doc, separators=(",", ":"))
        return atomic_write(path, lambda p: p.write_text(text))
    if suffix == ".npz":
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            version=np.int64(RECORDING_VERSION),
            kind=np.str_(RECORDING_KIND),
            names=np.array(rec.names, dtype=np.str_),
            times=rec.times.astype(np.float64),
            values=rec.values.astype(np.float32),
        )
        return atomic_write_bytes(path, buf.getvalue())
    raise ValueError(f"{path}: save driving channels as .json or .npz (got {suffix or 'no suffix'!r})")


def _number(v: object) -> float:
    """A JSON number as a float; strings, booleans and containers are refused (numpy would convert "2.0")."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"expected a number, got {type(v).__name__} {str(v)[:40]!r}")
    return float(v)


def _check(names: object, times: object, values: object, version: object, kind: object, source: str) -> Recording:
    if kind != RECORDING_KIND:
        raise FileFormatError(f"{source}: not a driving-channel recording (kind {kind!r}, expected {RECORDING_KIND!r})")
    if version != RECORDING_VERSION:
        raise FileFormatError(f"{source}: recording version {version!r}, this program reads {RECORDING_VERSION}")
    try:
        names_t = tuple(str(n) for n in names)  # type: ignore[union-attr]
        times_a = np.asarray([_number(t) for t in times] if isinstance(times, list) else times, np.float64)
        values_a = np.asarray(
            [[np.nan if v is None else _number(v) for v in row] for row in values]  # type: ignore[union-attr]
            if isinstance(values, list)
            else values,
            np.float32,
        )
        if any(isinstance(a, np.ndarray) and a.dtype.kind not in "fiu" for a in (times, values)):
            raise TypeError("times and values must be numbers")
        if values_a.size == 0:
            values_a = values_a.reshape(len(times_a), len(names_t))
        for n in names_t:
            channel_group(n)
    except (TypeError, ValueError, OverflowError) as e:
        raise FileFormatError(f"{source}: malformed recording ({type(e).__name__}: {e})") from e
    if times_a.ndim != 1 or values_a.shape != (len(times_a), len(names_t)):
        raise FileFormatError(
            f"{source}: malformed recording: {len(names_t)} names, times {times_a.shape}, values {values_a.shape}"
        )
    if len(set(names_t)) != len(names_t):
        raise FileFormatError(f"{source}: malformed recording: repeated channel names")
    if not np.all(np.isfinite(times_a)) or np.any(np.diff(times_a) < 0):
        raise FileFormatError(f"{source}: malformed recording: times must be finite and non-decreasing")
    if not all(_in_range(values_a[i : i + 65536]) for i in range(0, len(values_a), 65536)):  # a block at a time
        raise FileFormatError(
            f"{source}: malformed recording: channel values must be finite numbers within +-{MAX_CHANNEL_VALUE:g} "
            "(null where a channel is absent)"
        )
    return Recording(times=times_a, names=names_t, values=values_a)


def _in_range(block: np.ndarray) -> bool:
    """Every value of `block` NaN (absent) or finite within +-MAX_CHANNEL_VALUE."""
    with np.errstate(invalid="ignore"):
        return not bool(np.any(np.abs(block) > MAX_CHANNEL_VALUE)) and not bool(np.any(np.isinf(block)))


def load_recording(path: str | os.PathLike) -> Recording:
    """Read a .json or .npz recording; FileFormatError (a ValueError) says what is wrong with a bad file."""
    path = require_regular_file(path, "recording")  # a folder or named pipe is refused, not read
    if path.stat().st_size > MAX_RECORDING_BYTES:
        raise FileFormatError(f"{path}: {path.stat().st_size} bytes is too large for a driving recording")
    suffix = path.suffix.lower()
    if suffix == ".json":
        if path.stat().st_size > MAX_JSON_BYTES:
            raise FileFormatError(
                f"{path}: {path.stat().st_size} bytes is too large for a JSON recording "
                f"(limit {MAX_JSON_BYTES >> 20} MiB): save long takes as .npz"
            )
        try:
            d = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise FileFormatError(f"{path}: not a JSON recording ({type(e).__name__}: {e})") from e
        if not isinstance(d, dict):
            raise FileFormatError(f"{path}: not a driving-channel recording (top level is not an object)")
        return _check(d.get("names"), d.get("times"), d.get("values"), d.get("version"), d.get("kind"), str(path))
    if suffix == ".npz":
        shapes = _check_npz_sizes(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                version, kind = z["version"], z["kind"]
                if version.shape != () or kind.shape != () or version.dtype.kind not in "iu":
                    raise FileFormatError(f"{path}: not a driving-channel recording (version or kind is not a scalar)")
                if str(kind) != RECORDING_KIND:  # before the arrays are read
                    raise FileFormatError(f"{path}: not a driving-channel recording (kind {str(kind)[:64]!r})")
                names = z["names"]
                if names.dtype.kind != "U":
                    raise FileFormatError(f"{path}: malformed recording: channel names are {names.dtype}, not text")
                _check_names(names, str(path))  # C short strings (checked sizes): names go first, values after
                times, values = z["times"], z["values"]
                if shapes["times"][1].kind not in "fiu" or shapes["values"][1].kind not in "fiu":
                    raise FileFormatError(f"{path}: malformed recording (times and values must be numbers)")
                return _check(names.tolist(), times, values, int(version), str(kind), str(path))
        except (zipfile.BadZipFile, zlib.error, struct.error, OSError, EOFError, NotImplementedError) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise FileFormatError(f"{path}: not a readable NPZ recording ({e})") from e
        except ValueError as e:
            if isinstance(e, FileFormatError):
                raise
            raise FileFormatError(f"{path}: not a readable NPZ recording ({e})") from e
    raise FileFormatError(f"{path}: driving recordings are .json or .npz files")


def _check_npz_sizes(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The NPZ's declared array shapes, refused before numpy allocates anything unless they fit a recording:
    the five arrays, at most MAX_CHANNELS names of at most MAX_NAME_CHARS characters, at most MAX_FRAMES times,
    values [T, C] of at most MAX_VALUES numbers."""
    shapes = npz_headers(str(path), path, max_arrays=8, max_array_bytes=MAX_ARRAY_BYTES)
    missing = {"names", "times", "values", "version", "kind"} - set(shapes)
    if missing:
        raise FileFormatError(f"{path}: not a driving-channel recording (arrays {sorted(shapes)})")
    (names, names_dt), (times, _), (values, _) = shapes["names"], shapes["times"], shapes["values"]
    if len(names) != 1 or names[0] > MAX_CHANNELS or names_dt.kind != "U" or names_dt.itemsize > 4 * MAX_NAME_CHARS:
        raise FileFormatError(
            f"{path}: malformed recording: names {names} {names_dt} (at most {MAX_CHANNELS} channel names of at most "
            f"{MAX_NAME_CHARS} characters)"
        )
    if len(times) != 1 or times[0] > MAX_FRAMES:
        raise FileFormatError(f"{path}: malformed recording: times {times} (at most {MAX_FRAMES} frames)")
    if values != (times[0], names[0]) or math.prod(values) > MAX_VALUES:
        raise FileFormatError(
            f"{path}: malformed recording: values {values} for {times[0]} times and {names[0]} names "
            f"(at most {MAX_VALUES} values)"
        )
    if shapes["kind"][1].kind != "U" or shapes["kind"][1].itemsize > 4 * 64:
        raise FileFormatError(f"{path}: not a driving-channel recording (kind {shapes['kind'][1]})")
    return shapes


def _check_names(names: np.ndarray, source: str) -> None:
    for n in names.tolist():
        try:
            channel_group(n)
        except ValueError as e:
            raise FileFormatError(f"{source}: malformed recording ({e})") from e
