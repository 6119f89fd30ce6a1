"""The body data the model needs (template surface, skinning, kinematic tree, expressions) as one record.

`BodyRig` is what the model and every avatar carry: tensors only, so an avatar file drives without the
body-model package. `rig_from_body_model` builds it from `core.body`'s baked body model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from core.raster.types import PART_NAMES


@dataclass(frozen=True)
class BodyRig:
    """Canonical body: template mesh in the rest pose (metres, y-up, facing +z), skinning and expressions."""

    vertices: Tensor  # [V, 3] template rest-pose vertices (neutral shape)
    faces: Tensor  # [F, 3] int64 triangle indices
    weights: Tensor  # [V, J] skinning weights, rows sum to 1
    rest_joints: Tensor  # [J, 3] rest-pose joint positions
    parents: tuple[int, ...]  # J entries, -1 for the root; every parent index is below its child's
    expression_basis: Tensor  # [E, V, 3] vertex offsets per unit expression coefficient
    expression_names: tuple[str, ...] = ()  # E names (ARKit-style)
    shape_basis: Tensor | None = None  # [S, V, 3] linear identity-shape directions (None: shape is ignored)
    shape_joint_basis: Tensor | None = None  # [S, J, 3] the joints' share of each shape direction
    eye_joints: tuple[int, ...] = ()  # joints that gaze rotates (usually left and right eye)
    head_joint: int = -1  # joint at the head centre (face crops); -1 picks the last joint
    vertex_parts: Tensor | None = None  # [V] int64 initial part index into PART_NAMES (e.g. face vs skin)

    def __post_init__(self) -> None:
        V, J = self.vertices.shape[0], self.rest_joints.shape[0]
        checks = [
            ("vertices", self.vertices, (V, 3)),
            ("weights", self.weights, (V, J)),
            ("rest_joints", self.rest_joints, (J, 3)),
            ("expression_basis", self.expression_basis, (self.expression_basis.shape[0], V, 3)),
        ]
        if self.faces.dim() != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"BodyRig.faces: expected shape [F, 3], got {tuple(self.faces.shape)}")
        for name, t, want in checks:
            if tuple(t.shape) != want:
                raise ValueError(f"BodyRig.{name}: expected shape {list(want)}, got {tuple(t.shape)}")
        if len(self.parents) != J:
            raise ValueError(f"BodyRig.parents: expected {J} entries (one per joint), got {len(self.parents)}")
        if self.expression_names and len(self.expression_names) != self.num_expressions:
            raise ValueError(
                f"BodyRig.expression_names: {len(self.expression_names)} names for {self.num_expressions} expressions"
            )
        if (self.shape_basis is None) != (self.shape_joint_basis is None):
            raise ValueError("BodyRig: give both shape_basis and shape_joint_basis, or neither")
        if self.vertex_parts is not None and int(self.vertex_parts.max()) >= len(PART_NAMES):
            raise ValueError(f"BodyRig.vertex_parts: values must index PART_NAMES ({len(PART_NAMES)} parts)")

    @property
    def num_joints(self) -> int:
        return self.rest_joints.shape[0]

    @property
    def num_expressions(self) -> int:
        return self.expression_basis.shape[0]

    @property
    def num_shape(self) -> int:
        return 0 if self.shape_basis is None else self.shape_basis.shape[0]

    def shaped(self, shape: Tensor | None) -> tuple[Tensor, Tensor]:
        """Rest vertices [V, 3] and joints [J, 3] for identity `shape` [S] (template when None or no basis)."""
        if shape is None or self.shape_basis is None:
            return self.vertices, self.rest_joints
        if shape.shape != (self.num_shape,):
            raise ValueError(f"shape: expected [{self.num_shape}] coefficients, got {tuple(shape.shape)}")
        s = shape.to(self.vertices)
        verts = self.vertices + torch.einsum("s,svc->vc", s, self.shape_basis)
        joints = self.rest_joints + torch.einsum("s,sjc->jc", s, self.shape_joint_basis)
        return verts, joints

    def to(self, *args, **kwargs) -> BodyRig:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Tensor):
                out[f.name] = v.to(*args, **kwargs) if v.is_floating_point() else v.to(kwargs.get("device", v.device))
            else:
                out[f.name] = v
        return BodyRig(**out)

    def tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), Tensor)}

    def metadata(self) -> dict:
        return {
            "parents": list(self.parents),
            "expression_names": list(self.expression_names),
            "eye_joints": list(self.eye_joints),
            "head_joint": self.head_joint,
        }

    @classmethod
    def from_parts(cls, tensors: dict[str, Tensor], meta: dict) -> BodyRig:
        return cls(
            vertices=tensors["vertices"],
            faces=tensors["faces"],
            weights=tensors["weights"],
            rest_joints=tensors["rest_joints"],
            parents=tuple(int(p) for p in meta["parents"]),
            expression_basis=tensors["expression_basis"],
            expression_names=tuple(meta.get("expression_names", ())),
            shape_basis=tensors.get("shape_basis"),
            shape_joint_basis=tensors.get("shape_joint_basis"),
            eye_joints=tuple(int(j) for j in meta.get("eye_joints", ())),
            head_joint=int(meta.get("head_joint", -1)),
            vertex_parts=tensors.get("vertex_parts"),
        )


def toy_rig(*, rings: int = 12, segments: int = 10, num_expressions: int = 4, dtype=torch.float32) -> BodyRig:
    """A small procedural standing figure (a capsule 1.7 m tall with a 6-joint spine, head and two eyes).

    It has the same structure as the real body (skinning, expressions, shape, eyes) at a few hundred
    vertices, for tests and for running the model where no body asset is installed.
    """
    ys = torch.linspace(0.05, 1.7, rings, dtype=torch.float64)
    radius = 0.12 + 0.06 * torch.sin(torch.linspace(0.3, 2.8, rings, dtype=torch.float64))
    ang = torch.linspace(0, 2 * torch.pi, segments + 1, dtype=torch.float64)[:-1]
    verts = torch.stack(
        [
            (radius[:, None] * torch.sin(ang)[None]).flatten(),
            ys[:, None].expand(rings, segments).flatten(),
            (radius[:, None] * torch.cos(ang)[None]).flatten(),
        ],
        -1,
    )
    tris = []
    for r in range(rings - 1):
        for s in range(segments):
            a, b = r * segments + s, r * segments + (s + 1) % segments
            c, d = a + segments, b + segments
            tris += [(a, b, c), (b, d, c)]
    faces = torch.tensor(tris, dtype=torch.int64)
    # Joints: root(pelvis) -> spine -> chest -> neck -> head -> (eye_l, eye_r)
    joints = torch.tensor(
        [[0, 0.9, 0], [0, 1.1, 0], [0, 1.3, 0], [0, 1.45, 0], [0, 1.58, 0], [0.03, 1.62, 0.1], [-0.03, 1.62, 0.1]],
        dtype=torch.float64,
    )
    parents = (-1, 0, 1, 2, 3, 4, 4)
    body_j = joints[:5, 1]
    d = (verts[:, 1:2] - body_j[None]).abs()  # [V, 5]
    w = torch.softmax(-d / 0.08, dim=-1)
    weights = torch.cat([w, torch.zeros(len(verts), 2, dtype=torch.float64)], -1)
    g = torch.Generator().manual_seed(0)
    face_mask = (verts[:, 1] > 1.5) & (verts[:, 2] > 0)
    expr = torch.randn(num_expressions, len(verts), 3, generator=g, dtype=torch.float64) * 0.01
    expr = expr * face_mask[None, :, None]
    shape_basis = torch.stack([verts * torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64) * 0.1, verts * 0.05])
    shape_joint_basis = torch.stack([joints * torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64) * 0.1, joints * 0.05])
    parts = torch.where(face_mask, PART_NAMES.index("face"), PART_NAMES.index("skin")).to(torch.int64)
    return BodyRig(
        vertices=verts.to(dtype),
        faces=faces,
        weights=weights.to(dtype),
        rest_joints=joints.to(dtype),
        parents=parents,
        expression_basis=expr.to(dtype),
        expression_names=tuple(f"expr{i}" for i in range(num_expressions)),
        shape_basis=shape_basis.to(dtype),
        shape_joint_basis=shape_joint_basis.to(dtype),
        eye_joints=(5, 6),
        head_joint=4,
        vertex_parts=parts,
    )


def rig_from_body_asset(asset=None) -> BodyRig:
    """BodyRig from `core.body`'s baked asset (template, dense skinning, joints, parents, expressions).

    Pose convention here: each bone rotates about its head in world-aligned rest axes.
    """
    from core.body.asset import load_body_asset

    a = asset if asset is not None else load_body_asset()
    V, J = a.num_vertices, a.rest_poses.shape[0]
    weights = torch.zeros(V, J).scatter_add_(1, a.skin_indices, a.skin_weights.float())
    E = a.expression_offsets.shape[0]
    expr = torch.zeros(E, V, 3)
    expr[:, a.expression_vertex_ids] = a.expression_offsets.float()
    names = a.expression_names
    bones = a.bone_names
    eyes = tuple(i for i, n in enumerate(bones) if "eye" in n.lower())[:2]
    head = next((i for i, n in enumerate(bones) if n.lower() == "head"), -1)
    return BodyRig(
        vertices=a.template_vertices.float(),
        faces=a.faces,
        weights=weights,
        rest_joints=a.rest_joints.float(),
        parents=tuple(a.parents),
        expression_basis=expr,
        expression_names=tuple(names),
        eye_joints=eyes,
        head_joint=head,
    )
