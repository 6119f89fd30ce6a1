"""Following one chosen person through a clip (SORT-style association, one track): each frame's candidate people
are matched to the track by predicted position (last box plus a damped velocity, kept through missed frames),
box size, and appearance (colour histograms of the pixels along the person's skeleton, upper body and legs).
A frame where no candidate passes the gates is a miss: the track is kept, never handed to someone else; the gate
on position widens with each missed frame and the one on appearance tightens after a long loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

HUE_BINS, SAT_BINS, VALUE_BINS = 16, 3, 3  # colours by hue and saturation; greys (and darks) by value
CHROMA, DARK = 40, 40  # saturation, value (0-255) under which a pixel counts as grey: its hue means little
MAX_SHIFT = 0.6  # gate: centre at most this many box sides from the prediction, times 1 + missed frames / 4
MAX_SIZE = math.log(2.0)  # gate: box side at most twice or half the track's (a jump, a crouch)
MAX_LOOK = 0.5  # gate: Bhattacharyya distance of the appearance histograms (0 same, 1 disjoint)...
LONG_LOSS, LOST_LOOK = 4, 0.35  # ... this strict once the person has been missed this many frames
MAX_COST = 1.8  # gate on the sum of the three, each over its own gate (near, as large and alike: about 1)
ARMS = ((11, 13), (13, 15), (12, 14), (14, 16))
LEGS = ((23, 25), (25, 27), (24, 26), (26, 28))


def body_pixels(pose: np.ndarray, size: tuple[int, int], min_visibility: float = 0.5) -> np.ndarray:
    """[2, H, W] bool: pixels surely on the person from their landmarks (pose [33, 4] normalised), upper body
    (the torso between shoulders and hips shrunk to its middle, the arms, the head as a small disc) and legs;
    limbs are lines a tenth of the torso thick, clear of the joints. Empty when the shoulders are not seen."""
    W, H = size
    p = np.asarray(pose, np.float64)
    xy = p[:, :2] * np.array([W, H])
    ok = np.nan_to_num(p[:, 3]) >= min_visibility
    out = np.zeros((2, H, W), np.uint8)
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
        cv2.fillPoly(out[0], [np.round(q).astype(np.int32)], 255)
    for part, limbs in enumerate((ARMS, LEGS)):
        for a, b in limbs:
            if ok[a] and ok[b]:
                a_, b_ = xy[a] + 0.15 * (xy[b] - xy[a]), xy[b] - 0.15 * (xy[b] - xy[a])
                cv2.line(out[part], tuple(np.round(a_).astype(int)), tuple(np.round(b_).astype(int)), 255, thick)
    head = [i for i in range(11) if ok[i]]
    if head:
        cv2.circle(out[0], tuple(np.round(xy[head].mean(0)).astype(int)), max(2, int(round(0.2 * scale))), 255, -1)
    return out > 0


def colour_histogram(hsv: np.ndarray) -> np.ndarray:
    """[HUE_BINS * SAT_BINS + VALUE_BINS] float32 summing to 1 of OpenCV HSV pixels [N, 3] uint8 (N > 0):
    coloured pixels by hue and saturation, grey, black and white ones by value."""
    h, s, v = (hsv[:, i].astype(np.int64) for i in range(3))
    grey = (s < CHROMA) | (v < DARK)
    colour = (h * HUE_BINS // 180) * SAT_BINS + np.minimum((s - CHROMA) * SAT_BINS // (256 - CHROMA), SAT_BINS - 1)
    idx = np.where(grey, HUE_BINS * SAT_BINS + v * VALUE_BINS // 256, colour)
    hist = np.bincount(idx, minlength=HUE_BINS * SAT_BINS + VALUE_BINS).astype(np.float32)
    return hist / hist.sum()


def appearance(rgb: np.ndarray, pose: np.ndarray) -> np.ndarray | None:
    """[2, HUE_BINS * SAT_BINS + VALUE_BINS] float32: colour histograms of the pixels along the person's skeleton
    (rgb [H, W, 3] uint8, pose [33, 4] normalised), upper body then legs (a row of zeros when not seen); None
    when neither is seen."""
    H, W = rgb.shape[:2]
    xy = np.asarray(pose, np.float64)[:, :2] * [W, H]
    seen = xy[np.nan_to_num(pose[:, 3]) >= 0.5]
    if len(seen) == 0:
        return None
    pad = 0.1 * float(np.ptp(seen, axis=0).max()) + 4  # the head's disc and the limbs' width
    x0, y0 = np.clip(np.floor(seen.min(0) - pad), 0, [W, H]).astype(int)  # only the person's crop is drawn
    x1, y1 = np.clip(np.ceil(seen.max(0) + pad), 0, [W, H]).astype(int)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    local = np.array(pose, np.float64, copy=True)
    local[:, 0], local[:, 1] = (xy[:, 0] - x0) / (x1 - x0), (xy[:, 1] - y0) / (y1 - y0)
    on = body_pixels(local, (x1 - x0, y1 - y0))
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2HSV)
    out = np.zeros((2, HUE_BINS * SAT_BINS + VALUE_BINS), np.float32)
    for part in range(2):
        px = hsv[on[part]]
        if len(px) >= 20:
            out[part] = colour_histogram(px)
    return out if out.any() else None


def look_distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Bhattacharyya distance of two appearances (0 same, 1 disjoint), the mean over the parts both show; 0.5
    when they share none."""
    if a is None or b is None:
        return 0.5
    both = (a.sum(1) > 0) & (b.sum(1) > 0)
    if not both.any():
        return 0.5
    overlap = np.sum(np.sqrt(a[both] * b[both]), axis=1)  # Bhattacharyya coefficient per part
    return float(np.mean(np.sqrt(np.clip(1.0 - overlap, 0.0, 1.0))))


def box_iou(a: np.ndarray, b: np.ndarray, over: Literal["union", "b"] = "union") -> float:
    """Intersection of two boxes [4] (x0, y0, x1, y1) over their union, or over the area of `b`."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    denom = area_b if over == "b" else (a[2] - a[0]) * (a[3] - a[1]) + area_b - w * h
    return float(w * h / denom) if denom > 0 else 0.0


def _centre_side(box: np.ndarray) -> tuple[np.ndarray, float]:
    return (box[:2] + box[2:]) / 2, float(max(box[2] - box[0], box[3] - box[1], 1.0))


@dataclass
class PersonTrack:
    """The chosen person: last box [4] (x0, y0, x1, y1 pixels), its centre's velocity [2] per frame, their look."""

    box: np.ndarray  # [4]
    look: np.ndarray | None  # [2, HUE_BINS * SAT_BINS + VALUE_BINS] their appearance (a running mean)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # [2] pixels a frame (damped)
    missed: int = 0  # frames since the person was last seen

    @property
    def lost(self) -> bool:
        """Missed for so long that where they should be says little (their look must then agree closely)."""
        return self.missed >= LONG_LOSS

    def predicted(self) -> np.ndarray:
        """[4] where the box should be this frame: moved at constant velocity over the missed frames, as large
        (a size extrapolated over a few frames soon shrinks to nothing)."""
        return (self.box + np.tile(self.velocity, 2) * (self.missed + 1)).astype(np.float32)

    def cost(self, box: np.ndarray, look: np.ndarray | None) -> float:
        """How unlike the tracked person a candidate (box [4] pixels, look) is: the sum of its distance from the
        prediction, size change and look distance, each over its gate; inf when a gate refuses it."""
        pc, ps = _centre_side(self.predicted())
        c, s = _centre_side(np.asarray(box, np.float64))
        shift = float(np.linalg.norm(c - pc)) / ps / (MAX_SHIFT * (1.0 + 0.25 * self.missed))
        size = abs(math.log(s / ps)) / MAX_SIZE
        look_gap = look_distance(self.look, look) / (LOST_LOOK if self.lost else MAX_LOOK)
        cost = shift + size + look_gap
        return cost if max(shift, size, look_gap) <= 1.0 and cost <= MAX_COST else math.inf

    def update(self, box: np.ndarray, look: np.ndarray | None) -> None:
        """The person was found at `box` [4] with appearance `look` this frame."""
        box = np.asarray(box, np.float32)
        step = ((box[:2] + box[2:]) - (self.box[:2] + self.box[2:])) / 2 / (self.missed + 1)  # of the centre
        self.velocity = 0.5 * self.velocity + 0.5 * step
        self.box, self.missed = box, 0
        if look is not None and self.look is None:
            self.look = look
        elif look is not None:  # a running mean per part seen now (a part first seen now is taken as it is)
            had, has = self.look.sum(1, keepdims=True) > 0, look.sum(1, keepdims=True) > 0
            mixed = np.where(had, 0.8 * self.look + 0.2 * look, look)
            self.look = np.where(has, mixed, self.look).astype(np.float32)

    def miss(self) -> None:
        """The person was not found this frame."""
        self.missed += 1


def same_person(pose: np.ndarray, other: np.ndarray, size: tuple[int, int], max_offset: float = 0.2) -> bool:
    """Whether two landmark sets (pose [33, 4], other [33, 4] normalised) are of the same person: the landmarks
    both see lie within `max_offset` of `pose`'s box side of each other (median). True when too few are seen."""
    W, H = size
    seen = (np.nan_to_num(pose[:, 3]) >= 0.5) & (np.nan_to_num(other[:, 3]) >= 0.5)
    if seen.sum() < 4:
        return True
    a, b = pose[seen, :2] * [W, H], other[seen, :2] * [W, H]
    side = max(float(np.ptp(a[:, 0])), float(np.ptp(a[:, 1])), 1.0)
    return float(np.median(np.linalg.norm(a - b, axis=1))) <= max_offset * side


def same_face(pose: np.ndarray, face: np.ndarray, size: tuple[int, int], max_offset: float = 0.1) -> bool:
    """Whether a face mesh (face [478, 3] normalised) is on the person of `pose` [33, 4]: its centre within
    `max_offset` of the body's box side from their nose. True when the nose is not seen."""
    if np.nan_to_num(pose[0, 3]) < 0.5:
        return True
    W, H = size
    seen = np.nan_to_num(pose[:, 3]) >= 0.3
    xy = pose[seen, :2] * [W, H]
    side = max(float(np.ptp(xy[:, 0])), float(np.ptp(xy[:, 1])), 1.0)
    centre = face[:, :2].mean(0) * [W, H]
    return float(np.linalg.norm(centre - pose[0, :2] * [W, H])) <= max_offset * side
