"""The Drive panel's camera preview: the source frame fitted into a small texture with the landmarks drawn on."""

from __future__ import annotations

import cv2
import numpy as np

from core.tracking.types import Landmarks

# mediapipe's pose and hand skeletons (landmark index pairs), written out so drawing needs no mediapipe import
POSE_EDGES = (
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
    (23, 25), (25, 27), (24, 26), (26, 28), (27, 31), (28, 32),
)  # fmt: skip
HAND_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)  # fmt: skip
FACE_COLOUR = (80, 230, 120)
IRIS_COLOUR = (255, 80, 80)
POSE_COLOUR = (90, 170, 255)
HAND_COLOURS = {"left": (255, 200, 60), "right": (230, 90, 230)}


def fit_rect(w: int, h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, w', h') of a w x h picture scaled to fit width x height, centred (letterboxed)."""
    s = min(width / w, height / h)
    fw, fh = max(1, round(w * s)), max(1, round(h * s))
    return (width - fw) // 2, (height - fh) // 2, fw, fh


def _dots(canvas: np.ndarray, pts: np.ndarray, colour: tuple[int, int, int]) -> None:
    """2x2 dots at integer pixel positions [P, 2] (cheaper than one cv2.circle per point)."""
    h, w = canvas.shape[:2]
    for dx in (0, 1):
        for dy in (0, 1):
            x, y = pts[:, 0] + dx, pts[:, 1] + dy
            ok = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            canvas[y[ok], x[ok]] = colour


def preview_image(
    image: np.ndarray | None,  # [H, W, 3] uint8 RGB (None: a blank preview)
    landmarks: Landmarks | None,
    width: int,
    height: int,
) -> np.ndarray:  # [height, width, 4] float32 RGBA in [0, 1]
    """The frame letterboxed into width x height with face, iris, pose and hand landmarks drawn."""
    canvas = np.full((height, width, 3), 24, np.uint8)
    if image is not None:
        x0, y0, fw, fh = fit_rect(image.shape[1], image.shape[0], width, height)
        canvas[y0 : y0 + fh, x0 : x0 + fw] = cv2.resize(image, (fw, fh), interpolation=cv2.INTER_AREA)
        if landmarks is not None:
            _draw(canvas, landmarks, x0, y0, fw, fh)
    out = np.ones((height, width, 4), np.float32)
    out[..., :3] = canvas * (1.0 / 255.0)
    return out


def _draw(canvas: np.ndarray, lm: Landmarks, x0: int, y0: int, fw: int, fh: int) -> None:
    def px(points: np.ndarray) -> np.ndarray:  # [P, >=2] normalised -> [P, 2] int pixels
        return np.stack([x0 + points[:, 0] * fw, y0 + points[:, 1] * fh], -1).round().astype(np.int32)

    if lm.face is not None:
        face = px(lm.face)
        _dots(canvas, face[:468:2], FACE_COLOUR)
        _dots(canvas, face[468:], IRIS_COLOUR)
    if lm.pose is not None:
        pose = px(lm.pose)
        seen = lm.pose[:, 3] > 0.5
        for a, b in POSE_EDGES:
            if seen[a] and seen[b]:
                cv2.line(canvas, tuple(map(int, pose[a])), tuple(map(int, pose[b])), POSE_COLOUR, 1, cv2.LINE_AA)
    for side, hand in (("left", lm.left_hand), ("right", lm.right_hand)):
        if hand is None:
            continue
        pts = px(hand)
        for a, b in HAND_EDGES:
            cv2.line(canvas, tuple(map(int, pts[a])), tuple(map(int, pts[b])), HAND_COLOURS[side], 1, cv2.LINE_AA)
