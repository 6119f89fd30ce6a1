"""Backgrounds of wild clips: procedural clutter, and crops of real photos when scikit-image ships them."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

# Photos without people that scikit-image ships (its `data` folder); used only if the package is installed.
_PHOTO_NAMES = (
    "brick.png",
    "grass.png",
    "gravel.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "color.png",
)


@functools.cache
def _photo_paths() -> tuple[Path, ...]:
    try:
        import skimage.data  # noqa: PLC0415  (optional dependency)
    except ImportError:
        log.info("scikit-image is not installed: wild backgrounds are procedural only")
        return ()
    root = Path(skimage.data.__file__).parent
    return tuple(p for p in (root / n for n in _PHOTO_NAMES) if p.is_file())


@functools.lru_cache(maxsize=16)
def _load_photo(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read background photo {path}")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def procedural_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A cluttered scene stand-in: a floor/wall gradient, coloured boxes, blobs and texture noise. [H, W, 3] in [0, 1]."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c_top, c_bot = rng.uniform(0.1, 0.9, 3), rng.uniform(0.05, 0.7, 3)
    horizon = rng.uniform(0.4, 0.8) * height
    t = np.clip((yy - horizon) / (0.1 * height) + 0.5, 0, 1)[..., None]
    img = c_top * (1 - t) + c_bot * t
    for _ in range(int(rng.integers(3, 12))):
        x0, y0 = rng.uniform(-0.2, 1.0) * width, rng.uniform(-0.2, 1.0) * height
        w, h = rng.uniform(0.05, 0.45) * width, rng.uniform(0.05, 0.6) * height
        col = rng.uniform(0, 1, 3)
        if rng.uniform() < 0.6:
            mask = (xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h)
        else:
            mask = ((xx - x0) / max(w, 1)) ** 2 + ((yy - y0) / max(h, 1)) ** 2 < 0.25
        shade = 1 - 0.3 * np.clip((yy - y0) / max(h, 1), 0, 1) if rng.uniform() < 0.5 else np.ones_like(yy)
        img = np.where(mask[..., None], np.clip(col * shade[..., None], 0, 1), img)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), rng.uniform(0.5, 3.0))
    img = img + rng.uniform(0.01, 0.06) * noise[..., None]
    return np.clip(img, 0, 1).astype(np.float32)


def photo_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray | None:
    """A random crop of a shipped photo, resized to [H, W, 3]; None when no photo is available."""
    paths = _photo_paths()
    if not paths:
        return None
    img = _load_photo(paths[int(rng.integers(len(paths)))])
    ph, pw = img.shape[:2]
    scale = rng.uniform(0.4, 1.0)
    ch, cw = max(8, int(ph * scale)), max(8, int(pw * scale))
    y0, x0 = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    crop = img[y0 : y0 + ch, x0 : x0 + cw]
    if rng.uniform() < 0.5:
        crop = crop[:, ::-1]
    return cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=cv2.INTER_AREA)


def wild_background(rng: np.random.Generator, height: int, width: int, *, photo_share: float = 0.5) -> np.ndarray:
    """Procedural clutter or, with probability `photo_share`, a real photo. [H, W, 3] float32 in [0, 1]."""
    if rng.uniform() < photo_share:
        img = photo_background(rng, height, width)
        if img is not None:
            return img
    return procedural_background(rng, height, width)


def studio_background(height: int, width: int, grey: float = 0.5) -> np.ndarray:
    """The clean uniform backdrop of a capture stage. [H, W, 3]."""
    return np.full((height, width, 3), grey, np.float32)
