"""A ground-truth synthetic person of the world as an avatar: the body model poses it each frame, and lighting,
view modes and part edits apply as on every avatar kind."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import threading

import torch

from core.body.frame import Controls, DriveFrame
from core.raster.lighting import SHADING_GREY, uniform_lighting
from core.raster.parts import apply_part_edits, face_centre
from core.raster.types import Gaussians


def synthetic_available() -> bool:
    """Whether the body model is installed (anny builds its cache once, ~1 min)."""
    return importlib.util.find_spec("anny") is not None


class SyntheticAvatar:
    """One synthetic identity posed by the body model each frame."""

    def __init__(self, seed: int) -> None:
        from core.data.body_bridge import world_body
        from core.data.identity import build_identity
        from core.data.identity_spec import draw_identity_spec

        self.body = world_body()
        self.identity = build_identity(draw_identity_spec(seed), self.body)
        self._grey = dataclasses.replace(self.identity, albedo=torch.full_like(self.identity.albedo, SHADING_GREY))
        self.name = f"synthetic person #{seed}"
        spec = self.identity.spec
        self.description = (
            f"ground-truth synthetic identity, {self.identity.num:,} splats "
            f"({spec.hair_style} hair, {spec.top.kind}{', ' + spec.bottom.kind if spec.bottom else ''})"
        )
        parents = tuple(int(p) for p in self.body.model.parents)
        self.controls = Controls(tuple(self.body.expression_names), tuple(self.body.bone_names), parents)
        self._posed: tuple[tuple, object] | None = None
        # The body model and the posing cache are not for two threads at once: the studio's preview worker drives
        # while its GUI thread may ask for the canonical splats (part counts, the face view).
        self._lock = threading.Lock()
        self._canonical: Gaussians | None = None

    def drive(self, frame: DriveFrame) -> Gaussians:
        with self._lock:
            return self._drive(frame)

    def _drive(self, frame: DriveFrame) -> Gaussians:
        from core.data.render import lit_gaussians, pose_identity

        # Only pose, expression, gaze and translation move geometry; lighting, view and part edits reuse the posing.
        key = tuple(t.numpy().tobytes() for t in (frame.pose, frame.expression, frame.gaze, frame.translation))
        if self._posed is None or self._posed[0] != key:
            rot, trans, expr, gaze = (t[None] for t in (frame.pose, frame.translation, frame.expression, frame.gaze))
            self._posed = (key, pose_identity(self.identity, self.body, rot, trans, expr, gaze))
        identity = self._grey if frame.shading_only else self.identity
        light = frame.lighting if frame.lit else uniform_lighting(1.0)
        return apply_part_edits(lit_gaussians(identity, self._posed[1], 0, light), frame.parts)

    def canonical(self) -> Gaussians:
        """The rest-pose splats under white light (computed once)."""
        if self._canonical is not None:
            return self._canonical
        c = self.controls
        rest = DriveFrame(
            pose=torch.zeros(len(c.joint_names), 3), expression=torch.zeros(len(c.expression_names)),
            gaze=torch.zeros(2), translation=torch.zeros(3), view="albedo",
        )  # fmt: skip
        self._canonical = self.drive(rest)
        return self._canonical

    def face_target(self) -> tuple[float, float, float]:
        return face_centre(self.canonical())


@functools.lru_cache(maxsize=4)
def synthetic_avatar(seed: int) -> SyntheticAvatar:
    return SyntheticAvatar(seed)
