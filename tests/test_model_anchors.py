"""Anchor sampling: the fast farthest-point sampler equals the plain loop; sampled anchors are cached on disk."""

import pytest
import torch

from core.model import anchor_cache
from core.model.rig import toy_rig
from core.model.tokens import farthest_point_sampling, farthest_point_sampling_reference, sample_anchors


def test_fast_farthest_point_sampling_matches_the_reference_loop():
    g = torch.Generator().manual_seed(3)
    pts = torch.randn(3000, 3, generator=g, dtype=torch.float64) * torch.tensor([0.3, 0.9, 0.2], dtype=torch.float64)
    for start in (0, 17):
        fast = farthest_point_sampling(pts, 400, start=start)
        torch.testing.assert_close(fast, farthest_point_sampling_reference(pts, 400, start=start), rtol=0, atol=0)


def test_fast_farthest_point_sampling_breaks_ties_like_the_reference():
    # a regular grid (with a duplicated point): many exactly equal distances, so the first-index rule decides
    ax = torch.arange(6, dtype=torch.float64)
    grid = torch.cartesian_prod(ax, ax, ax)
    pts = torch.cat([grid, grid[:1]])
    for cells in (1, 2, 4, 7):
        fast = farthest_point_sampling(pts, 150, start=5, cells_per_axis=cells)
        assert torch.equal(fast, farthest_point_sampling_reference(pts, 150, start=5)), cells


def test_farthest_point_sampling_edge_cases():
    pts = torch.rand(5, 3, dtype=torch.float64)
    assert farthest_point_sampling(pts, 0).numel() == 0
    assert torch.equal(farthest_point_sampling(pts, 5), farthest_point_sampling_reference(pts, 5))
    assert torch.equal(farthest_point_sampling(pts[:1], 1), torch.tensor([0]))
    try:
        farthest_point_sampling(pts, 6)
    except ValueError as e:
        assert "6 of 5" in str(e)
    else:
        raise AssertionError("asking for more points than given must raise")


def test_cached_anchors_equal_sampled_ones_and_skip_sampling_next_time(tmp_path, monkeypatch):
    monkeypatch.setenv("LCA_CACHE_DIR", str(tmp_path))
    rig = toy_rig()
    first = anchor_cache.cached_anchors(rig, 64, seed=1)
    want = sample_anchors(rig, 64, seed=1)
    assert len(list((tmp_path / "anchors").glob("*.safetensors"))) == 1

    def no_sampling(*a, **k):
        raise AssertionError("sampled again although the anchors were cached")

    monkeypatch.setattr(anchor_cache, "sample_anchors", no_sampling)
    again = anchor_cache.cached_anchors(rig, 64, seed=1)
    for a in (first, again):
        for name in ("face_idx", "bary", "positions", "normals", "weights", "expression_basis", "parts"):
            assert torch.equal(getattr(a, name), getattr(want, name)), name
        assert a.spacing == want.spacing
    # another seed or count is another entry, never the stale one
    assert anchor_cache.anchors_key(rig, 64, 2) != anchor_cache.anchors_key(rig, 64, 1)
    assert anchor_cache.anchors_key(rig, 65, 1) != anchor_cache.anchors_key(rig, 64, 1)


def test_a_corrupt_anchor_cache_is_resampled(tmp_path, monkeypatch):
    monkeypatch.setenv("LCA_CACHE_DIR", str(tmp_path))
    rig = toy_rig()
    key = anchor_cache.anchors_key(rig, 32, 0)
    (tmp_path / "anchors").mkdir()
    (tmp_path / "anchors" / f"{key}.safetensors").write_bytes(b"not a safetensors file")
    got = anchor_cache.cached_anchors(rig, 32, 0)
    assert torch.equal(got.positions, sample_anchors(rig, 32, 0).positions)


@pytest.mark.slow
def test_body_anchors_identical_to_the_reference_sampler(monkeypatch):
    """The shipped model's anchors (8,192 on the baked body) do not move with the fast sampler (about a minute)."""
    from core.model import tokens
    from core.model.rig import rig_from_body_asset

    rig = rig_from_body_asset()
    fast = sample_anchors(rig, 8192, 0)
    monkeypatch.setattr(tokens, "farthest_point_sampling", tokens.farthest_point_sampling_reference)
    ref = tokens.sample_anchors(rig, 8192, 0)
    for name in ("face_idx", "bary", "positions", "normals", "weights", "expression_basis", "parts"):
        assert torch.equal(getattr(fast, name), getattr(ref, name)), name


def test_head_share_puts_that_share_of_the_anchors_on_the_head(tmp_path, monkeypatch):
    from core.model.tokens import head_faces

    rig = toy_rig()
    on_head = head_faces(rig)
    assert on_head.any() and not on_head.all()
    even = sample_anchors(rig, 200, seed=0)
    dense = sample_anchors(rig, 200, seed=0, head_share=0.4)
    share_even = float(on_head[even.face_idx].double().mean())
    share_dense = float(on_head[dense.face_idx].double().mean())
    assert share_dense == pytest.approx(0.4, abs=1e-9)  # exactly round(200 * 0.4) anchors on head triangles
    assert share_even < 0.3, share_even
    # the anchors are points of their triangles, with skinning weights that sum to one
    p = (rig.vertices.double()[rig.faces[dense.face_idx]] * dense.bary.double()[:, :, None]).sum(1)
    torch.testing.assert_close(dense.positions.double(), p, rtol=0, atol=1e-6)
    torch.testing.assert_close(dense.weights.sum(-1), torch.ones(200, dtype=dense.weights.dtype))
    # a different share is a different cache entry; the same one is read back identical
    monkeypatch.setenv("LCA_CACHE_DIR", str(tmp_path))
    a = anchor_cache.cached_anchors(rig, 200, 0, head_share=0.4)
    assert torch.equal(a.face_idx, dense.face_idx)
    assert anchor_cache.anchors_key(rig, 200, 0, 0.4) != anchor_cache.anchors_key(rig, 200, 0)
    assert torch.equal(anchor_cache.cached_anchors(rig, 200, 0, head_share=0.4).face_idx, dense.face_idx)
    with pytest.raises(ValueError, match="head_share"):
        sample_anchors(rig, 200, head_share=1.0)


def test_head_share_is_a_checked_model_setting():
    from core.config import ConfigError
    from core.model.config import load_model_config
    from core.model.model import LCAModel

    cfg = load_model_config("tiny", {"tokens": {"head_share": 0.3}})
    assert cfg.tokens.head_share == 0.3
    model = LCAModel(cfg, toy_rig())
    from core.model.tokens import head_faces

    assert float(head_faces(toy_rig())[model.anchors.face_idx].double().mean()) == pytest.approx(0.3, abs=0.02)
    with pytest.raises(ConfigError, match="head_share"):
        load_model_config("tiny", {"tokens": {"head_share": 1.5}})
