"""Following one chosen person through a clip (SORT-style association, one track): each frame's candidate people
are matched to the track by predicted position (last box plus a damped velocity, kept through missed frames),
box size and shape, and appearance (a hue-saturation histogram of the pixels along the person's skeleton).
A frame where no candidate passes the gates is a miss: the track is kept, never handed to someone else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

HUE_BINS, SAT_BINS = 16, 4
DARK = 40  # pixels darker than this (0-255) have no reliable hue: left out of the histogram
MAX_SHIFT = 1.0  # gate: centre at most this many box sides from the prediction (times 1 + missed frames / 2)
MAX_SIZE = math.log(2.0)  # gate: box side at most twice or half the track's (a jump, a crouch)
MAX_LOOK = 0.55  # gate: Bhattacharyya distance of the appearance histograms (0 same, 1 disjoint)
MAX_COST = 2.2  # gate on the sum: 2 shift + size + 2 look (someone as far away as dressed alike is refused)
LONG_LOSS = 4  # missed frames after which the position says nothing: re-found anywhere, by appearance only...
LOST_LOOK = 0.35  # ... and only by this close a look


def body_pixels(pose: np.ndarray, size: tuple[int, int], min_visibility: float = 0.5) -> np.ndarray:
    """[H, W] bool: pixels surely on the person from their landmarks (pose [33, 4] normalised): the torso
    between shoulders and hips shrunk to its middle, the limbs as lines a tenth of the torso thick, the head as
    a small disc. Empty when the shoulders are not seen."""
    W, H = size
    p = np.asarray(pose, np.float64)
    xy = p[:, :2] * np.array([W, H])
    ok = np.nan_to_num(p[:, 3]) >= min_visibility
    out = np.zeros((H, W), np.uint8)
    if not ok[[11, 12]].all():
        return out > 0
    sh = xy[[11, 12]].mean(0)
    hips = ok[[23, 24]].all()
    scale = np.linalg.norm(sh - xy[[23, 24]].mean(0)) if hips else 1.6 * np.linalg.norm(xy[11] - xy[12])
    thick = max(2, int(round(0.1 * scale)))
    torso = [i for i in (11, 12, 24, 23) if ok[i]]
    if len(torso) >= 3:
        q = xy[torso]
        q = q.mean(0) + 0.6 * (q - q.mean(0))
        cv2.fillPoly(out, [np.round(q).astype(np.int32)], 255)
    for a, b in ((11, 13), (13, 15), (12, 14), (14, 16), (23, 25), (25, 27), (24, 26), (26, 28), (11, 23), (12, 24)):
        if ok[a] and ok[b]:
            a_, b_ = xy[a] + 0.15 * (xy[b] - xy[a]), xy[b] - 0.15 * (xy[b] - xy[a])  # away from the joints' edges
            cv2.line(out, tuple(np.round(a_).astype(int)), tuple(np.round(b_).astype(int)), 255, thick)
    head = [i for i in range(11) if ok[i]]
    if head:
        cv2.circle(out, tuple(np.round(xy[head].mean(0)).astype(int)), max(2, int(round(0.2 * scale))), 255, -1)
    return out > 0


def appearance(rgb: np.ndarray, pose: np.ndarray) -> np.ndarray | None:
    """[HUE_BINS * SAT_BINS] float32 summing to 1: hue-saturation histogram of the pixels along the person's
    skeleton (rgb [H, W, 3] uint8, pose [33, 4] normalised); None when too few bright pixels are on them."""
    H, W = rgb.shape[:2]
    on = body_pixels(pose, (W, H))
    ys, xs = np.nonzero(on)
    if len(xs) < 20:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1  # only the person's crop is converted
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2HSV)
    mask = (on[y0:y1, x0:x1] & (hsv[..., 2] >= DARK)).astype(np.uint8)
    if mask.sum() < 20:
        return None
    hist = cv2.calcHist([hsv], [0, 1], mask, [HUE_BINS, SAT_BINS], [0, 180, 0, 256]).reshape(-1)
    return (hist / hist.sum()).astype(np.float32)


def look_distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Bhattacharyya distance of two appearance histograms (0 same, 1 disjoint); 0.5 when one is unknown."""
    if a is None or b is None:
        return 0.5
    return float(math.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(a * b))))))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes [4] (x0, y0, x1, y1)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union) if union > 0 else 0.0


def _centre_side(box: np.ndarray) -> tuple[np.ndarray, float]:
    return (box[:2] + box[2:]) / 2, float(max(box[2] - box[0], box[3] - box[1], 1.0))


@dataclass
class PersonTrack:
    """The chosen person: last box [4] (x0, y0, x1, y1 pixels), its velocity [4] per frame, their look."""

    box: np.ndarray  # [4]
    look: np.ndarray | None  # [HUE_BINS * SAT_BINS] the chosen person's appearance (a running mean)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # [4] pixels a frame
    missed: int = 0  # frames since the person was last seen

    @property
    def lost(self) -> bool:
        """Missed for so long that where they were says nothing (re-found by appearance anywhere)."""
        return self.missed >= LONG_LOSS

    def predicted(self) -> np.ndarray:
        """[4] where the box should be this frame (constant velocity over the missed frames)."""
        return (self.box + self.velocity * (self.missed + 1)).astype(np.float32)

    def cost(self, box: np.ndarray, look: np.ndarray | None) -> float:
        """How unlike the tracked person a candidate (box [4] pixels, look) is; inf when a gate refuses it."""
        pc, ps = _centre_side(self.predicted())
        c, s = _centre_side(np.asarray(box, np.float64))
        shift = 0.0 if self.lost else float(np.linalg.norm(c - pc)) / ps / (1.0 + 0.5 * self.missed)
        size = abs(math.log(s / ps))
        dlook = look_distance(self.look, look)
        if shift > MAX_SHIFT or size > MAX_SIZE or dlook > (LOST_LOOK if self.lost else MAX_LOOK):
            return math.inf
        cost = 2.0 * shift + size + 2.0 * dlook
        return cost if cost <= MAX_COST else math.inf

    def update(self, box: np.ndarray, look: np.ndarray | None) -> None:
        """The person was found at `box` [4] with appearance `look` this frame."""
        box = np.asarray(box, np.float32)
        step = (box - self.box) / (self.missed + 1)
        self.velocity = (0.5 * self.velocity + 0.5 * step) if not self.lost else np.zeros(4, np.float32)
        self.box, self.missed = box, 0
        if look is not None:
            self.look = look if self.look is None else (0.8 * self.look + 0.2 * look).astype(np.float32)

    def miss(self) -> None:
        """The person was not found this frame."""
        self.missed += 1
