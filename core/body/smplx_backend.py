"""The "smplx" body backend: SMPL-X files the user owns (read by the smplx package), through our own LBS.

The files are not shipped (their licence forbids it): pass the folder (or the .npz/.pkl file) as `path` or
set LCA_SMPLX_DIR. SMPL-X is already y-up and facing +z; the mesh is lifted so its template's feet sit on y=0.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from core.body.lbs import batch_rigid_transform, lbs, rigid
from core.body.parts import label_vertices
from core.body.paths import SMPLX_DIR_ENV, smplx_dir
from core.body.records import BodyOutput

SMPLX_NUM_JOINTS = 55
SMPLX_EYE_BONES = (23, 24)  # left, right


def _resolve_model_file(path: str | os.PathLike | None, gender: str) -> Path:
    root = smplx_dir(path)
    expected = f"SMPLX_{gender.upper()}.npz (or .pkl)"
    if root is None:
        raise FileNotFoundError(
            f"The smplx body backend needs SMPL-X model files, which are not shipped. Download them from "
            f"https://smpl-x.is.tue.mpg.de, then pass the folder holding {expected} as `path` or set {SMPLX_DIR_ENV}."
        )
    candidates = [root] if root.is_file() else [root / f"SMPLX_{gender.upper()}.{ext}" for ext in ("npz", "pkl")]
    candidates += [] if root.is_file() else [root / "smplx" / c.name for c in candidates]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"No SMPL-X model file at {root}: expected {expected} there (or in {root / 'smplx'}); "
        f"looked for {[str(c) for c in candidates]}. Point `path` or {SMPLX_DIR_ENV} at the folder that holds it."
    )


class SmplxBody(nn.Module):
    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        gender: str = "neutral",
        num_betas: int = 10,
        num_expressions: int = 10,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        model_file = _resolve_model_file(path, gender)
        try:
            import smplx
            from smplx.joint_names import JOINT_NAMES
        except ImportError as e:
            raise ImportError("The smplx body backend needs the smplx package: `pip install smplx`.") from e
        m = smplx.SMPLX(
            str(model_file), ext=model_file.suffix[1:], num_betas=num_betas, num_expression_coeffs=num_expressions,
            use_pca=False, flat_hand_mean=True, dtype=torch.float64,
        )  # fmt: skip
        if m.J_regressor.shape[0] != SMPLX_NUM_JOINTS:
            raise ValueError(f"{model_file}: expected {SMPLX_NUM_JOINTS} SMPL-X joints, got {m.J_regressor.shape[0]}")
        self.bone_names: list[str] = list(JOINT_NAMES[:SMPLX_NUM_JOINTS])
        self.parents: list[int] = [int(p) for p in m.parents]
        self.parents[0] = -1
        self.expression_names: list[str] = [f"expression{i:03d}" for i in range(m.expr_dirs.shape[-1])]
        self.phenotype_names: list[str] = [f"beta{i:02d}" for i in range(m.shapedirs.shape[-1])]
        lift = -float(m.v_template[:, 1].min())
        template = m.v_template.clone()
        template[:, 1] += lift
        self.register_buffer("template_vertices", template.to(dtype), persistent=False)
        self.register_buffer("shapedirs", torch.cat([m.shapedirs, m.expr_dirs], -1).to(dtype), persistent=False)
        self.register_buffer("posedirs", m.posedirs.to(dtype), persistent=False)  # [(J-1)*9, V*3]
        self.register_buffer("J_regressor", m.J_regressor.to(dtype), persistent=False)
        self.register_buffer("weights", m.lbs_weights.to(dtype), persistent=False)
        self.register_buffer("faces", torch.as_tensor(m.faces.astype("int64")), persistent=False)
        self.register_buffer("default_shape", torch.zeros(len(self.phenotype_names), dtype=dtype), persistent=False)
        joints = m.J_regressor @ template
        eyes = joints[list(SMPLX_EYE_BONES)].mean(0)
        labels = label_vertices(template, m.lbs_weights.argmax(1), self.bone_names, eyes)
        self.register_buffer("part_labels", labels, persistent=False)

    def forward(self, shape: Tensor, rot_mats: Tensor, expression: Tensor, translation: Tensor) -> BodyOutput:
        B, J = rot_mats.shape[:2]
        coeffs = torch.cat([shape, expression], dim=-1)  # [B, S+E]
        shaped = self.template_vertices + torch.einsum("bk,vck->bvc", coeffs, self.shapedirs)
        joints = torch.einsum("jv,bvc->bjc", self.J_regressor, shaped)  # [B, J, 3]
        eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
        pose_feature = (rot_mats[:, 1:] - eye).reshape(B, -1)  # [B, (J-1)*9]
        rest_v = shaped + (pose_feature @ self.posedirs).reshape(B, -1, 3)  # pose correctives
        rest_poses = rigid(eye.expand(B, J, 3, 3), joints)
        T, W = batch_rigid_transform(rot_mats, rest_poses, self.parents, joints[:, 0] + translation)
        return BodyOutput(
            vertices=lbs(rest_v, self.weights, T),
            joints=W[..., :3, 3],
            T_world_bone=T,
            rest_vertices=shaped,
            weights=self.weights,
            part_labels=self.part_labels,
        )
