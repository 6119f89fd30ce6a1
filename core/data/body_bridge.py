"""The body that the synthetic world stands on: anny (the project's default body model) seen in the
project's world frame (metres, y-up, feet at y = 0, facing +z), with body-region labels per vertex and
linear blend skinning of arbitrary points.

Rotations come in as axis-angle about world axes (see `core.data.motion`), applied per bone on top of
anny's reference pose (its 'local-ref' parameterisation); zero rotations give that reference pose.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)

# anny is z-up facing -y; the project is y-up facing +z: x stays, y <- z, z <- -y.
M_WORLD_ANNY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=torch.float64)

REGIONS: tuple[str, ...] = ("head", "face", "scalp", "torso", "arms", "hands", "legs", "feet")


def _region_of_bone(name: str) -> str:
    if name.startswith(("head", "neck", "eye")):
        return "head"
    if name.startswith(("wrist", "finger", "metacarpal")):
        return "hands"
    if name.startswith(("shoulder", "upperarm", "lowerarm")):
        return "arms"
    if name.startswith(("upperleg", "lowerleg")):
        return "legs"
    if name.startswith(("foot", "toe")):
        return "feet"
    return "torso"


def rotvec_to_matrix(v: Tensor) -> Tensor:
    """Axis-angle [..., 3] -> rotation matrices [..., 3, 3] (Rodrigues)."""
    theta = v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = v / theta
    kx, ky, kz = k.unbind(-1)
    z = torch.zeros_like(kx)
    Kx = torch.stack([z, -kz, ky, kz, z, -kx, -ky, kx, z], -1).reshape(*v.shape[:-1], 3, 3)
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand(Kx.shape)
    return eye + s * Kx + (1 - c) * (Kx @ Kx)


@dataclass(frozen=True)
class RestBody:
    """One identity's body at rest in the world frame (phenotype applied, no pose, no expression)."""

    vertices: Tensor  # [V, 3]
    normals: Tensor  # [V, 3]
    bone_poses: Tensor  # [J, 4, 4] rest bone-to-world transforms
    floor_offset: float  # metres added to y so that the feet touch y = 0


@dataclass(frozen=True)
class PosedBody:
    """A batch of frames: posed vertices and the per-bone skinning transforms that produced them."""

    vertices: Tensor  # [F, V, 3] posed, world frame
    rest_vertices: Tensor  # [F, V, 3] rest pose with the frame's expression applied
    skin: Tensor  # [F, J, 4, 4] rest-world -> posed-world transform of each bone
    bone_poses: Tensor  # [F, J, 4, 4] posed bone-to-world transforms


class WorldBody:
    """anny in the world frame. Build once per process with `world_body()` (about 0.5 s with anny's cache)."""

    def __init__(self) -> None:
        try:
            import anny  # noqa: PLC0415
        except ImportError as e:
            raise ImportError("the synthetic world needs the anny body model: pip install 'anny>=0.6,<0.7'") from e
        self.model = anny.Anny(rig="anny", topology="anny", facial_actions="all")
        self.bone_names: list[str] = list(self.model.bone_labels)
        self.expression_names: list[str] = list(self.model.facial_action_labels)
        self.phenotype_names: list[str] = list(self.model.phenotype_labels)
        self.faces = self.model.faces.clone()  # [T, 3] triangles
        self.vertex_bones = self.model.vertex_bone_indices.clone()  # [V, 9]
        self.vertex_weights = self.model.vertex_bone_weights.clone()  # [V, 9]
        V, J = self.vertex_bones.shape[0], len(self.bone_names)
        dense = torch.zeros(V, J, dtype=torch.float64)
        dense.scatter_add_(1, self.vertex_bones, self.vertex_weights)
        self.weights = dense / dense.sum(-1, keepdim=True).clamp_min(1e-12)  # [V, J]
        self.bone_index = {n: i for i, n in enumerate(self.bone_names)}
        rest = self.rest({})
        self.regions = self._label_regions(rest)  # [V] index into REGIONS

    @property
    def num_bones(self) -> int:
        return len(self.bone_names)

    def _phenotype(self, phenotype: dict[str, float], batch: int) -> dict[str, Tensor]:
        unknown = set(phenotype) - set(self.phenotype_names)
        if unknown:
            raise ValueError(f"unknown phenotype parameters {sorted(unknown)}; anny knows {self.phenotype_names}")
        return {k: torch.full((batch,), float(v), dtype=torch.float64) for k, v in phenotype.items()}

    def _to_world(self, p: Tensor) -> Tensor:
        return p @ M_WORLD_ANNY.T

    def _pose_to_world(self, T: Tensor, floor: float) -> Tensor:
        M4 = torch.eye(4, dtype=torch.float64)
        M4[:3, :3] = M_WORLD_ANNY
        M4[1, 3] = floor
        return M4 @ T

    def rest(self, phenotype: dict[str, float]) -> RestBody:
        J = self.num_bones
        P = torch.eye(4, dtype=torch.float64).expand(1, J, 4, 4).clone()
        out = self.model(pose_parameters=P, phenotype_kwargs=self._phenotype(phenotype, 1))
        v = self._to_world(out["rest_vertices"][0])
        # Zero rotations give anny's reference pose, not the bind pose: stand *that* on the floor.
        floor = float(-self._to_world(out["vertices"][0])[:, 1].min())
        v = v + torch.tensor([0.0, floor, 0.0], dtype=torch.float64)
        return RestBody(v, vertex_normals(v, self.faces), self._pose_to_world(out["rest_bone_poses"][0], floor), floor)

    def pose(
        self,
        phenotype: dict[str, float],
        rotations: Tensor,  # [F, J, 3] axis-angle about world rest axes
        translation: Tensor,  # [F, 3] world offset of the whole body
        expression: Tensor,  # [F, E] coefficients in [0, 1]
        rest: RestBody,
    ) -> PosedBody:
        F, J = rotations.shape[:2]
        Rw = rotvec_to_matrix(rotations.double())  # [F, J, 3, 3] world axes
        # anny's 'local-ref' deltas are rotations about world-aligned axes of its own (z-up) frame.
        local = M_WORLD_ANNY.T @ Rw @ M_WORLD_ANNY
        P = torch.eye(4, dtype=torch.float64).repeat(F, J, 1, 1)
        P[..., :3, :3] = local
        out = self.model(
            pose_parameters=P, phenotype_kwargs=self._phenotype(phenotype, F), facial_actions=expression.double()
        )
        shift = torch.tensor([0.0, rest.floor_offset, 0.0], dtype=torch.float64)
        t = translation.double()[:, None, :]
        verts = self._to_world(out["vertices"]) + shift + t
        rest_v = self._to_world(out["rest_vertices"]) + shift
        bones = self._pose_to_world(out["bone_poses"], rest.floor_offset)
        bones = bones.clone()
        bones[..., :3, 3] += t
        skin = bones @ torch.linalg.inv(rest.bone_poses)
        return PosedBody(verts, rest_v, skin, bones)

    def _label_regions(self, rest: RestBody) -> Tensor:
        dominant = self.weights.argmax(-1)
        region = torch.tensor([REGIONS.index(_region_of_bone(self.bone_names[int(b)])) for b in dominant])
        head = REGIONS.index("head")
        v = rest.vertices
        eyes = [self.bone_index[n] for n in ("eye.L", "eye.R") if n in self.bone_index]
        eye_pos = rest.bone_poses[eyes, :3, 3].mean(0)
        head_centre = rest.bone_poses[self.bone_index["head"], :3, 3]
        is_head = region == head
        # Face: the front of the head below the brow; scalp: above the brow and behind the face.
        front = (v[:, 2] > head_centre[2] + 0.02) & (v[:, 1] < eye_pos[1] + 0.045) & (v[:, 1] > eye_pos[1] - 0.13)
        scalp = (v[:, 1] > eye_pos[1] + 0.02) | ((v[:, 2] < head_centre[2] - 0.0) & (v[:, 1] > eye_pos[1] - 0.06))
        region[is_head & front] = REGIONS.index("face")
        region[is_head & ~front & scalp] = REGIONS.index("scalp")
        return region

    def head_info(self, rest: RestBody) -> dict[str, Tensor]:
        """Rest positions of the head centre and the eyes (world frame)."""
        b = rest.bone_poses[:, :3, 3]
        return {
            "head": b[self.bone_index["head"]],
            "eye_l": b[self.bone_index["eye.L"]],
            "eye_r": b[self.bone_index["eye.R"]],
        }


def vertex_normals(v: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted vertex normals [..., V, 3] of triangles `faces` [T, 3]."""
    a, b, c = v[..., faces[:, 0], :], v[..., faces[:, 1], :], v[..., faces[:, 2], :]
    n = torch.linalg.cross(b - a, c - a)
    out = torch.zeros_like(v)
    for k in range(3):
        out.index_add_(-2, faces[:, k], n)
    return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def skin_points(
    points: Tensor,  # [G, 3] rest-pose world points
    weights: Tensor,  # [G, J] skinning weights (rows sum to 1)
    skin: Tensor,  # [F, J, 4, 4] per-bone rest -> posed transforms
) -> tuple[Tensor, Tensor]:
    """Linear blend skinning: posed points [F, G, 3] and blended linear parts [F, G, 3, 3] (for frames/normals)."""
    A = torch.einsum("gj,fjab->fgab", weights, skin)  # [F, G, 4, 4]
    p = (A[..., :3, :3] @ points[None, :, :, None])[..., 0] + A[..., :3, 3]
    return p, A[..., :3, :3]


@functools.cache
def world_body() -> WorldBody:
    """The process-wide body (built once; workers of a pool build their own)."""
    log.debug("building the anny body model")
    return WorldBody()


def rest_vertex_skinning(body: WorldBody) -> np.ndarray:
    """Dense skinning weights [V, J] (float32) of the template vertices."""
    return body.weights.float().numpy()
