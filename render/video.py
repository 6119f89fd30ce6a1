"""Headless output: PNG images and orbit videos (mp4 through imageio-ffmpeg)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from core.raster.types import Camera

log = logging.getLogger(__name__)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[H, W, C] float in [0, 1] -> [H, W, C] uint8."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write [H, W, 3|4] float [0, 1] or uint8 pixels to a PNG."""
    from PIL import Image

    from core.io import atomic_write

    pixels = image if image.dtype == np.uint8 else to_uint8(image)
    # atomically: a failed or killed save leaves the previous PNG, never a torn one
    return atomic_write(path, lambda tmp: Image.fromarray(np.ascontiguousarray(pixels)).save(tmp, format="PNG"))


def orbit_cameras(
    num_frames: int, *, width: int, height: int, distance: float = 3.0, height_m: float = 0.9, fov_y_deg: float = 40.0
) -> Iterator[Camera]:
    """`num_frames` cameras on a full turn around the y axis, looking at (0, height_m, 0)."""
    from render.orbit import OrbitController

    orbit = OrbitController(target=np.array([0.0, height_m, 0.0]), distance=distance, fov_y_deg=fov_y_deg)
    for i in range(num_frames):
        orbit.yaw_deg = 360.0 * i / num_frames
        yield orbit.camera(width, height)


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], *, fps: int = 30) -> Path:
    """Encode [H, W, 3] frames (float [0, 1] or uint8; even sizes play everywhere) as an H.264 mp4."""
    import imageio_ffmpeg

    from core.io import atomic_write

    path = Path(path)
    count = 0

    def encode(tmp: Path) -> None:  # into a temporary renamed when complete: no torn mp4 where the old one was
        nonlocal count
        writer = None
        try:
            for frame in frames:
                pixels = frame if frame.dtype == np.uint8 else to_uint8(frame)
                pixels = np.ascontiguousarray(pixels[..., :3])
                if writer is None:
                    h, w = pixels.shape[:2]
                    writer = imageio_ffmpeg.write_frames(
                        str(tmp), (w, h), fps=fps, macro_block_size=1, quality=8, output_params=["-f", "mp4"]
                    )
                    writer.send(None)  # start the encoder
                writer.send(pixels)
                count += 1
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError(f"write_mp4: no frames given for {path}")

    atomic_write(path, encode)
    log.info("wrote %d frames to %s", count, path)
    return path
