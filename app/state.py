"""The studio's edit state as immutable records: what the user set, never derived data, and `edit_frame`, the one
function that turns it into the `core.body.frame.DriveFrame` every avatar draws.

Every edit makes a new `EditState` (dataclasses.replace), so undo/redo is a stack of snapshots and the
frame loop can tell what changed by comparing fields. The part and lighting records are core's (`PartEdit`,
`LightingEdit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.body.frame import Controls, DriveFrame, drive_frame
from core.raster.lighting import Lighting, LightingEdit
from core.raster.parts import PartEdit
from core.raster.types import PART_NAMES


@dataclass(frozen=True)
class PoseEdit:
    """Body pose as per-joint axis-angle vectors in degrees (x, y, z), by joint name, plus root translation."""

    rotations: tuple[tuple[str, tuple[float, float, float]], ...] = ()  # only joints that are not zero
    root_translation: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def rotation_of(self, joint: str) -> tuple[float, float, float]:
        for name, rot in self.rotations:
            if name == joint:
                return rot
        return (0.0, 0.0, 0.0)

    def with_rotation(self, joint: str, rot: tuple[float, float, float]) -> PoseEdit:
        rest = tuple((n, r) for n, r in self.rotations if n != joint)
        if any(abs(v) > 1e-9 for v in rot):
            rest = (*rest, (joint, tuple(float(v) for v in rot)))
        return replace(self, rotations=rest)

    def as_dict(self) -> dict[str, tuple[float, float, float]]:
        return dict(self.rotations)


@dataclass(frozen=True)
class EditState:
    """Everything undo/redo covers: expression, gaze, pose, parts, lighting, view mode."""

    expression: tuple[tuple[str, float], ...] = ()  # only non-zero coefficients, by ARKit-style name
    gaze_deg: tuple[float, float] = (0.0, 0.0)  # (yaw right+, pitch up+) of both eyes
    pose: PoseEdit = field(default_factory=PoseEdit)
    parts: tuple[PartEdit, ...] = tuple(PartEdit() for _ in PART_NAMES)
    lighting: LightingEdit = field(default_factory=LightingEdit)
    view_mode: str = "full"

    def expression_of(self, name: str) -> float:
        for n, v in self.expression:
            if n == name:
                return v
        return 0.0

    def with_expression(self, values: dict[str, float]) -> EditState:
        """A copy with the given coefficients set (others kept); zero entries are dropped."""
        merged = dict(self.expression)
        merged.update({k: float(v) for k, v in values.items()})
        return replace(self, expression=tuple((k, v) for k, v in sorted(merged.items()) if abs(v) > 1e-9))

    def with_part(self, part: str, **changes) -> EditState:
        if part not in PART_NAMES:
            raise ValueError(f"unknown part {part!r}; parts are {', '.join(PART_NAMES)}")
        i = PART_NAMES.index(part)
        parts = list(self.parts)
        parts[i] = replace(parts[i], **changes)
        return replace(self, parts=tuple(parts))

    def part(self, part: str) -> PartEdit:
        return self.parts[PART_NAMES.index(part)]


def edit_frame(edit: EditState, controls: Controls, lighting: Lighting) -> DriveFrame:
    """The frame an avatar with `controls` draws for `edit`, lit by `lighting` (built from `edit.lighting`)."""
    return drive_frame(
        controls, edit.pose.rotations, edit.expression, edit.gaze_deg, edit.pose.root_translation,
        lighting=lighting, parts=edit.parts, view=edit.view_mode,
    )  # fmt: skip


@dataclass(frozen=True)
class OrbitView:
    """The preview camera as an orbit around a target point (world frame: metres, y-up, person faces +z)."""

    yaw_deg: float = 0.0  # 0 = in front of the person (on +z), positive = camera moves to the person's left
    pitch_deg: float = 5.0  # positive = camera above the target
    distance: float = 3.8
    target: tuple[float, float, float] = (0.0, 0.95, 0.0)
    fov_y_deg: float = 35.0


CAMERA_PRESETS: dict[str, OrbitView] = {
    "front": OrbitView(),
    "side": OrbitView(yaw_deg=90.0),
    "back": OrbitView(yaw_deg=180.0),
    "face": OrbitView(pitch_deg=0.0, distance=0.95, target=(0.0, 1.6, 0.0)),
}
