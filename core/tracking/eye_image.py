"""Image evidence for the eyes: is there iris between the lids, or only lid?

The face mesh gives lids lowered over a downward gaze and shut lids nearly the same aperture (lowered 0.03-0.12
of the eye width, shut mostly 0.00-0.15, on the labelled real clips of bench/labels/face_labels_real.json), so the
landmarks alone read a person looking down at a keyboard as blinking. The picture tells them apart: under a lowered lid a strip of iris and
pupil shows, solid and dark from edge to edge; under a shut lid there is lid skin, or lashes with skin between
the strands. `under_lid_light` measures that strip: the brightness of its lightest tenth (90th percentile)
relative to the skin around the eye. The lightest tenth is what separates: a lash fringe or a lid crease is dark
on average too, but never everywhere.

Sampled in eye-aligned coordinates (x along the corners, y across them, one unit = the eye's width): 108 bilinear
samples per eye from the picture the face mesh ran on, about 0.3 ms per frame on one CPU core. The mesh's iris
centre is predicted even for shut eyes; only its position along the eye is used, to place the strip.

What it cannot see (docs/RESULTS.md, "Lowered eyes: the picture"): a sliver of iris thinner than the strip, or a
light iris, is not solid dark, so such lowered lids still read as the mesh has them; make-up that is solid dark
that deep under a shut lid reads as iris. The strip's depth and the thresholds in core/tracking/face.py were set
on one person's lowered eyes.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.tracking.face_geometry import IRIS_L, IRIS_R

# Mediapipe face-mesh contours from corner to corner ("R" is the person's right eye, the picture's left).
EYE_R_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
EYE_R_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
EYE_L_UPPER = (362, 398, 384, 385, 386, 387, 388, 466, 263)
EYE_L_LOWER = (362, 382, 381, 380, 374, 373, 390, 249, 263)

# The strip, in eye widths: this far either side of the iris centre, from the upper lid this far down.
STRIP_HALF_WIDTH = 0.10
STRIP_DEPTH = 0.10
STRIP_SAMPLES = (6, 9)  # rows, columns
# Skin for reference: above the upper lid and below the lower one, this far (eye widths) and this wide.
SKIN_ABOVE = (-0.25, -0.15)
SKIN_BELOW = (0.10, 0.20)
SKIN_HALF_WIDTH = 0.20
SKIN_SAMPLES = (3, 9)
LIGHT_PERCENTILE = 90.0
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # RGB -> luminance (Rec. 601)


def _eye_frame(px: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...], iris: int):
    """Origin, x and y unit vectors [2] (y pointing down the face), eye width in pixels, and the eye-frame
    (x, y) of the iris, its upper-lid height and its lower-lid height (eye widths) at the iris's x."""
    a, b = px[upper[0]], px[upper[-1]]
    width = float(np.linalg.norm(b - a))
    ex = (b - a) / max(width, 1e-6)
    ey = np.array([-ex[1], ex[0]])
    if ey[1] < 0:  # down the picture (a face upside down in the picture is not tracked anyway)
        ey = -ey
    origin = (a + b) / 2

    def frame(points: np.ndarray) -> np.ndarray:  # [K, 2] pixels -> [K, 2] eye frame
        d = points - origin
        return np.stack([d @ ex, d @ ey], -1) / max(width, 1e-6)

    iris_xy = frame(px[[iris]])[0]
    lids = []
    for contour in (upper, lower):
        c = frame(px[list(contour)])
        order = np.argsort(c[:, 0])
        lids.append(float(np.interp(iris_xy[0], c[order, 0], c[order, 1])))
    return origin, ex, ey, width, iris_xy, lids[0], lids[1]


def _grid(x0: float, x1: float, y0: float, y1: float, shape: tuple[int, int]) -> np.ndarray:
    """[rows * cols, 2] eye-frame points covering [x0, x1] x [y0, y1]."""
    ys, xs = np.meshgrid(np.linspace(y0, y1, shape[0]), np.linspace(x0, x1, shape[1]), indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], -1)


# Sample offsets in eye widths, fixed once: the strip and the skin above from (iris x, upper lid), the skin below
# from (iris x, lower lid).
_STRIP = _grid(-STRIP_HALF_WIDTH, STRIP_HALF_WIDTH, 0.0, STRIP_DEPTH, STRIP_SAMPLES)  # [Ns, 2]
_ABOVE = _grid(-SKIN_HALF_WIDTH, SKIN_HALF_WIDTH, *SKIN_ABOVE, SKIN_SAMPLES)  # [Nk, 2]
_BELOW = _grid(-SKIN_HALF_WIDTH, SKIN_HALF_WIDTH, *SKIN_BELOW, SKIN_SAMPLES)  # [Nk, 2]
_EYES = ((EYE_R_UPPER, EYE_R_LOWER, IRIS_R), (EYE_L_UPPER, EYE_L_LOWER, IRIS_L))


def under_lid_light(
    image: np.ndarray,  # [H, W, 3] uint8 RGB, the picture the face mesh ran on
    face: np.ndarray,  # [478, 2+] face mesh with irises, normalised image coordinates
) -> np.ndarray:
    """[2] (right eye, left eye): the lightest tenth of the strip under each upper lid, over the iris, as a share
    of the brightness of the skin around that eye. About 0.1-0.3 where a strip of dark iris shows under the lid,
    0.4 and more where the strip is lid skin or a lash fringe (see the module docstring). NaN for an eye whose
    width is under 4 pixels or whose skin is black."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"under_lid_light wants an [H, W, 3] RGB image, got {image.shape}")
    H, W = image.shape[:2]
    px = np.asarray(face[:, :2], np.float64) * np.array([W, H])
    points, widths = [], []
    for upper, lower, iris in _EYES:
        origin, ex, ey, width, (ix, _), top, bottom = _eye_frame(px, upper, lower, iris)
        pts = np.concatenate([_STRIP + (ix, top), _ABOVE + (ix, top), _BELOW + (ix, bottom)])  # [S, 2] eye frame
        points.append(origin + (pts[:, :1] * ex + pts[:, 1:] * ey) * width)  # [S, 2] pixels
        widths.append(width)
    xy = np.concatenate(points).astype(np.float32)  # [2 S, 2]
    rgb = cv2.remap(image, xy[None, :, 0], xy[None, :, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    luma = (rgb[0].astype(np.float32) @ LUMA).reshape(2, -1)  # [2, S]
    n = len(_STRIP)
    strip_light = np.percentile(luma[:, :n], LIGHT_PERCENTILE, axis=1)  # [2]
    skin_light = np.median(luma[:, n:], axis=1)  # [2]
    ok = (np.array(widths) >= 4.0) & (skin_light >= 1.0)
    return np.where(ok, strip_light / np.maximum(skin_light, 1.0), np.nan)
