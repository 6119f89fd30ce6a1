"""Records passed in and out of the body model: `BodyParams` and `BodyOutput`."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class BodyParams:
    """What drives a body. Rotations are per bone, in world-aligned axes at the bone's reference pose
    (the pose all-identity rotations give), applied about the bone's head, relative to its parent."""

    shape: Tensor  # [B, S] anny phenotype in [0, 1] (gender, age, muscle, weight, height, proportions) or betas
    rotations: Tensor  # [B, J, 3] axis-angle or [B, J, 3, 3] matrices; bone 0 is the root (global orientation)
    expression: Tensor  # [B, E] expression coefficients (anny: ARKit blendshape weights in [0, 1])
    gaze: Tensor  # [B, 2] (yaw, pitch) radians added to both eyes: yaw>0 looks to the body's left, pitch>0 up
    translation: Tensor  # [B, 3] metres, added to the root

    @property
    def batch(self) -> int:
        return self.shape.shape[0]

    def to(self, *args, **kwargs) -> BodyParams:
        return BodyParams(**{k: getattr(self, k).to(*args, **kwargs) for k in self.__dataclass_fields__})

    def with_(self, **changes: Tensor) -> BodyParams:
        return replace(self, **changes)


@dataclass(frozen=True)
class BodyOutput:
    """A posed body in the project frame (metres, y up, facing +z)."""

    vertices: Tensor  # [B, V, 3] posed vertices
    joints: Tensor  # [B, J, 3] posed bone heads
    T_world_bone: Tensor  # [B, J, 4, 4] skinning transforms: rest-mesh point -> posed world point, per bone
    rest_vertices: Tensor  # [B, V, 3] shaped and expressive vertices before posing
    weights: Tensor  # [V, J] skinning weights
    part_labels: Tensor  # [V] int64 index into BODY_PART_NAMES


def check_shape(name: str, t: Tensor, want: tuple[int | None, ...]) -> None:
    """Raise a ValueError that shows the expected and received shapes."""
    ok = t.dim() == len(want) and all(w is None or w == s for w, s in zip(want, t.shape, strict=False))
    if not ok:
        pretty = tuple("*" if w is None else w for w in want)
        raise ValueError(f"{name}: expected shape {pretty}, got {tuple(t.shape)}")


def as_tensor_like(x: Tensor, ref: Tensor) -> Tensor:
    return torch.as_tensor(x, dtype=ref.dtype, device=ref.device)
