"""The baked body against the live anny model (needs anny and its cache; CI builds the cache once)."""

import pytest
import torch

pytest.importorskip("anny")
pytestmark = pytest.mark.anny

from core.body.lbs import lbs  # noqa: E402
from core.body.model import BodyModel  # noqa: E402


@pytest.fixture(scope="module")
def anny_body():
    return BodyModel("anny")


@pytest.fixture(scope="module")
def baked64():
    return BodyModel("baked", dtype=torch.float64)


def _random_params(body, B, seed, shape=None):
    g = torch.Generator().manual_seed(seed)
    p = body.neutral_params(B)
    return p.with_(
        rotations=torch.randn(B, body.num_bones, 3, generator=g, dtype=p.shape.dtype) * 0.4,
        expression=torch.rand(B, len(body.expression_names), generator=g, dtype=p.shape.dtype),
        gaze=(torch.rand(B, 2, generator=g, dtype=p.shape.dtype) - 0.5) * 0.6,
        translation=torch.randn(B, 3, generator=g, dtype=p.shape.dtype) * 0.3,
        shape=p.shape if shape is None else shape.to(p.shape.dtype),
    )


def test_lbs_matches_anny_forward_on_random_poses_and_expressions(anny_body, baked64):
    p = _random_params(baked64, 4, seed=1)
    want = anny_body(p)
    got = baked64(p)
    torch.testing.assert_close(got.vertices, want.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.joints, want.joints, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.T_world_bone, want.T_world_bone, atol=1e-5, rtol=0)
    got32 = BodyModel("baked")(p.to(torch.float32))
    torch.testing.assert_close(got32.vertices.double(), want.vertices, atol=1e-5, rtol=0)
    assert torch.equal(got.part_labels, want.part_labels)


def test_skinning_matches_anny_for_other_phenotypes_and_shape_basis_stays_within_its_error(anny_body, baked64):
    shape = torch.tensor([[0.0, 0.8, 0.2, 0.9, 0.3, 0.6], [1.0, 0.4, 0.9, 0.1, 1.0, 0.0]], dtype=torch.float64)
    p = _random_params(baked64, 2, seed=2, shape=shape)
    want = anny_body(p)
    got = baked64(p)
    # Bones are exact for every phenotype, and our LBS of anny's own rest mesh reproduces anny's posed mesh.
    torch.testing.assert_close(got.joints, want.joints, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.T_world_bone, want.T_world_bone, atol=1e-5, rtol=0)
    torch.testing.assert_close(lbs(want.rest_vertices, got.weights, got.T_world_bone), want.vertices, atol=1e-5, rtol=0)
    # Vertices carry the truncated phenotype basis' error, measured at bake time on held-out phenotypes.
    bound = baked64.impl.asset_metadata["phenotype_pca"]["max_vertex_error_m"]
    err = (got.rest_vertices - want.rest_vertices).norm(dim=-1)
    assert float(err.max()) < 1.5 * bound
    assert float(err.mean()) < 2e-3


def test_asset_matches_a_fresh_bake(anny_body):
    from core.body.asset import load_body_asset
    from core.body.bake import bake_body_asset

    shipped = load_body_asset()
    fresh = bake_body_asset(anny_body.impl.model, rank=shipped.pheno_basis.shape[0])
    assert fresh.metadata["bone_names"] == shipped.metadata["bone_names"]
    assert fresh.metadata["expression_names"] == shipped.metadata["expression_names"]
    assert fresh.metadata["phenotype"] == shipped.metadata["phenotype"]
    for name in ("template_vertices", "rest_poses", "ref_orients", "skin_weights", "expression_offsets"):
        torch.testing.assert_close(getattr(fresh, name).float(), getattr(shipped, name).float(), atol=1e-6, rtol=0)
    for name in ("faces", "face_uvs", "skin_indices", "expression_vertex_ids", "part_labels"):
        assert torch.equal(getattr(fresh, name), getattr(shipped, name)), name
    # Anny's compact phenotype coefficients may come out in another order (or sign) from another cache build,
    # and the PCA basis is defined up to sign, so the phenotype tables are compared by what they produce: the
    # shaped rest bones and vertices.
    from core.body.baked import BakedBody

    shape = torch.rand(4, len(shipped.phenotype_names), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expr = torch.zeros(4, len(shipped.expression_names), dtype=torch.float64)
    v_f, T_f = BakedBody(fresh, dtype=torch.float64).rest(shape, expr)
    v_s, T_s = BakedBody(shipped, dtype=torch.float64).rest(shape, expr)
    torch.testing.assert_close(T_f, T_s, atol=1e-5, rtol=0)
    torch.testing.assert_close(v_f, v_s, atol=2e-3, rtol=0)
