"""Driving channels (core.tracking.types) to and from the studio's EditState."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from app.state import EditState, PoseEdit
from core.tracking.types import joint_of


def channels_from_edit(edit: EditState) -> dict[str, float]:
    """The channels that reproduce an edit's expression, gaze, pose and root translation."""
    out = {f"expr.{k}": float(v) for k, v in edit.expression}
    out["gaze.yaw"], out["gaze.pitch"] = (float(v) for v in edit.gaze_deg)
    for joint, rot in edit.pose.rotations:
        for axis, v in zip("xyz", rot, strict=True):
            out[f"pose.{joint}.{axis}"] = float(v)
    for axis, v in zip("xyz", edit.pose.root_translation, strict=True):
        out[f"root.{axis}"] = float(v)
    return out


def apply_channels(edit: EditState, channels: Mapping[str, float]) -> EditState:
    """A copy of `edit` with the given channels set; channels not given keep the edit's values.

    A joint with any channel given takes all three axes from `channels` (missing axes count as 0).
    """
    expr = {k[5:]: v for k, v in channels.items() if k.startswith("expr.")}
    new = edit.with_expression(expr) if expr else edit
    if "gaze.yaw" in channels or "gaze.pitch" in channels:
        yaw = channels.get("gaze.yaw", edit.gaze_deg[0])
        pitch = channels.get("gaze.pitch", edit.gaze_deg[1])
        new = replace(new, gaze_deg=(float(yaw), float(pitch)))
    pose = new.pose
    joints = {joint_of(k) for k in channels if k.startswith("pose.")}
    for joint in sorted(joints):
        pose = pose.with_rotation(joint, tuple(float(channels.get(f"pose.{joint}.{a}", 0.0)) for a in "xyz"))
    if any(f"root.{a}" in channels for a in "xyz"):
        root = tuple(float(channels.get(f"root.{a}", r)) for a, r in zip("xyz", pose.root_translation, strict=True))
        pose = PoseEdit(rotations=pose.rotations, root_translation=root)
    return replace(new, pose=pose) if pose != new.pose else new
