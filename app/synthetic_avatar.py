"""Ground-truth synthetic people from `core.data` as drivable studio avatars (pose, expression, gaze, parts).

They stand in for the trained default avatar: every control of the studio acts on them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
import threading

import torch

from app.avatar_source import Rig
from app.part_edits import apply_part_edits
from app.state import EditState
from core.data.lighting import Lighting, uniform_lighting
from core.raster.types import PART_NAMES, Gaussians
from core.tracking.body_params import body_arrays

log = logging.getLogger(__name__)


def synthetic_available() -> bool:
    """Whether the body model and the synthetic world are installed (anny builds its cache once, ~1 min)."""
    return importlib.util.find_spec("anny") is not None and importlib.util.find_spec("core.data.render") is not None


class SyntheticAvatar:
    """One synthetic identity posed by the body model each frame."""

    def __init__(self, seed: int) -> None:
        from core.data.body_bridge import world_body
        from core.data.identity import build_identity
        from core.data.identity_spec import draw_identity_spec

        self.body = world_body()
        self.identity = build_identity(draw_identity_spec(seed), self.body)
        self._grey = dataclasses.replace(self.identity, albedo=torch.full_like(self.identity.albedo, 0.8))
        self.name = f"synthetic person #{seed}"
        spec = self.identity.spec
        self.description = (
            f"ground-truth synthetic identity, {self.identity.num:,} splats "
            f"({spec.hair_style} hair, {spec.top.kind}{', ' + spec.bottom.kind if spec.bottom else ''})"
        )
        names = tuple(self.body.bone_names)
        parents = tuple(int(p) for p in self.body.model.parents)
        self.rig = Rig(tuple(self.body.expression_names), names, parents)
        self._index = {n: i for i, n in enumerate(names)}
        self._expr_index = {n: i for i, n in enumerate(self.body.expression_names)}
        self._posed: tuple[object, object] | None = None
        # The body model and the posing cache are not for two threads at once: the studio's preview worker
        # drives while the GUI thread may ask for the canonical splats (part counts, the face view).
        self._lock = threading.Lock()
        self._canonical: Gaussians | None = None

    def _inputs(self, edit: EditState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        b = body_arrays(
            edit.pose.rotations, edit.expression, edit.gaze_deg, edit.pose.root_translation,
            self.rig.joint_names, self.rig.expression_names,
        )  # fmt: skip
        return tuple(torch.from_numpy(x)[None] for x in (b.pose, b.translation, b.expression, b.gaze))

    def drive(self, edit: EditState, lighting: Lighting) -> Gaussians:
        with self._lock:
            return self._drive(edit, lighting)

    def _drive(self, edit: EditState, lighting: Lighting) -> Gaussians:
        from core.data.render import lit_gaussians, pose_identity

        # Only pose, expression and gaze move geometry; lighting, view and part edits reuse the last posing.
        key = (edit.pose, edit.expression, edit.gaze_deg)
        if self._posed is None or self._posed[0] != key:
            rot, trans, expr, gaze = self._inputs(edit)
            self._posed = (key, pose_identity(self.identity, self.body, rot, trans, expr, gaze))
        posed = self._posed[1]
        identity, light = self.identity, lighting
        if edit.view_mode == "albedo":
            light = uniform_lighting(1.0)
        elif edit.view_mode == "shading":
            identity = self._grey
        return apply_part_edits(lit_gaussians(identity, posed, 0, light), edit.parts)

    def canonical(self) -> Gaussians:
        """The rest-pose splats under white light (computed once)."""
        if self._canonical is None:
            self._canonical = self.drive(EditState(view_mode="albedo"), uniform_lighting(1.0))
        return self._canonical

    def face_target(self) -> tuple[float, float, float]:
        g = self.canonical()
        face = g.means[g.parts == PART_NAMES.index("face")]
        c = face.mean(0) if face.shape[0] else g.means[g.means[:, 1] > g.means[:, 1].quantile(0.95)].mean(0)
        return (float(c[0]), float(c[1]), float(c[2]))


@functools.lru_cache(maxsize=4)
def synthetic_avatar(seed: int) -> SyntheticAvatar:
    return SyntheticAvatar(seed)
