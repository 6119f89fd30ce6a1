"""An mp4 of the driving preview, written frame by frame as it is shown (H.264 through imageio-ffmpeg).

Live frames arrive at an uneven rate; `LiveVideoWriter.add(frame, t)` repeats or skips frames so that the file
plays at a constant `fps` in real time (what was on screen at each tick of the output clock).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def even_size(width: int, height: int) -> tuple[int, int]:
    """The largest even (W, H) not above the given size (H.264 players want even sizes)."""
    return max(2, width // 2 * 2), max(2, height // 2 * 2)


def as_uint8_rgb(frame: np.ndarray) -> np.ndarray:
    """[H, W, 3|4] float in [0, 1] or uint8 -> [H, W, 3] uint8, contiguous."""
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ValueError(f"expected an [H, W, 3|4] image, got shape {tuple(frame.shape)}")
    pixels = frame[..., :3]
    if pixels.dtype != np.uint8:
        pixels = (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(pixels)


class LiveVideoWriter:
    """Writes frames to an mp4 at a constant frame rate; the size is fixed by the first frame (cropped even)."""

    def __init__(self, path: str | Path, *, fps: float = 30.0, realtime: bool = True) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise ValueError(f"the output video must be an .mp4 file, got {self.path.name!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = float(fps)
        self.realtime = realtime  # False: every added frame is written once (offline rendering)
        self.frames_written = 0
        self._writer = None
        self._tmp: Path | None = None
        self._size: tuple[int, int] | None = None
        self._t0: float | None = None
        self._last: np.ndarray | None = None

    def add(self, frame: np.ndarray, t: float | None = None) -> int:
        """Add the image shown at time `t` (seconds, any clock); returns how many frames were written."""
        pixels = as_uint8_rgb(frame)
        if self._writer is None:
            self._open(pixels)
        w, h = self._size
        pixels = np.ascontiguousarray(pixels[:h, :w])
        if pixels.shape[:2] != (h, w):
            raise ValueError(f"frame of {pixels.shape[1]}x{pixels.shape[0]} in a {w}x{h} video: keep one size")
        if not self.realtime or t is None:
            return self._send(pixels, 1)
        if self._t0 is None:
            self._t0 = t
        due = int((t - self._t0) * self.fps) + 1  # frames the clock asks for up to and including t
        count = due - self.frames_written
        if count <= 0:
            self._last = pixels  # shown before the next tick: it replaces the frame of that tick
            return 0
        return self._send(pixels, count)

    def _open(self, pixels: np.ndarray) -> None:
        import imageio_ffmpeg

        from core.io import new_temporary

        self._size = even_size(pixels.shape[1], pixels.shape[0])
        self._tmp = new_temporary(self.path)  # renamed over `path` by close(): never a torn mp4 there
        self._writer = imageio_ffmpeg.write_frames(
            str(self._tmp), self._size, fps=self.fps, macro_block_size=1, quality=7, output_params=["-f", "mp4"]
        )
        self._writer.send(None)  # start the encoder

    def _send(self, pixels: np.ndarray, count: int) -> int:
        for _ in range(count):
            self._writer.send(pixels)
        self.frames_written += count
        self._last = None
        return count

    def close(self) -> Path | None:
        """Finish the file; None when no frame was ever added (no file is left behind)."""
        if self._writer is None:
            return None
        from core.io import commit_temporary

        try:
            if self._last is not None:
                self._send(self._last, 1)
            self._writer.close()
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        finally:
            self._writer = None
        commit_temporary(self._tmp, self.path)
        log.info("wrote %d frames (%.1f s) to %s", self.frames_written, self.frames_written / self.fps, self.path)
        return self.path

    def __enter__(self) -> LiveVideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
