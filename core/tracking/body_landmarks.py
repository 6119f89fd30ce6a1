"""Mediapipe's body and hand landmark layouts against the body model's bones, and their world frame.

Mediapipe world landmarks (pose_world, *_hand_world) are metres in camera-aligned axes: x to the image's
right, y down, z away from the camera. The camera faces the person, so the person's left is on the image's
right and the project frame (x: the person's left, y up, z: the person's front) is (x, -y, -z).

`pose_points` / `hand_points` make the landmarks a posed body model would give (exact joints where the two
skeletons agree); they define the rest directions of retargeting and give ground-truth inputs to tests.
"""

from __future__ import annotations

import numpy as np

from core.tracking.body_skeleton import Skeleton

# Mediapipe pose landmark indices (BlazePose topology; left/right are the person's own sides).
NOSE = 0
SHOULDER = {"L": 11, "R": 12}
ELBOW = {"L": 13, "R": 14}
WRIST = {"L": 15, "R": 16}
PINKY = {"L": 17, "R": 18}
INDEX = {"L": 19, "R": 20}
THUMB = {"L": 21, "R": 22}
HIP = {"L": 23, "R": 24}
KNEE = {"L": 25, "R": 26}
ANKLE = {"L": 27, "R": 28}
HEEL = {"L": 29, "R": 30}
FOOT_INDEX = {"L": 31, "R": 32}
NUM_POSE = 33
NUM_HAND = 21

# Pose landmarks that are bone heads of the body model (the rest are placed from these).
POSE_BONES: dict[int, str] = {
    **{SHOULDER[s]: f"upperarm01.{s}" for s in "LR"},
    **{ELBOW[s]: f"lowerarm01.{s}" for s in "LR"},
    **{WRIST[s]: f"wrist.{s}" for s in "LR"},
    **{PINKY[s]: f"finger5-1.{s}" for s in "LR"},
    **{INDEX[s]: f"finger2-1.{s}" for s in "LR"},
    **{THUMB[s]: f"finger1-2.{s}" for s in "LR"},
    **{HIP[s]: f"upperleg01.{s}" for s in "LR"},
    **{KNEE[s]: f"lowerleg01.{s}" for s in "LR"},
    **{ANKLE[s]: f"foot.{s}" for s in "LR"},
    **{FOOT_INDEX[s]: f"toe2-3.{s}" for s in "LR"},
}
# Face landmarks (nose, eyes, ears, mouth) as fixed offsets (metres) in the head bone's world-aligned frame.
FACE_OFFSETS: dict[int, tuple[float, float, float]] = {
    NOSE: (0.0, 0.06, 0.11),
    1: (0.015, 0.09, 0.09), 2: (0.032, 0.09, 0.085), 3: (0.048, 0.09, 0.08),
    4: (-0.015, 0.09, 0.09), 5: (-0.032, 0.09, 0.085), 6: (-0.048, 0.09, 0.08),
    7: (0.075, 0.07, 0.0), 8: (-0.075, 0.07, 0.0), 9: (0.022, 0.02, 0.1), 10: (-0.022, 0.02, 0.1),
}  # fmt: skip
# Hand landmarks: 0 wrist; thumb 1-4 (CMC, MCP, IP, tip); index 5-8, middle 9-12, ring 13-16, pinky 17-20
# (MCP, PIP, DIP, tip). Body model: finger1 is the thumb, finger2..5 index..pinky; finger<f>-<k> heads.
HAND_WRIST = 0
FINGER_BASE = {1: 1, 2: 5, 3: 9, 4: 13, 5: 17}  # first landmark of each finger


def mediapipe_to_world(p: np.ndarray) -> np.ndarray:
    """Mediapipe world landmarks [..., 3] (camera axes) -> project frame [..., 3] (x left, y up, z front)."""
    p = np.asarray(p, dtype=np.float64)
    return p * np.array([1.0, -1.0, -1.0])


def world_to_mediapipe(p: np.ndarray) -> np.ndarray:
    """Project frame [..., 3] -> mediapipe's camera-aligned world axes [..., 3] (the same flip)."""
    return mediapipe_to_world(p)


def _tip(x: np.ndarray, G: np.ndarray, sk: Skeleton, last: str, before: str, scale: float) -> np.ndarray:
    """The end of bone `last` (fingertips, toe tips): its head plus its own rotation of the reference
    direction from `before`'s head to its head, `scale` times as long."""
    j = sk.index(last)
    return x[j] + scale * G[j] @ (sk.heads[j] - sk.heads[sk.index(before)])


def pose_points(sk: Skeleton, x: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Posed bone heads x [J, 3] and world rotations G [J, 3, 3] -> the 33 pose landmarks [33, 3] (project frame).

    Body and limb landmarks are bone heads; face landmarks (nose, eyes, ears, mouth) are fixed offsets in
    the head's frame, good enough for the shoulders-to-feet joints that retargeting reads.
    """
    out = np.zeros((NUM_POSE, 3))
    for i, bone in POSE_BONES.items():
        out[i] = x[sk.index(bone)]
    h, R = x[sk.index("head")], G[sk.index("head")]
    for i, off in FACE_OFFSETS.items():
        out[i] = h + R @ np.asarray(off)
    for s in "LR":
        foot = x[sk.index(f"foot.{s}")]
        out[HEEL[s]] = foot + G[sk.index(f"foot.{s}")] @ np.array([0.0, -0.05, -0.05])
        out[FOOT_INDEX[s]] = _tip(x, G, sk, f"toe2-3.{s}", f"toe2-2.{s}", 0.8)
    return out


def hand_points(sk: Skeleton, x: np.ndarray, G: np.ndarray, side: str) -> np.ndarray:
    """Posed bone heads x [J, 3] and world rotations G [J, 3, 3] -> the 21 hand landmarks [21, 3] of the
    person's `side` ("L" or "R"), project frame."""
    if side not in ("L", "R"):
        raise ValueError(f"side must be 'L' or 'R', got {side!r}")
    out = np.zeros((NUM_HAND, 3))
    out[HAND_WRIST] = x[sk.index(f"wrist.{side}")]
    for f, base in FINGER_BASE.items():
        for k in range(3):
            out[base + k] = x[sk.index(f"finger{f}-{k + 1}.{side}")]
        out[base + 3] = _tip(x, G, sk, f"finger{f}-3.{side}", f"finger{f}-2.{side}", 0.8)
    return out
