"""The body data the model needs (template surface, skinning, skeleton, expressions, shape) as one record.

`BodyRig` is what the model and every avatar carry: tensors, so an avatar file drives without any body
package. Posing goes through `core.body.lbs` (the kinematics `BodyModel` uses), so a pose, gaze and
translation move an avatar exactly as they move the body. `rig_from_body_asset` builds the rig from the
baked body, including its non-linear phenotype (identity shape).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import Tensor, nn

from core.body.lbs import RestChain, apply_gaze, axis_angle_to_matrix, pose_chain, rest_chain, rigid
from core.body.records import BodyParams
from core.raster.types import PART_NAMES


@dataclass(frozen=True)
class BodyRig:
    """Canonical body: template mesh, rest skeleton (metres, y-up, facing +z), skinning, expressions and shape.

    Pose convention (core.body's): each bone's rotation is about its head, in world-aligned axes, relative to its
    parent, starting from the reference pose that all-identity rotations give (bone frames `ref_orients`, root
    head at `root_position`). Bone 0 is the global orientation.
    """

    vertices: Tensor  # [V, 3] template rest vertices (default shape)
    faces: Tensor  # [F, 3] int64 triangle indices
    weights: Tensor  # [V, J] skinning weights, rows sum to 1
    rest_poses: Tensor  # [J, 4, 4] bone frames (axes, head) the template was bound to
    root_position: Tensor  # [3] where the root's head goes at zero translation
    parents: tuple[int, ...]  # J entries, -1 for the root; every parent index is below its child's
    expression_basis: Tensor  # [E, V, 3] vertex offsets per unit expression coefficient
    expression_names: tuple[str, ...] = ()  # E names (ARKit-style)
    ref_orients: Tensor | None = None  # [J, 3, 3] bone axes at the reference pose; None: the rest axes
    shape_basis: Tensor | None = None  # [S, V, 3] linear identity-shape directions (toy rigs)
    shape_joint_basis: Tensor | None = None  # [S, J, 3] the bone heads' share of each linear shape direction
    eye_joints: tuple[int, ...] = ()  # bones that gaze rotates (left and right eye)
    head_joint: int = -1  # bone at the head centre (face crops); -1 picks the last bone
    vertex_parts: Tensor | None = None  # [V] int64 initial part index into PART_NAMES (e.g. face vs skin)
    # The body's non-linear shape model (core.body.baked.BakedBody): phenotype [B, S] -> rest mesh and bones.
    # Not saved with avatars: an avatar's identity shape is already applied to its cached state.
    phenotype: nn.Module | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        V, J = self.vertices.shape[0], self.rest_poses.shape[0]
        checks = [
            ("vertices", self.vertices, (V, 3)),
            ("weights", self.weights, (V, J)),
            ("rest_poses", self.rest_poses, (J, 4, 4)),
            ("root_position", self.root_position, (3,)),
            ("expression_basis", self.expression_basis, (self.expression_basis.shape[0], V, 3)),
        ]
        if self.ref_orients is not None:
            checks.append(("ref_orients", self.ref_orients, (J, 3, 3)))
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
        if self.shape_basis is not None and self.phenotype is not None:
            raise ValueError("BodyRig: give a linear shape basis or a phenotype model, not both")
        if self.vertex_parts is not None and int(self.vertex_parts.max()) >= len(PART_NAMES):
            raise ValueError(f"BodyRig.vertex_parts: values must index PART_NAMES ({len(PART_NAMES)} parts)")

    @property
    def num_joints(self) -> int:
        return self.rest_poses.shape[0]

    @property
    def rest_joints(self) -> Tensor:
        """[J, 3] rest bone heads (default shape)."""
        return self.rest_poses[:, :3, 3]

    @property
    def num_expressions(self) -> int:
        return self.expression_basis.shape[0]

    @property
    def num_shape(self) -> int:
        """S, the length of an identity shape vector; 0 when this rig has no shape model."""
        if self.phenotype is not None:
            return int(self.phenotype.default_shape.shape[0])
        return 0 if self.shape_basis is None else self.shape_basis.shape[0]

    @property
    def default_shape(self) -> Tensor:
        """[S] the shape of the template (phenotype defaults, or zeros for a linear basis)."""
        if self.phenotype is not None:
            return self.phenotype.default_shape
        return self.vertices.new_zeros(self.num_shape)

    def rest(self, shape: Tensor | None, batch: int = 1) -> tuple[Tensor, Tensor]:
        """Rest vertices [B, V, 3] and bone frames [B, J, 4, 4] for identity shapes `shape` [B, S] (None: template).

        The phenotype path is the body's own (`BakedBody.rest`), non-linear and with re-fitted bone axes; run it
        once per identity, not per frame. Results live on the phenotype module's device (else the rig's).
        """
        V, J = self.vertices.shape[0], self.num_joints
        if shape is None or self.num_shape == 0:
            return self.vertices.expand(batch, V, 3), self.rest_poses.expand(batch, J, 4, 4)
        S = self.num_shape
        if shape.shape != (batch, S):
            raise ValueError(f"shape: expected [B={batch}, S={S}] identity shape values, got {tuple(shape.shape)}")
        if self.phenotype is not None:  # runs where the phenotype module lives (a model moves it with itself)
            s = shape.to(self.phenotype.default_shape)
            return self.phenotype.rest(s, s.new_zeros(batch, self.num_expressions))
        s = shape.to(self.vertices)
        verts = self.vertices + torch.einsum("bs,svc->bvc", s, self.shape_basis)
        heads = self.rest_joints + torch.einsum("bs,sjc->bjc", s, self.shape_joint_basis)
        return verts, rigid(self.rest_poses[:, :3, :3].expand(batch, J, 3, 3), heads)

    def chain(self, rest_poses: Tensor) -> RestChain:
        """Pose-independent kinematics of rest bones [B, J, 4, 4] (cache it per identity)."""
        ref = None if self.ref_orients is None else self.ref_orients.to(rest_poses)
        return rest_chain(rest_poses, self.parents, ref)

    def bone_rotations(
        self,
        rotations: Tensor,  # [B, J, 3] axis-angle or [B, J, 3, 3]
        gaze: Tensor | None = None,  # [B, 2] (yaw, pitch) radians, composed onto the eye bones as BodyModel does
    ) -> Tensor:
        """Per-bone rotation matrices [B, J, 3, 3] with the gaze applied."""
        B, J = rotations.shape[0], self.num_joints
        if rotations.shape == (B, J, 3):
            rotations = axis_angle_to_matrix(rotations)
        if rotations.shape != (B, J, 3, 3):
            raise ValueError(
                f"rotations: expected [B, {J}, 3] axis-angle or [B, {J}, 3, 3] matrices, got {tuple(rotations.shape)}"
            )
        if gaze is None or not self.eye_joints:
            return rotations
        if gaze.shape != (B, 2):
            raise ValueError(f"gaze: expected [B={B}, 2] (yaw, pitch), got {tuple(gaze.shape)}")
        return apply_gaze(rotations, gaze, list(self.eye_joints))

    def pose(
        self,
        rot_mats: Tensor,  # [B, J, 3, 3] from `bone_rotations`
        chain: RestChain,  # from `chain`, batch B or 1
        translation: Tensor | None = None,  # [B, 3]
    ) -> tuple[Tensor, Tensor]:
        """-> (T_world_bone [B, J, 4, 4] skinning transforms, W_world_bone [B, J, 4, 4] posed bone frames)."""
        root = self.root_position.to(rot_mats).expand(rot_mats.shape[0], 3)
        if translation is not None:
            root = root + translation.to(rot_mats)
        return pose_chain(rot_mats, chain, self.parents, root)

    def neutral_params(self, batch: int = 1) -> BodyParams:
        """core.body parameters of the template in its reference pose (default shape, no expression, gaze ahead)."""
        kw = dict(dtype=self.vertices.dtype, device=self.vertices.device)
        return BodyParams(
            shape=self.default_shape.to(**kw).expand(batch, -1).clone(),
            rotations=torch.zeros(batch, self.num_joints, 3, **kw),
            expression=torch.zeros(batch, self.num_expressions, **kw),
            gaze=torch.zeros(batch, 2, **kw),
            translation=torch.zeros(batch, 3, **kw),
        )

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
            rest_poses=tensors["rest_poses"],
            root_position=tensors["root_position"],
            parents=tuple(int(p) for p in meta["parents"]),
            expression_basis=tensors["expression_basis"],
            expression_names=tuple(meta.get("expression_names", ())),
            ref_orients=tensors.get("ref_orients"),
            shape_basis=tensors.get("shape_basis"),
            shape_joint_basis=tensors.get("shape_joint_basis"),
            eye_joints=tuple(int(j) for j in meta.get("eye_joints", ())),
            head_joint=int(meta.get("head_joint", -1)),
            vertex_parts=tensors.get("vertex_parts"),
        )


def toy_rig(*, rings: int = 12, segments: int = 10, num_expressions: int = 4, dtype=torch.float32) -> BodyRig:
    """A small procedural standing figure (a capsule 1.7 m tall with a 6-joint spine, head and two eyes).

    It has the same structure as the real body (skinning, expressions, shape, eyes) at a few hundred
    vertices, for tests and for running the model where no body asset is installed. Its bones have
    world-aligned axes and its reference pose is the rest pose; shape is a linear basis.
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
        rest_poses=rigid(torch.eye(3, dtype=dtype).expand(len(joints), 3, 3), joints.to(dtype)),
        root_position=joints[0].to(dtype),
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
    """BodyRig of `core.body`'s baked body: the same template, skinning, skeleton, expressions and phenotype
    tensors as `BodyModel(backend="baked")`, so the model poses and shapes exactly like the body.

    asset: a `core.body.asset.BodyAsset`, a path to one, or None for the default asset.
    """
    from core.body.baked import BakedBody
    from core.body.model import eye_bone_indices

    body = BakedBody(asset, dtype=torch.float32)
    bones = list(body.bone_names)
    head = next((i for i, n in enumerate(bones) if n.lower() == "head"), -1)
    E = len(body.expression_names)
    V = body.template_vertices.shape[0]
    expression = body.vertex_basis[-E:].reshape(E, V, 3) if E else body.template_vertices.new_zeros(0, V, 3)
    return BodyRig(
        vertices=body.template_vertices,
        faces=body.faces,
        weights=body.weights,
        rest_poses=body.rest_poses,
        root_position=body.root_position,
        parents=tuple(body.parents),
        expression_basis=expression,
        expression_names=tuple(body.expression_names),
        ref_orients=body.ref_orients,
        eye_joints=eye_bone_indices(bones),
        head_joint=head,
        phenotype=body,
    )
