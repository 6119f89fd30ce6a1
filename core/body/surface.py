"""Points on the template surface with barycentric coordinates and inherited skinning weights (avatar anchors)."""

from __future__ import annotations

import torch
from torch import Tensor

from core.body.asset import BodyAsset
from core.body.lbs import dense_weights


def triangle_areas(vertices: Tensor, faces: Tensor) -> Tensor:
    """vertices [V, 3], faces [F, 3] -> areas [F]."""
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    return 0.5 * torch.linalg.cross(b - a, c - a).norm(dim=-1)


def sample_surface(asset: BodyAsset, n: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """n points uniform by area on the template -> (face_idx [n], bary [n, 3], points [n, 3], weights [n, J]).

    Deterministic for a given seed. Weights are the barycentric blend of the corner vertices' weights, so
    they still sum to one.
    """
    if n <= 0:
        raise ValueError(f"sample_surface: n must be positive, got {n}")
    g = torch.Generator().manual_seed(seed)
    verts = asset.template_vertices.to(torch.float32)
    faces = asset.faces
    areas = triangle_areas(verts, faces)
    face_idx = torch.multinomial(areas, n, replacement=True, generator=g)  # [n]
    u, v = torch.rand(n, generator=g), torch.rand(n, generator=g)
    flip = u + v > 1.0  # reflect into the triangle so the density stays uniform
    u, v = torch.where(flip, 1.0 - u, u), torch.where(flip, 1.0 - v, v)
    bary = torch.stack([1.0 - u - v, u, v], dim=-1)  # [n, 3]
    corners = faces[face_idx]  # [n, 3]
    points = (bary[..., None] * verts[corners]).sum(1)
    W = dense_weights(asset.skin_indices, asset.skin_weights.to(torch.float32), len(asset.parents))  # [V, J]
    weights = (bary[..., None] * W[corners]).sum(1)
    return face_idx, bary, points, weights
