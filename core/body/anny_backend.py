"""The "anny" body backend: the live anny model (its own forward), converted to the project frame.

It is the reference the baked backend is checked against; it needs the anny package and its cache.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.body.anny_source import R_PROJECT_ANNY, T_project_anny, anny_lift, load_anny, to_anny_rotations
from core.body.lbs import dense_weights
from core.body.parts import label_vertices
from core.body.records import BodyOutput


class AnnyBody(nn.Module):
    def __init__(self, dtype: torch.dtype = torch.float64, skinning_method: str = "lbs"):
        super().__init__()
        self.model = load_anny(skinning_method=skinning_method).to(dtype)
        m = self.model
        self.bone_names: list[str] = list(m.bone_labels)
        self.parents: list[int] = [int(p) for p in m.bone_parents]
        self.expression_names: list[str] = list(m.facial_action_labels)
        self.phenotype_names: list[str] = list(m.phenotype_labels)
        lift = anny_lift(m)
        self.register_buffer("T_project_anny", T_project_anny(lift, dtype), persistent=False)
        self.register_buffer("faces", m.faces.long(), persistent=False)
        self.register_buffer(
            "weights",
            dense_weights(m.vertex_bone_indices, m.vertex_bone_weights.to(dtype), len(self.parents)),
            persistent=False,
        )
        self.register_buffer(
            "default_shape", torch.full((len(self.phenotype_names),), 0.5, dtype=dtype), persistent=False
        )
        with torch.no_grad():
            out = m()
            rest_v = self._to_project(out["rest_vertices"][0])
            rest_poses = self.T_project_anny @ out["rest_bone_poses"][0]
        eyes = rest_poses[[self.bone_names.index("eye.L"), self.bone_names.index("eye.R")], :3, 3].mean(0)
        labels = label_vertices(rest_v.double(), self.weights.argmax(1), self.bone_names, eyes.double())
        self.register_buffer("part_labels", labels, persistent=False)

    def _to_project(self, x: Tensor) -> Tensor:
        T = self.T_project_anny
        return x @ T[:3, :3].T + T[:3, 3]

    def forward(self, shape: Tensor, rot_mats: Tensor, expression: Tensor, translation: Tensor) -> BodyOutput:
        B, J = rot_mats.shape[:2]
        pose = torch.eye(4, dtype=rot_mats.dtype, device=rot_mats.device).repeat(B, J, 1, 1)
        pose[..., :3, :3] = to_anny_rotations(rot_mats)
        # Root translation: project W_root = T_project_anny W_root(anny), so anny's d_root = R^T translation.
        pose[:, 0, :3, 3] = translation @ R_PROJECT_ANNY.to(translation)
        out = self.model(pose_parameters=pose, phenotype_kwargs=shape, facial_actions=expression)
        T = self.T_project_anny
        W = T @ out["bone_poses"]  # [B, J, 4, 4] project frame
        P = T @ out["rest_bone_poses"].expand(B, J, 4, 4)
        return BodyOutput(
            vertices=self._to_project(out["vertices"]),
            joints=W[..., :3, 3],
            T_world_bone=W @ torch.linalg.inv(P),
            rest_vertices=self._to_project(out["rest_vertices"]).expand(B, -1, -1),
            weights=self.weights,
            part_labels=self.part_labels,
        )
