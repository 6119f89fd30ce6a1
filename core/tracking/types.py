"""Records that flow through live driving: frames in, landmarks, driving channels out.

    source ──VideoFrame──▶ tracker ──Landmarks──▶ retarget ──DrivingFrame──▶ filters / calibration ──▶ EditState

Driving values are a flat mapping of named channels (floats), so that one-euro filtering, calibration
(gain / offset / invert), live curves, recording and network output treat every channel alike:

    expr.<ARKit name>        expression coefficient in [0, 1] (e.g. expr.jawOpen, expr.eyeBlinkLeft)
    gaze.yaw, gaze.pitch     both eyes, degrees (yaw right+, pitch up+), as EditState.gaze_deg
    pose.<joint>.x|y|z       axis-angle in degrees about the world axes, relative to the body's rest pose,
                             as app.state.PoseEdit (joint names are the body model's bone names, e.g. pose.head.x)
    root.x|y|z               root translation in metres

Groups (enable / disable in the panel): face = expr.* + gaze.* + the neck and head joints; hands = the
finger and metacarpal joints; body = every other pose.* joint and root.*.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

Group = Literal["face", "body", "hands"]
GROUPS: tuple[Group, ...] = ("face", "body", "hands")
FACE_JOINTS: frozenset[str] = frozenset({"neck01", "neck02", "neck03", "head", "eye.L", "eye.R"})
HAND_JOINT_PREFIXES: tuple[str, ...] = ("finger", "metacarpal")


@dataclass(frozen=True)
class VideoFrame:
    """One picture from a source."""

    image: np.ndarray  # [H, W, 3] uint8 RGB
    index: int  # 0, 1, 2, ... in the order the source produced them
    t_capture: float  # time.perf_counter() when the frame arrived in this process
    source_time: float  # seconds: the video's timestamp, or seconds since the source opened (live)


@dataclass(frozen=True)
class Landmarks:
    """What the tracker saw in one frame. Image coordinates are normalised to [0, 1] (x right, y down);
    `z` follows mediapipe (relative depth, same scale as x). Left/right are the person's own sides.
    A part that was not found (or not run this frame) is None."""

    frame_index: int
    image_size: tuple[int, int]  # (W, H) of the analysed image
    face: np.ndarray | None = None  # [478, 3] face mesh with irises (468..477)
    pose: np.ndarray | None = None  # [33, 4] x, y, z, visibility
    pose_world: np.ndarray | None = None  # [33, 3] metres, hip-centred, mediapipe world frame (y down)
    left_hand: np.ndarray | None = None  # [21, 3]
    right_hand: np.ndarray | None = None  # [21, 3]
    left_hand_world: np.ndarray | None = None  # [21, 3] metres
    right_hand_world: np.ndarray | None = None  # [21, 3] metres
    # [2] (right eye, left eye): brightness of the strip under each upper lid against the skin around the eye,
    # read from the picture (core.tracking.eye_image.under_lid_light): low where iris shows under a lowered lid
    under_lid_light: np.ndarray | None = None
    timings_ms: Mapping[str, float] = field(default_factory=dict)  # e.g. {"face": 5.1, "pose": 28.0}


@dataclass(frozen=True)
class DrivingFrame:
    """Driving channels for one instant, with the timings that produced them."""

    channels: Mapping[str, float]
    frame_index: int = -1
    t_capture: float = 0.0  # perf_counter of the source frame (latency is measured from here)
    timings_ms: Mapping[str, float] = field(default_factory=dict)  # capture, tracking, retarget, ...

    def with_channels(self, channels: Mapping[str, float]) -> DrivingFrame:
        return replace(self, channels=dict(channels))

    def with_timing(self, **ms: float) -> DrivingFrame:
        return replace(self, timings_ms={**self.timings_ms, **ms})


def channel_group(name: str) -> Group:
    """The group a channel belongs to (see the module docstring)."""
    if name.startswith(("expr.", "gaze.")):
        return "face"
    if name.startswith("pose."):
        joint = joint_of(name)
        if joint in FACE_JOINTS:
            return "face"
        if joint.startswith(HAND_JOINT_PREFIXES):
            return "hands"
        return "body"
    if name.startswith("root."):
        return "body"
    raise ValueError(f"unknown driving channel {name!r}: channels start with expr., gaze., pose. or root.")


def joint_of(name: str) -> str:
    """'pose.upperarm01.L.x' -> 'upperarm01.L'."""
    if not name.startswith("pose.") or name[-2:] not in (".x", ".y", ".z"):
        raise ValueError(f"{name!r} is not a pose channel (pose.<joint>.x|y|z)")
    return name[5:-2]


def select_groups(channels: Mapping[str, float], enabled: Iterable[Group]) -> dict[str, float]:
    """Only the channels whose group is enabled."""
    on = set(enabled)
    return {k: v for k, v in channels.items() if channel_group(k) in on}
