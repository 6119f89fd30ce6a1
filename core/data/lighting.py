"""Lighting of the synthetic world: a degree-2 RGB SH environment plus a directional key light, applied to
albedo by diffuse (Lambertian) shading with each Gaussian's normal.

The SH basis uses the 3DGS/gsplat ordering and signs (l, m = -l..l), so coefficients mean the same here as
in `core.raster`. Radiance out = albedo * (irradiance_env(n) / pi + key_rgb * max(0, n . l)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
# Cosine-lobe convolution per band (Ramamoorthi & Hanrahan 2001): radiance SH -> irradiance SH.
_BAND_GAIN = np.array([math.pi] + [2 * math.pi / 3] * 3 + [math.pi / 4] * 5)


def sh2_basis(dirs: Tensor) -> Tensor:
    """Degree-2 real SH basis of unit directions [..., 3] -> [..., 9]."""
    x, y, z = dirs.unbind(-1)
    return torch.stack(
        [
            torch.full_like(x, _C0),
            -_C1 * y,
            _C1 * z,
            -_C1 * x,
            _C2[0] * x * y,
            _C2[1] * y * z,
            _C2[2] * (2 * z * z - x * x - y * y),
            _C2[3] * x * z,
            _C2[4] * (x * x - y * y),
        ],
        dim=-1,
    )


@dataclass(frozen=True)
class Lighting:
    """One lighting condition: SH environment radiance [9, 3] and a directional key light."""

    env_sh: np.ndarray  # [9, 3] radiance SH coefficients (RGB)
    key_dir: np.ndarray  # [3] unit direction *towards* the light, world frame
    key_rgb: np.ndarray  # [3] key light intensity

    def to_json(self) -> dict:
        return {"env_sh": self.env_sh.tolist(), "key_dir": self.key_dir.tolist(), "key_rgb": self.key_rgb.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> Lighting:
        return cls(np.asarray(d["env_sh"], float), np.asarray(d["key_dir"], float), np.asarray(d["key_rgb"], float))


def uniform_lighting(level: float = 1.0) -> Lighting:
    """A flat white environment whose irradiance/pi equals `level` everywhere, and no key light."""
    env = np.zeros((9, 3))
    env[0] = level / _C0  # E/pi = gain0 * L0 * C0 / pi = L0 * C0
    return Lighting(env, np.array([0.0, 1.0, 0.0]), np.zeros(3))


def shade(
    albedo: Tensor,  # [..., G, 3] linear RGB
    normals: Tensor,  # [..., G, 3] unit world normals
    light: Lighting,
) -> Tensor:  # [..., G, 3] outgoing radiance, clamped to [0, 1]
    """Lambertian shading of albedo under `light` (SH environment irradiance + directional key)."""
    gain = torch.as_tensor(_BAND_GAIN / math.pi, dtype=albedo.dtype, device=albedo.device)
    env = torch.as_tensor(light.env_sh, dtype=albedo.dtype, device=albedo.device) * gain[:, None]  # [9, 3]
    irr = sh2_basis(normals) @ env  # [..., G, 3]
    key_dir = torch.as_tensor(light.key_dir, dtype=albedo.dtype, device=albedo.device)
    key = (normals @ key_dir).clamp_min(0)[..., None] * torch.as_tensor(
        light.key_rgb, dtype=albedo.dtype, device=albedo.device
    )
    return (albedo * (irr.clamp_min(0) + key)).clamp(0, 1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def random_lighting(rng: np.random.Generator, *, indoor: bool | None = None) -> Lighting:
    """A plausible random condition: ambient of random tint, a sky/ground gradient, and a key light."""
    indoor = bool(rng.uniform() < 0.5) if indoor is None else indoor
    ambient = rng.uniform(0.35, 0.75)
    tint = np.clip(1 + rng.normal(0, 0.08, 3), 0.75, 1.25)
    env = np.zeros((9, 3))
    env[0] = ambient * tint / _C0
    # Band 1: brighter from above (sky / ceiling) than from below (floor), plus a random side.
    up = np.array([0.0, 1.0, 0.0]) * rng.uniform(0.1, 0.4) + rng.normal(0, 0.12, 3)
    env[1:4] = np.outer(np.array([-up[1], up[2], -up[0]]), tint) / _C1 * 0.5
    env[4:] = rng.normal(0, 0.05, (5, 3))
    elev = rng.uniform(0.2, 1.2)
    az = rng.uniform(-math.pi, math.pi)
    key_dir = _unit(np.array([math.cos(elev) * math.sin(az), math.sin(elev), math.cos(elev) * math.cos(az)]))
    warm = np.array([1.0, 0.93, 0.82]) if indoor else np.array([1.0, 0.97, 0.92])
    key_rgb = warm * rng.uniform(0.2, 0.9)
    return Lighting(env, key_dir, key_rgb)


def studio_lighting() -> Lighting:
    """Even, bright, slightly top-lit studio light."""
    env = np.zeros((9, 3))
    env[0] = 0.8 / _C0
    env[1] = -0.08 / _C1  # a little more light from above
    return Lighting(env, _unit(np.array([0.3, 0.8, 1.0])), np.full(3, 0.25))


def lighting_sweep(num: int) -> list[Lighting]:
    """Light-stage style sweep: a dim ambient and a strong key circling the person (relighting targets)."""
    out = []
    for k in range(num):
        az = 2 * math.pi * k / max(num, 1)
        env = np.zeros((9, 3))
        env[0] = 0.25 / _C0
        out.append(Lighting(env, _unit(np.array([math.sin(az), 0.5, math.cos(az)])), np.full(3, 0.9)))
    return out
