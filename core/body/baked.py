"""The "baked" body backend: anny from assets/body/anny_body.safetensors through our own torch LBS."""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from core.body.asset import BodyAsset, load_body_asset
from core.body.lbs import batch_rigid_transform, dense_weights, lbs, polar_rotation, rigid
from core.body.phenotype import column_table, phenotype_target_weights_fast
from core.body.records import BodyOutput


class BakedBody(nn.Module):
    """Anny without anny: phenotype (PCA vertex basis, exact joints), exact expressions, exact skinning."""

    def __init__(self, asset: BodyAsset | str | os.PathLike | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        a = asset if isinstance(asset, BodyAsset) else load_body_asset(asset)
        self.asset_metadata = a.metadata
        self.bone_names: list[str] = a.bone_names
        self.parents: list[int] = a.parents
        self.expression_names: list[str] = a.expression_names
        self.phenotype_names: list[str] = a.phenotype_names
        self._pheno_spec = a.metadata["phenotype"]
        f = dtype
        self.register_buffer("template_vertices", a.template_vertices.to(f), persistent=False)
        self.register_buffer("faces", a.faces, persistent=False)
        self.register_buffer("uvs", a.uvs.to(f), persistent=False)
        self.register_buffer("face_uvs", a.face_uvs, persistent=False)
        self.register_buffer(
            "weights", dense_weights(a.skin_indices, a.skin_weights.to(f), len(a.parents)), persistent=False
        )
        self.register_buffer("rest_poses", a.rest_poses.to(f), persistent=False)
        self.register_buffer("ref_orients", a.ref_orients.to(f), persistent=False)
        self.register_buffer("root_position", a.root_position.to(f), persistent=False)
        # Phenotype PCA basis and expression blendshapes as one dense [R + E, V * 3] matrix: one matmul per batch.
        basis = torch.cat([a.pheno_basis.to(f).flatten(1), a.expression_blendshapes().to(f).flatten(1)])
        self.register_buffer("vertex_basis", basis, persistent=False)
        self.register_buffer("pheno_mask", a.pheno_mask.to(f), persistent=False)
        self.register_buffer("pheno_projection", a.pheno_projection.to(f), persistent=False)
        self.register_buffer("pheno_default_coeffs", a.pheno_default_coeffs.to(f), persistent=False)
        self.register_buffer("pheno_heads", a.pheno_heads.to(f), persistent=False)
        self.register_buffer("pheno_orient_default", a.pheno_orient_default.to(f), persistent=False)
        self.register_buffer("pheno_orient", a.pheno_orient.to(f), persistent=False)
        self.register_buffer("pheno_coeff_map", a.pheno_coeff_map.to(f), persistent=False)
        self.register_buffer("part_labels", a.part_labels, persistent=False)
        for key, value in column_table(self._pheno_spec, f).items():
            self.register_buffer(f"pheno_table_{key}", value, persistent=False)
        self.register_buffer(
            "default_shape",
            torch.full((len(self.phenotype_names),), float(self._pheno_spec["default"]), dtype=f),
            persistent=False,
        )

    def shape_coefficients(self, shape: Tensor) -> Tensor:
        """Phenotype [B, P] -> offsets of anny's compact coefficients from the default phenotype [B, S]."""
        table = {k[len("pheno_table_") :]: v for k, v in self.named_buffers() if k.startswith("pheno_table_")}
        w = phenotype_target_weights_fast(shape, table, self.pheno_mask)  # [B, K]
        return w @ self.pheno_projection - self.pheno_default_coeffs

    def rest(self, shape: Tensor, expression: Tensor) -> tuple[Tensor, Tensor]:
        """-> (rest vertices [B, V, 3], rest bone frames [B, J, 4, 4]) for a phenotype and expression."""
        B = shape.shape[0]
        dc = self.shape_coefficients(shape)  # [B, S]
        V = self.template_vertices.shape[0]
        coeffs = torch.cat([dc @ self.pheno_coeff_map, expression], dim=-1)  # [B, R + E]
        verts = self.template_vertices + (coeffs @ self.vertex_basis).reshape(B, V, 3)
        heads = self.rest_poses[:, :3, 3] + torch.einsum("bs,sjc->bjc", dc, self.pheno_heads)  # [B, J, 3]
        M = self.pheno_orient_default + torch.einsum("bs,sjxy->bjxy", dc, self.pheno_orient)  # [B, J, 3, 3]
        bones = rigid(polar_rotation(M), heads)  # [B, J, 4, 4] (no SVD: nothing here waits for the device)
        if shape.requires_grad:
            return verts, bones
        # The default phenotype's bones are stored exactly: taken for the identities that have it, chosen on the
        # device (a host-side test would wait for the device every step).
        default = (shape == self.default_shape).all(-1)[:, None, None, None]  # [B, 1, 1, 1]
        return verts, torch.where(default, self.rest_poses, bones)

    def forward(self, shape: Tensor, rot_mats: Tensor, expression: Tensor, translation: Tensor) -> BodyOutput:
        rest_v, rest_poses = self.rest(shape, expression)
        T, W = batch_rigid_transform(
            rot_mats, rest_poses, self.parents, self.root_position + translation, self.ref_orients
        )
        return BodyOutput(
            vertices=lbs(rest_v, self.weights, T),
            joints=W[..., :3, 3],
            T_world_bone=T,
            rest_vertices=rest_v,
            weights=self.weights,
            part_labels=self.part_labels,
        )
