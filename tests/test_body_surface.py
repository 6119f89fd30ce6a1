"""Anchor sampling on the template surface: deterministic, on the mesh, uniform by area, weights inherited."""

import torch

from core.body.asset import load_body_asset
from core.body.parts import BODY_PART_NAMES
from core.body.surface import sample_surface, triangle_areas


def test_sample_surface_is_deterministic_and_points_lie_on_their_triangles():
    asset = load_body_asset()
    f1, b1, p1, w1 = sample_surface(asset, 2000, seed=3)
    f2, b2, p2, w2 = sample_surface(asset, 2000, seed=3)
    assert torch.equal(f1, f2) and torch.equal(p1, p2)
    assert not torch.equal(sample_surface(asset, 2000, seed=4)[2], p1)
    assert float(b1.min()) >= 0.0
    torch.testing.assert_close(b1.sum(1), torch.ones(2000))
    corners = asset.template_vertices[asset.faces[f1]]  # [n, 3, 3]
    torch.testing.assert_close(p1, (b1[..., None] * corners).sum(1))
    torch.testing.assert_close(w1.sum(1), torch.ones(2000), atol=1e-5, rtol=0)
    assert w1.shape == (2000, len(asset.parents))


def test_sample_surface_is_uniform_by_area_across_parts():
    asset = load_body_asset()
    n = 20000
    faces, _, _, _ = sample_surface(asset, n, seed=0)
    areas = triangle_areas(asset.template_vertices, asset.faces)
    face_part = asset.part_labels[asset.faces[:, 0]]
    for k, name in enumerate(BODY_PART_NAMES):
        expected = float(areas[face_part == k].sum() / areas.sum())
        got = float((face_part[faces] == k).float().mean())
        assert abs(got - expected) < 4 * (expected * (1 - expected) / n) ** 0.5 + 1e-3, name
