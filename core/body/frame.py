"""One frame of driving input, the record every avatar kind draws from (`DriveFrame`), and the one converter
from named values (the studio's PoseEdit convention, driving channels) to body-model arrays.

PoseEdit rotations are axis-angle degrees about world axes at each bone's reference pose, relative to its
parent: the `core.body.BodyParams` convention in degrees. So the conversion is a lookup by name and a change
of unit; this module is the one place that does it (the studio, live driving and video ingestion call it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from core.raster.lighting import Lighting, uniform_lighting
from core.raster.parts import NO_PART_EDITS, PartEdit
from core.raster.types import Gaussians

DEG = math.pi / 180.0
ViewMode = Literal["full", "albedo", "shading", "parts"]
VIEW_MODES: tuple[str, ...] = ("full", "albedo", "shading", "parts")


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


@dataclass(frozen=True)
class Controls:
    """The drivable controls an avatar exposes, by name (empty for static avatars)."""

    expression_names: tuple[str, ...] = ()  # [E]
    joint_names: tuple[str, ...] = ()  # [J]
    joint_parents: tuple[int, ...] = ()  # [J]


@dataclass(frozen=True)
class DriveFrame:
    """Everything one frame of an avatar depends on, in `core.body` units (radians, metres).

    "full" lights the albedo, "albedo" shows it unlit, "shading" lights a uniform grey (only the lighting shows),
    "parts" is "full" here (the renderer colours by part label).
    """

    pose: Tensor  # [J, 3] axis-angle radians, the avatar's bone order
    expression: Tensor  # [E] coefficients, the avatar's expression order
    gaze: Tensor  # [2] (yaw, pitch) radians
    translation: Tensor  # [3] metres, added to the root
    lighting: Lighting = uniform_lighting(1.0)
    parts: tuple[PartEdit, ...] = NO_PART_EDITS  # one per PART_NAMES entry
    view: ViewMode = "full"

    def __post_init__(self) -> None:
        if self.view not in VIEW_MODES:
            raise ValueError(f"unknown view mode {self.view!r}; choose one of {', '.join(VIEW_MODES)}")
        for name, shape in (("gaze", (2,)), ("translation", (3,))):
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(
                    f"DriveFrame.{name}: expected shape {list(shape)}, got {tuple(getattr(self, name).shape)}"
                )

    @property
    def lit(self) -> bool:
        """Whether colours are lit (every view but "albedo")."""
        return self.view != "albedo"

    @property
    def shading_only(self) -> bool:
        """Whether the lighting falls on a uniform grey instead of the albedo."""
        return self.view == "shading"


def drive_frame(
    controls: Controls,
    rotations_deg: Mapping[str, Sequence[float]] | Iterable[tuple[str, Sequence[float]]] = (),  # {bone: [3] deg}
    expression: Mapping[str, float] | Iterable[tuple[str, float]] = (),  # {ARKit name: coefficient}
    gaze_deg: Sequence[float] = (0.0, 0.0),  # [2] (yaw, pitch) degrees
    root_translation: Sequence[float] = (0.0, 0.0, 0.0),  # [3] metres
    *,
    lighting: Lighting | None = None,
    parts: tuple[PartEdit, ...] = NO_PART_EDITS,
    view: ViewMode = "full",
) -> DriveFrame:
    """Named values -> the frame of an avatar with `controls` (float64 tensors; avatars cast them to their own
    precision); see `body_arrays`."""
    b = body_arrays(
        rotations_deg, expression, gaze_deg, root_translation, controls.joint_names, controls.expression_names
    )
    return DriveFrame(
        pose=torch.from_numpy(b.pose), expression=torch.from_numpy(b.expression), gaze=torch.from_numpy(b.gaze),
        translation=torch.from_numpy(b.translation), lighting=uniform_lighting(1.0) if lighting is None else lighting,
        parts=parts, view=view,
    )  # fmt: skip


class Drivable(Protocol):
    """What every avatar kind offers: its controls and one `drive(frame)`."""

    name: str
    description: str
    controls: Controls

    def drive(self, frame: DriveFrame) -> Gaussians:
        """Posed, edited, lit Gaussians (unbatched) of one frame."""
        ...

    def face_target(self) -> tuple[float, float, float]:
        """A world point at the middle of the face."""
        ...

    def canonical(self) -> Gaussians:
        """The undriven Gaussians (for .ply export and part swaps)."""
        ...
