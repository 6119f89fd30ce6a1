"""Named pose, expression and gaze (the studio's PoseEdit convention, driving channels) -> body-model arrays.

PoseEdit rotations are axis-angle degrees about world axes at each bone's reference pose, relative to its
parent: the `core.body.BodyParams` convention in degrees. So the conversion is a lookup by name and a change
of unit; this module is the one place that does it (the studio's avatars and video ingestion call it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEG = math.pi / 180.0


@dataclass(frozen=True)
class BodyArrays:
    """One frame of body parameters in `core.body.BodyParams` units (radians, metres)."""

    pose: np.ndarray  # [J, 3] axis-angle radians, bone order of the body
    expression: np.ndarray  # [E] coefficients, expression order of the body
    gaze: np.ndarray  # [2] (yaw, pitch) radians
    translation: np.ndarray  # [3] metres, added to the root


def _items(x: Mapping | Iterable) -> Iterable[tuple[str, object]]:
    return x.items() if isinstance(x, Mapping) else x


def body_arrays(
    rotations_deg: Mapping[str, Sequence[float]] | Iterable[tuple[str, Sequence[float]]],  # {bone: [3] degrees}
    expression: Mapping[str, float] | Iterable[tuple[str, float]],  # {ARKit name: coefficient}
    gaze_deg: Sequence[float],  # [2] (yaw, pitch) degrees
    root_translation: Sequence[float],  # [3] metres
    joint_names: Sequence[str],  # [J]
    expression_names: Sequence[str],  # [E]
    *,
    dtype: type = np.float64,
) -> BodyArrays:
    """PoseEdit-style named values -> body arrays. Names the body does not have are ignored (a rig may lack
    fingers or some expressions); joints and expressions not named stay at rest (zero)."""
    joint = {n: i for i, n in enumerate(joint_names)}
    expr_index = {n: i for i, n in enumerate(expression_names)}
    pose = np.zeros((len(joint_names), 3), dtype)
    for name, rot in _items(rotations_deg):
        if name in joint:
            r = np.asarray(rot, np.float64)
            if r.shape != (3,):
                raise ValueError(f"rotation of {name!r}: expected 3 axis-angle degrees, got shape {r.shape}")
            pose[joint[name]] = r * DEG
    expr = np.zeros(len(expression_names), dtype)
    for name, v in _items(expression):
        if name in expr_index:
            expr[expr_index[name]] = float(v)
    gaze = np.asarray(gaze_deg, np.float64).reshape(2) * DEG
    trans = np.asarray(root_translation, np.float64).reshape(3)
    return BodyArrays(pose, expr, gaze.astype(dtype), trans.astype(dtype))


def rotations_from_channels(channels: Mapping[str, float]) -> dict[str, np.ndarray]:
    """`pose.<bone>.x|y|z` channels -> {bone: axis-angle degrees [3]}; a bone with any axis given takes the
    missing axes as 0 (as app.driving.apply_channels does); other channels are ignored."""
    out: dict[str, np.ndarray] = {}
    for name, v in channels.items():
        if name.startswith("pose.") and name[-2:] in (".x", ".y", ".z"):
            out.setdefault(name[5:-2], np.zeros(3))["xyz".index(name[-1])] = float(v)
    return out


def body_arrays_from_channels(
    channels: Mapping[str, float],  # driving channels (core.tracking.types)
    joint_names: Sequence[str],  # [J]
    expression_names: Sequence[str],  # [E]
    *,
    dtype: type = np.float64,
) -> BodyArrays:
    """Driving channels -> body arrays; missing gaze or root channels count as 0."""
    expression = {k[5:]: v for k, v in channels.items() if k.startswith("expr.")}
    gaze = (channels.get("gaze.yaw", 0.0), channels.get("gaze.pitch", 0.0))
    root = tuple(channels.get(f"root.{a}", 0.0) for a in "xyz")
    return body_arrays(
        rotations_from_channels(channels), expression, gaze, root, joint_names, expression_names, dtype=dtype
    )
