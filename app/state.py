"""The studio's edit state as immutable records: what the user set, never derived data.

Every edit makes a new `EditState` (dataclasses.replace), so undo/redo is a stack of snapshots and the
frame loop can tell what changed by comparing fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from core.raster.types import PART_NAMES

ViewMode = Literal["full", "albedo", "shading", "parts"]
VIEW_MODES: tuple[str, ...] = ("full", "albedo", "shading", "parts")


@dataclass(frozen=True)
class PartEdit:
    """Per-part appearance edits (one per entry of PART_NAMES)."""

    visible: bool = True
    hue: float = 0.0  # turns in [-0.5, 0.5]
    saturation: float = 1.0  # multiplier
    brightness: float = 1.0  # multiplier
    looseness: float = 1.0  # deformer strength for loose garments (0 = pure skinning)
    swap_from: str = ""  # avatar file whose part replaces this one ("" = keep own)

    @property
    def is_identity(self) -> bool:
        return (
            self.visible
            and self.hue == 0.0
            and self.saturation == 1.0
            and self.brightness == 1.0
            and not self.swap_from
        )


@dataclass(frozen=True)
class LightingEdit:
    """Environment preset plus the user's adjustments and a directional key light."""

    preset: str = "studio"
    rotation_deg: float = 0.0  # environment rotation about +y
    intensity: float = 1.0
    temperature_k: float = 6500.0
    key_azimuth_deg: float = 30.0  # direction towards the key light, about +y from +z
    key_elevation_deg: float = 35.0
    key_color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    key_intensity: float = 0.3


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
