"""Following one person through a clip: two drawn people cross, the chosen one (A) standing, the other (B) larger and
walking past in front of A; the landmarker (stubbed, one person a window as mediapipe's) misses A in some frames.
The track must give A or nothing, never B."""

import math

import cv2
import numpy as np
import pytest

from core.data.person import PersonFinder
from core.data.person_track import LONG_LOSS, PersonTrack, appearance, look_distance

W, H = 1280, 720
SKIN = (220, 170, 140)


def figure(cx: float, top: float, height: float) -> np.ndarray:
    """[33, 4] mediapipe-ordered landmarks (normalised, all seen) of a person standing upright."""
    h = height
    at = {
        0: (0, 0.07), 1: (-0.02, 0.05), 2: (-0.03, 0.05), 3: (-0.04, 0.05), 4: (0.02, 0.05), 5: (0.03, 0.05),
        6: (0.04, 0.05), 7: (-0.06, 0.06), 8: (0.06, 0.06), 9: (-0.02, 0.1), 10: (0.02, 0.1),
        11: (-0.12, 0.2), 12: (0.12, 0.2), 13: (-0.15, 0.35), 14: (0.15, 0.35), 15: (-0.16, 0.48), 16: (0.16, 0.48),
        17: (-0.16, 0.5), 18: (0.16, 0.5), 19: (-0.16, 0.51), 20: (0.16, 0.51), 21: (-0.15, 0.5), 22: (0.15, 0.5),
        23: (-0.08, 0.52), 24: (0.08, 0.52), 25: (-0.09, 0.74), 26: (0.09, 0.74), 27: (-0.09, 0.95),
        28: (0.09, 0.95), 29: (-0.1, 0.97), 30: (0.1, 0.97), 31: (-0.05, 0.99), 32: (0.05, 0.99),
    }  # fmt: skip
    pose = np.zeros((33, 4))
    for i, (dx, dy) in at.items():
        pose[i] = ((cx + dx * h) / W, (top + dy * h) / H, 0.0, 0.95)
    return pose


def draw(img: np.ndarray, pose: np.ndarray, shirt, trousers) -> None:
    xy = np.round(pose[:, :2] * [W, H]).astype(int)
    h = np.linalg.norm(xy[11] - xy[27])
    t = max(3, int(0.08 * h))
    cv2.fillPoly(img, [xy[[11, 12, 24, 23]].astype(np.int32)], shirt)
    for a, b, c in ((11, 13, shirt), (13, 15, SKIN), (12, 14, shirt), (14, 16, SKIN), (23, 25, trousers),
                    (25, 27, trousers), (24, 26, trousers), (26, 28, trousers)):  # fmt: skip
        cv2.line(img, tuple(xy[a]), tuple(xy[b]), c, t)
    cv2.circle(img, tuple(xy[0]), int(0.07 * h), SKIN, -1)


def a_at(k: int) -> np.ndarray:
    return figure(500 + 10 * k, 150, 320)


def b_at(k: int) -> np.ndarray:
    return figure(1400 - 140 * k, 330, 360)  # enters at frame 1, passes under A at frames 5-7


class Scene:
    """Frame k: A (red shirt, blue trousers) stands near x=500 drifting right; B (green, light grey, taller,
    lower in the frame: nearer) comes in from the right and walks to the left across A's area."""

    def __init__(self, hide_a: set[int], hide_all: set[int]) -> None:
        self.hide_a, self.hide_all, self.k = hide_a, hide_all, 0

    def people(self, k: int) -> dict[str, np.ndarray]:
        out = {"B": b_at(k)}
        if k not in self.hide_a:
            out["A"] = a_at(k)
        return {} if k in self.hide_all else out

    def frame(self, k: int) -> np.ndarray:
        rng = np.random.default_rng(k)
        img = np.clip(rng.normal(110, 12, (H, W, 3)), 0, 255).astype(np.uint8)
        img[..., 1] = np.clip(img[..., 1].astype(int) + 20, 0, 255)  # grass-ish
        draw(img, a_at(k), (200, 40, 40), (30, 30, 120))  # A, even when missed
        draw(img, b_at(k), (60, 160, 80), (180, 180, 180))  # B in front
        return img

    def pose_in(self, rgb: np.ndarray, win) -> tuple[np.ndarray, None] | None:
        """The landmarker on a window: the largest person at least 60% inside it (one person, as mediapipe)."""
        x0, y0, x1, y1 = win
        best, area = None, 0.0
        for pose in self.people(self.k).values():
            (bx0, by0), (bx1, by1) = pose[:, :2].min(0) * [W, H], pose[:, :2].max(0) * [W, H]
            inside = max(0, min(x1, bx1) - max(x0, bx0)) * max(0, min(y1, by1) - max(y0, by0))
            whole = (bx1 - bx0) * (by1 - by0)
            if inside >= 0.6 * whole and whole > area:
                best, area = pose, whole
        return None if best is None else (best.copy(), None)


def who(box: np.ndarray, people: dict[str, np.ndarray]) -> str:
    cx = (box[0] + box[2]) / 2 / W
    return min(people, key=lambda n: abs(people[n][:, 0].mean() - cx))


@pytest.mark.parametrize("hide_a, hide_all", [({5}, {3}), ({5, 6}, set())])
def test_track_follows_the_chosen_person_through_a_crossing(hide_a, hide_all):
    scene = Scene(hide_a, hide_all)
    finder = PersonFinder(segment=False)
    finder.mediapipe = True  # the landmarker is the scene's stub; no mediapipe needed
    finder._pose_in = scene.pose_in
    got = []
    for k in range(8):
        scene.k = k
        found = finder.track(scene.frame(k))
        both = {"A": a_at(k), "B": b_at(k)}
        got.append(None if found is None else who(found.box, both))
    want = [None if k in hide_a | hide_all else "A" for k in range(8)]
    assert got == want


def test_track_gates():
    img = np.full((H, W, 3), 110, np.uint8)
    a, b = figure(500, 150, 320), figure(700, 330, 360)
    draw(img, a, (200, 40, 40), (30, 30, 120))
    draw(img, b, (60, 160, 80), (180, 180, 180))
    look_a, look_b = appearance(img, a), appearance(img, b)
    assert look_distance(look_a, look_a) < 1e-3 and look_distance(look_a, look_b) > 0.6
    box = np.array([450, 130, 550, 470], np.float32)
    track = PersonTrack(box, look_a)
    assert track.cost(box + 20, look_a) < 0.5  # the same person a little further
    assert math.isinf(track.cost(box + 20, look_b))  # someone else dressed otherwise
    assert math.isinf(track.cost(box + 250, look_a))  # too far from where they were
    assert math.isinf(track.cost(box * [1, 1, 1, 3], look_a))  # three times taller
    for _ in range(LONG_LOSS):
        track.miss()
    assert track.lost and track.cost(box + 250, look_a) < 1.0  # missed a while: may have gone further
