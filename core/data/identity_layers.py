"""Building blocks of ground-truth identities: the `Identity` record, surface sampling, frames, patterns and
noise, and the builder that accumulates Gaussian layers before packing them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from core.data.body_bridge import RestBody, WorldBody
from core.data.identity_spec import Garment, IdentitySpec
from core.raster.types import PART_NAMES

PART = {n: i for i, n in enumerate(PART_NAMES)}


@dataclass(frozen=True)
class Identity:
    """One person: canonical Gaussians (rest pose) with anchors, skinning weights, albedo and part labels."""

    spec: IdentitySpec
    rest: RestBody
    tri: Tensor  # [G] int64 anchor triangle
    bary: Tensor  # [G, 3] barycentric weights on it
    offset: Tensor  # [G, 3] rest-frame offset from the anchor point (metres)
    weights: Tensor  # [G, J] skinning weights, rows sum to 1
    frames: Tensor  # [G, 3, 3] rest rotation (columns: tangent, bitangent, normal = shortest axis)
    log_scales: Tensor  # [G, 3]
    opacity_logits: Tensor  # [G]
    albedo: Tensor  # [G, 3] linear RGB
    parts: Tensor  # [G] int64 index into PART_NAMES
    sway: Tensor  # [G] metres of secondary motion per unit of body speed (loose skirts, long hair)

    @property
    def num(self) -> int:
        return int(self.tri.shape[0])


def _sample_surface(rng: np.random.Generator, v: np.ndarray, faces: np.ndarray, tri_mask: np.ndarray, n: int):
    """Area-weighted samples on the triangles where `tri_mask` holds: (tri [n], bary [n, 3], area per sample)."""
    idx = np.nonzero(tri_mask)[0]
    a, b, c = v[faces[idx, 0]], v[faces[idx, 1]], v[faces[idx, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    if len(idx) == 0 or n <= 0:
        return np.zeros(0, np.int64), np.zeros((0, 3)), 0.0
    tri = idx[rng.choice(len(idx), n, p=area / area.sum())]
    r1, r2 = np.sqrt(rng.uniform(size=n)), rng.uniform(size=n)
    bary = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], 1)
    return tri, bary, float(area.sum() / n)


def _frames_from_normals(n: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation matrices [P, 3, 3] whose third column is the normal and first a random tangent."""
    t = np.cross(n, rng.normal(size=n.shape))
    t /= np.linalg.norm(t, axis=1, keepdims=True) + 1e-12
    b = np.cross(n, t)
    return np.stack([t, b, n], axis=2)


def _frames_from_dirs(d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Frames whose *first* column follows strand direction `d` [P, 3] (long axis of hair Gaussians)."""
    d = d / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-12)
    n = np.cross(d, rng.normal(size=d.shape))
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    b = np.cross(n, d)
    return np.stack([d, b, n], axis=2)


def _pattern(g: Garment, p: np.ndarray) -> np.ndarray:
    """Albedo [P, 3] of garment `g` at rest positions `p` [P, 3]."""
    s = g.pattern_scale
    c1, c2 = np.array(g.colour), np.array(g.colour2)
    if g.pattern == "stripes":
        m = np.sin(2 * math.pi * p[:, 1] / s) > 0.3
    elif g.pattern == "checks":
        m = (np.floor(p[:, 0] / s) + np.floor(p[:, 1] / s) + np.floor(p[:, 2] / s)) % 2 == 0
    elif g.pattern == "dots":
        q = (p / s) % 1.0 - 0.5
        m = np.linalg.norm(q[:, :2], axis=1) < 0.22
    else:
        m = np.zeros(len(p), bool)
    return np.where(m[:, None], c2, c1)


def _noise3(p: np.ndarray, rng: np.random.Generator, octaves: int = 3, base: float = 8.0) -> np.ndarray:
    """Smooth pseudo-noise in [-1, 1] at points [P, 3]: a sum of random plane waves."""
    out = np.zeros(len(p))
    for o in range(octaves):
        for _ in range(3):
            k = rng.normal(size=3) * base * 2**o
            out += np.sin(p @ k + rng.uniform(0, 2 * math.pi)) / (2**o * 3)
    return np.clip(out, -1, 1)


class _Builder:
    """Accumulates Gaussian layers as numpy arrays, then packs them into an `Identity`."""

    def __init__(self, body: WorldBody, rest: RestBody, rng: np.random.Generator) -> None:
        self.body, self.rest, self.rng = body, rest, rng
        self.v = rest.vertices.numpy()
        self.vn = rest.normals.numpy()
        self.faces = body.faces.numpy()
        self.vw = body.weights.numpy()
        self._still: np.ndarray | None = None  # expression_still(), computed on first use
        self.layers: list[dict[str, np.ndarray]] = []

    def anchor_point(self, tri: np.ndarray, bary: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = self.faces[tri]
        p = np.einsum("pk,pkd->pd", bary, self.v[f])
        n = np.einsum("pk,pkd->pd", bary, self.vn[f])
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        w = np.einsum("pk,pkj->pj", bary, self.vw[f])
        return p, n, w

    def add(self, *, tri, bary, offset, weights, frames, scales, opacity, albedo, part, sway=None) -> None:
        P = len(tri)
        if P == 0:
            return
        self.layers.append(
            {
                "tri": np.asarray(tri, np.int64),
                "bary": np.asarray(bary, np.float64),
                "offset": np.asarray(offset, np.float64),
                "weights": np.asarray(weights, np.float64),
                "frames": np.asarray(frames, np.float64),
                "scales": np.broadcast_to(np.asarray(scales, np.float64), (P, 3)),
                "opacity": np.broadcast_to(np.asarray(opacity, np.float64), (P,)),
                "albedo": np.clip(np.broadcast_to(np.asarray(albedo, np.float64), (P, 3)), 0, 1),
                "part": np.broadcast_to(np.asarray(part, np.int64), (P,)),
                "sway": np.zeros(P) if sway is None else np.asarray(sway, np.float64),
            }
        )

    def add_points(
        self,
        points: np.ndarray,
        *,
        normals: np.ndarray,
        size: float,
        thickness: float,
        albedo: np.ndarray,
        part: int,
        bone: str | None = None,
        among: np.ndarray | None = None,
    ) -> None:
        """Free points (eyes, teeth, accessories) as flat discs facing `normals`, anchored at the nearest vertex
        (of `among`); rigid with `bone` when given, else skinned like that vertex."""
        tri, bary, w = self.nearest_anchor(points, among)
        if bone is not None:
            w = np.zeros((len(points), self.body.num_bones))
            w[:, self.body.bone_index[bone]] = 1
        self.add(
            tri=tri,
            bary=bary,
            offset=points - self.anchor_point(tri, bary)[0],
            weights=w,
            frames=_frames_from_normals(np.ascontiguousarray(normals), self.rng),
            scales=(size, size, size * thickness),
            opacity=0.99,
            albedo=albedo,
            part=part,
        )

    def expression_still(self) -> np.ndarray:
        """Vertex mask [V]: head vertices that no expression moves (anchors for parts rigid with the skull)."""
        if self._still is None:
            move = self.body.expression_offsets.norm(dim=-1).amax(0).numpy()
            self._still = (move < 1e-5) & (self.vw.argmax(1) == self.body.bone_index["head"])
        return self._still

    def nearest_anchor(
        self, points: np.ndarray, among: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Anchor free points at the nearest vertex (via one of its triangles): tri, bary, weights. `among`: a
        vertex mask to choose from (e.g. vertices no expression moves, for parts that must stay rigid); default
        every 4th vertex."""
        candidates = np.flatnonzero(among) if among is not None else np.arange(0, len(self.v), 4)
        if len(candidates) == 0:
            raise ValueError("nearest_anchor: the vertex mask selects no vertex")
        d = ((points[:, None, :] - self.v[None, candidates, :]) ** 2).sum(-1)
        vi = candidates[d.argmin(1)]
        tri_of_vertex = np.zeros(len(self.v), np.int64)
        for corner in range(3):  # every vertex gets a triangle it is a corner of
            tri_of_vertex[self.faces[:, corner]] = np.arange(len(self.faces))
        tri = tri_of_vertex[vi]
        bary = (self.faces[tri] == vi[:, None]).astype(np.float64)
        return tri, bary, self.vw[vi]

    def pack(self, spec: IdentitySpec) -> Identity:
        cat = {k: np.concatenate([layer[k] for layer in self.layers]) for k in self.layers[0]}
        t = lambda a, dt=torch.float32: torch.as_tensor(np.ascontiguousarray(a), dtype=dt)  # noqa: E731
        op = np.clip(cat["opacity"], 1e-4, 1 - 1e-4)
        return Identity(
            spec=spec,
            rest=self.rest,
            tri=t(cat["tri"], torch.int64),
            bary=t(cat["bary"]),
            offset=t(cat["offset"]),
            weights=t(cat["weights"] / cat["weights"].sum(1, keepdims=True).clip(1e-9)),
            frames=t(cat["frames"]),
            log_scales=t(np.log(cat["scales"])),
            opacity_logits=t(np.log(op) - np.log1p(-op)),
            albedo=t(cat["albedo"]),
            parts=t(cat["part"], torch.int64),
            sway=t(cat["sway"]),
        )
