"""Frame sources for live driving: a webcam by index, a video file, or a folder of images.

Every source yields `VideoFrame`s in RGB, shrunk (never enlarged) to fit `width` x `height` keeping the aspect.
`open_source` picks the kind from the spec: an int or a digit string is a webcam index, a folder is a sequence
of images (sorted by name), anything else is a video file (or a single image).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from core.io import MAX_IMAGE_PIXELS
from core.tracking.types import VideoFrame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
FOLDER_FPS = 30.0  # nominal rate of an image folder (its frames carry no timestamps)
CAMERA_RETRY_S = 1.0  # a camera that gives no frame for this long counts as lost


class SourceError(RuntimeError):
    """A source could not be opened or stopped working; the message says what to do."""


def _brief(e: BaseException, limit: int = 300) -> str:
    """The first and last lines of an error (FFmpeg's include its whole banner), at most `limit` characters."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = lines[0] if len(lines) <= 1 else f"{lines[0]} ... {lines[-1]}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_frame_size(path: Path, w: int, h: int) -> None:
    if w * h > MAX_IMAGE_PIXELS:
        raise SourceError(
            f"{path}: frames of {w} x {h} are over the {MAX_IMAGE_PIXELS / 1e6:.0f} megapixel limit: "
            "scale the video down before driving from it"
        )


@runtime_checkable
class FrameSource(Protocol):
    name: str
    live: bool  # a camera (frames arrive on their own clock) rather than a file read at will
    fps: float | None

    def read(self) -> VideoFrame | None: ...

    def close(self) -> None: ...

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc: object) -> None: ...


def fit_size(w: int, h: int, width: int, height: int) -> tuple[int, int]:
    """(W, H) of a w x h picture shrunk to fit inside width x height, keeping its aspect (never enlarged)."""
    scale = min(1.0, width / w, height / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def to_rgb_fitted(bgr: np.ndarray, width: int, height: int) -> np.ndarray:
    """[H, W, 3|4] or [H, W] uint8 BGR(A)/grey from OpenCV -> [H', W', 3] uint8 RGB fitting width x height."""
    if bgr.ndim == 2:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    elif bgr.shape[2] == 4:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    else:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if rgb.dtype != np.uint8:  # 16-bit pictures
        rgb = (rgb.astype(np.float32) * (255.0 / np.iinfo(rgb.dtype).max)).round().astype(np.uint8)
    h, w = rgb.shape[:2]
    size = fit_size(w, h, width, height)
    if size != (w, h):
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV logs a warning per backend it tries when a camera is absent; the SourceError says it once."""
    logging_mod = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_mod is None:
        yield
        return
    old = logging_mod.getLogLevel()
    logging_mod.setLogLevel(logging_mod.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging_mod.setLogLevel(old)


class _SourceBase:
    name: str = ""
    live: bool = False
    fps: float | None = None

    def __enter__(self) -> _SourceBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class CameraSource(_SourceBase):
    """A webcam by index through cv2.VideoCapture."""

    live = True

    def __init__(self, index: int, *, width: int = 640, height: int = 480) -> None:
        self.index, self.width, self.height = index, width, height
        self.name = f"camera {index}"
        self._cap: cv2.VideoCapture | None = None
        self._count = 0
        self._t0 = time.perf_counter()
        with _quiet_opencv():
            cap = cv2.VideoCapture(index)
            opened = cap.isOpened()
        if not opened:
            cap.release()
            raise SourceError(
                f"camera {index} is not available (unplugged or used by another app?): plug it in, close other "
                "programs that use it, or pick another camera index / a video file, then open the source again"
            )
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        with contextlib.suppress(cv2.error):
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep latency low where the backend allows it
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1.0 <= fps <= 1000.0 else None
        self._cap = cap

    def read(self) -> VideoFrame | None:
        if self._cap is None:
            raise SourceError(f"{self.name} is closed: open the source again")
        deadline = time.perf_counter() + CAMERA_RETRY_S
        while True:
            ok, bgr = self._cap.read()
            t = time.perf_counter()
            if ok and bgr is not None and bgr.size:
                break
            if t > deadline:
                raise SourceError(
                    f"camera {self.index} stopped sending frames (unplugged or used by another app?): "
                    "plug it back in and open the source again"
                )
            time.sleep(0.02)
        frame = VideoFrame(to_rgb_fitted(bgr, self.width, self.height), self._count, t, t - self._t0)
        self._count += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoFileSource(_SourceBase):
    """A video file through OpenCV, or imageio-ffmpeg where OpenCV cannot decode it.

    source_time is index / fps within a pass; with `loop` the file restarts at its end and time keeps rising.
    """

    def __init__(self, path: Path, *, width: int = 640, height: int = 480, loop: bool = False) -> None:
        self.path, self.width, self.height, self.loop = Path(path), width, height, loop
        self.name = self.path.name
        self._count = 0
        self._pos = 0  # frame number within the current pass
        self._loop_offset = 0.0  # seconds of the passes already played
        self._cap: cv2.VideoCapture | None = None
        self._ff: Iterator[bytes] | None = None
        self._ff_size = (0, 0)
        self.fps = 30.0
        self.frame_count: int | None = None
        self._open()

    def _open(self) -> None:
        with _quiet_opencv():
            cap = cv2.VideoCapture(str(self.path))
            ok = cap.isOpened() and cap.grab()
        if ok:
            size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
            cap.release()  # the probe consumed a frame: start again from the first one
            _check_frame_size(self.path, *size)
            with _quiet_opencv():
                cap = cv2.VideoCapture(str(self.path))
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps = float(fps) if fps and 1.0 <= fps <= 1000.0 else 30.0
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            self.frame_count = n if n > 0 else None
            self._cap = cap
            return
        cap.release()
        self._ff = self._open_ffmpeg()

    def _open_ffmpeg(self) -> Iterator[bytes]:
        try:
            import imageio_ffmpeg

            gen = imageio_ffmpeg.read_frames(str(self.path), pix_fmt="bgr24")
            meta = next(gen)
        except (ImportError, OSError, RuntimeError, StopIteration) as e:
            raise SourceError(
                f"{self.path}: neither OpenCV nor FFmpeg can decode this video ({_brief(e)}): "
                "convert it to mp4 (H.264) or give a folder of images"
            ) from e
        try:
            fps = float(meta.get("fps") or 0.0)
            w, h = (int(v) for v in meta["size"])
        except (KeyError, TypeError, ValueError) as e:
            gen.close()
            raise SourceError(f"{self.path}: FFmpeg reports no usable frame size ({_brief(e)})") from e
        self.fps = fps if 1.0 <= fps <= 1000.0 else 30.0
        if w <= 0 or h <= 0:
            gen.close()
            raise SourceError(f"{self.path}: FFmpeg reports frames of {w} x {h}: the video is damaged")
        try:
            _check_frame_size(self.path, w, h)
        except SourceError:
            gen.close()
            raise
        self._ff_size = (w, h)
        return gen

    def _read_bgr(self) -> np.ndarray | None:
        if self._cap is not None:
            ok, bgr = self._cap.read()
            return bgr if ok and bgr is not None else None
        if self._ff is not None:
            data = next(self._ff, None)
            w, h = self._ff_size
            if data is None or len(data) != w * h * 3:  # the end, or a last frame cut short
                return None
            return np.frombuffer(data, np.uint8).reshape(h, w, 3)
        raise SourceError(f"{self.name} is closed: open the source again")

    def read(self) -> VideoFrame | None:
        bgr = self._read_bgr()
        if bgr is None and self.loop and self._pos > 0:
            self._loop_offset += (self.frame_count or self._pos) / self.fps
            self._release()
            self._open()
            self._pos = 0
            bgr = self._read_bgr()
        if bgr is None:
            return None
        t = time.perf_counter()
        source_time = self._loop_offset + self._pos / self.fps
        frame = VideoFrame(to_rgb_fitted(bgr, self.width, self.height), self._count, t, source_time)
        self._count += 1
        self._pos += 1
        return frame

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self._ff is not None:
            with contextlib.suppress(Exception):
                self._ff.close()  # type: ignore[attr-defined]  # stops the ffmpeg child process
            self._ff = None

    def close(self) -> None:
        self._release()


class ImageFolderSource(_SourceBase):
    """The images of a folder (or one image file) in name order, at a nominal FOLDER_FPS."""

    def __init__(self, paths: list[Path], name: str, *, width: int = 640, height: int = 480, loop: bool = False):
        if not paths:
            raise SourceError(f"{name}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder: pick another source")
        self.paths, self.name, self.width, self.height, self.loop = paths, name, width, height, loop
        self.fps = FOLDER_FPS
        self._next = 0
        self._count = 0
        self._closed = False
        self._bad: set[int] = set()

    def read(self) -> VideoFrame | None:
        if self._closed:
            raise SourceError(f"{self.name} is closed: open the source again")
        n = len(self.paths)
        for _ in range(2 * n):  # at most two passes over the list (one when not looping)
            if self._next >= n:
                if not self.loop or len(self._bad) == n:
                    return None
                self._next = 0
            i = self._next
            self._next += 1
            if i in self._bad:
                continue
            bgr = cv2.imread(str(self.paths[i]), cv2.IMREAD_UNCHANGED)
            if bgr is None or bgr.size == 0:
                log.warning("%s: not a readable image, skipped", self.paths[i])
                self._bad.add(i)
                continue
            t = time.perf_counter()
            frame = VideoFrame(to_rgb_fitted(bgr, self.width, self.height), self._count, t, self._count / self.fps)
            self._count += 1
            return frame
        return None

    def close(self) -> None:
        self._closed = True


def open_source(spec: str | int, *, width: int = 640, height: int = 480, loop: bool = False) -> FrameSource:
    """A webcam (int or digit string), a folder of images, or a video / image file. Raises SourceError."""
    if width < 16 or height < 16:
        raise ValueError(f"source size {width}x{height} is too small: give at least 16x16")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return CameraSource(int(spec), width=width, height=height)
    if not isinstance(spec, str | os.PathLike):
        raise SourceError(f"source {spec!r} is neither a webcam index nor a path: give 0, 1, ... or a file/folder")
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        return ImageFolderSource(files, str(path), width=width, height=height, loop=loop)
    if not path.is_file():
        raise SourceError(
            f"{path}: no such file or folder: give a webcam index (0, 1, ...), a video file or a folder of images"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderSource([path], str(path), width=width, height=height, loop=loop)
    return VideoFileSource(path, width=width, height=height, loop=loop)
