"""Synthetic avatar-like splat scenes shared by the renderer's tests and benchmarks.

A standing figure built from capsules and ellipsoids (feet near y=0, facing +z, metres), covered with
Gaussians of varied scales, rotations, opacities and part labels, with degree-3 SH colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.raster.types import PART_NAMES, Camera, Gaussians, rgb_to_sh0


@dataclass(frozen=True)
class _Capsule:
    a: tuple[float, float, float]  # one end of the axis (metres)
    b: tuple[float, float, float]  # the other end
    radius: float
    part: str
    rgb: tuple[float, float, float]


# A 1.75 m figure: (axis start, axis end, radius, part, base colour).
_BODY: tuple[_Capsule, ...] = (
    _Capsule((0.0, 1.52, 0.0), (0.0, 1.68, 0.0), 0.095, "face", (0.86, 0.67, 0.55)),
    _Capsule((0.0, 1.64, -0.02), (0.0, 1.74, -0.03), 0.10, "hair", (0.20, 0.13, 0.08)),
    _Capsule((0.0, 1.42, 0.0), (0.0, 1.52, 0.0), 0.055, "skin", (0.84, 0.64, 0.52)),
    _Capsule((0.0, 0.98, 0.0), (0.0, 1.36, 0.0), 0.16, "upper_garment", (0.15, 0.35, 0.70)),
    _Capsule((-0.19, 1.36, 0.0), (-0.24, 1.08, 0.0), 0.055, "upper_garment", (0.15, 0.35, 0.70)),
    _Capsule((0.19, 1.36, 0.0), (0.24, 1.08, 0.0), 0.055, "upper_garment", (0.15, 0.35, 0.70)),
    _Capsule((-0.24, 1.08, 0.0), (-0.27, 0.82, 0.04), 0.045, "skin", (0.84, 0.64, 0.52)),
    _Capsule((0.24, 1.08, 0.0), (0.27, 0.82, 0.04), 0.045, "skin", (0.84, 0.64, 0.52)),
    _Capsule((0.0, 0.86, 0.0), (0.0, 1.0, 0.0), 0.15, "lower_garment", (0.25, 0.22, 0.20)),
    _Capsule((-0.09, 0.86, 0.0), (-0.10, 0.10, 0.0), 0.075, "lower_garment", (0.25, 0.22, 0.20)),
    _Capsule((0.09, 0.86, 0.0), (0.10, 0.10, 0.0), 0.075, "lower_garment", (0.25, 0.22, 0.20)),
    _Capsule((-0.10, 0.04, -0.02), (-0.10, 0.04, 0.14), 0.045, "shoes", (0.08, 0.08, 0.09)),
    _Capsule((0.10, 0.04, -0.02), (0.10, 0.04, 0.14), 0.045, "shoes", (0.08, 0.08, 0.09)),
)


def _perpendicular_frame(axis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit vectors [3] orthogonal to `axis` [3] and to each other."""
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=axis.dtype)
    if abs(float(axis @ helper)) > 0.9:
        helper = torch.tensor([0.0, 0.0, 1.0], dtype=axis.dtype)
    u = torch.linalg.cross(axis, helper)
    u = u / u.norm()
    return u, torch.linalg.cross(axis, u)


def avatar_like_scene(num: int, *, seed: int = 0, sh_degree: int = 3, dtype: torch.dtype = torch.float32) -> Gaussians:
    """`num` Gaussians on the surface of a standing human-like figure (unbatched: means [G, 3]).

    Scales shrink as `num` grows so the surface stays covered about as densely at any count.
    """
    if num < 0:
        raise ValueError(f"avatar_like_scene: num must be >= 0, got {num}")
    if not 0 <= sh_degree <= 3:
        raise ValueError(f"avatar_like_scene: sh_degree must be 0..3, got {sh_degree}")
    gen = torch.Generator().manual_seed(seed)
    areas = torch.tensor([2 * math.pi * c.radius * (math.dist(c.a, c.b) + 2 * c.radius) for c in _BODY])
    which = (
        torch.multinomial(areas / areas.sum(), num, replacement=True, generator=gen)
        if num
        else torch.zeros(0, dtype=torch.long)
    )
    means = torch.empty(num, 3, dtype=torch.float64)
    rgb = torch.empty(num, 3, dtype=torch.float64)
    parts = torch.empty(num, dtype=torch.long)
    for i, cap in enumerate(_BODY):
        sel = (which == i).nonzero()[:, 0]
        n = sel.numel()
        if n == 0:
            continue
        a, b = torch.tensor(cap.a, dtype=torch.float64), torch.tensor(cap.b, dtype=torch.float64)
        axis = b - a
        length = float(axis.norm())
        axis = axis / length
        u, v = _perpendicular_frame(axis)
        # Capsule surface: a cylinder plus two hemispherical caps, parametrised along the axis.
        s = torch.rand(n, generator=gen, dtype=torch.float64) * (length + 2 * cap.radius) - cap.radius
        theta = torch.rand(n, generator=gen, dtype=torch.float64) * 2 * math.pi
        radial = torch.cos(theta)[:, None] * u + torch.sin(theta)[:, None] * v  # [n, 3]
        beyond = (s.clamp(max=0.0) + (s - length).clamp(min=0.0)).abs()  # distance past a cap
        ring = torch.sqrt((cap.radius**2 - beyond**2).clamp(min=0.0))
        along = s.clamp(-cap.radius, length + cap.radius)
        means[sel] = a + along[:, None] * axis + ring[:, None] * radial
        base = torch.tensor(cap.rgb, dtype=torch.float64)
        # Stripes and mottling so that misplaced splats show up as image differences.
        stripe = 0.12 * torch.sin(40.0 * means[sel, 1] + 3.0 * theta)[:, None]
        noise = 0.06 * torch.randn(n, 3, generator=gen, dtype=torch.float64)
        rgb[sel] = (base + stripe + noise).clamp(0.02, 0.98)
        parts[sel] = PART_NAMES.index(cap.part)
    scale_base = 0.012 * math.sqrt(20_000 / max(num, 1))
    log_scales = math.log(scale_base) + 0.45 * torch.randn(num, 3, generator=gen, dtype=torch.float64)
    log_scales[:, 2] -= 0.9  # flatter along one local axis, like surface splats
    quats = torch.randn(num, 4, generator=gen, dtype=torch.float64)
    quats = quats / quats.norm(dim=-1, keepdim=True)
    opacity_logits = 1.5 + 1.2 * torch.randn(num, generator=gen, dtype=torch.float64)
    k = (sh_degree + 1) ** 2
    sh = torch.zeros(num, k, 3, dtype=torch.float64)
    sh[:, 0] = rgb_to_sh0(rgb)
    if k > 1:
        sh[:, 1:] = 0.12 * torch.randn(num, k - 1, 3, generator=gen, dtype=torch.float64)
    return Gaussians(
        means=means.to(dtype),
        quats=quats.to(dtype),
        log_scales=log_scales.to(dtype),
        opacity_logits=opacity_logits.to(dtype),
        sh=sh.to(dtype),
        parts=parts,
    )


def front_camera(
    width: int = 640, height: int = 480, *, distance: float = 3.0, yaw_deg: float = 0.0, fov_y_deg: float = 40.0
) -> Camera:
    """A camera `distance` metres from the figure at chest height, `yaw_deg` around +y from the front."""
    yaw = math.radians(yaw_deg)
    eye = (distance * math.sin(yaw), 1.0, distance * math.cos(yaw))
    return Camera.look_at(eye, (0.0, 0.9, 0.0), fov_y_deg=fov_y_deg, width=width, height=height)
