"""Lighting conditions of the synthetic world: random wild lighting, even studio light and light-stage sweeps,
as `core.raster.lighting.Lighting` records."""

from __future__ import annotations

import math

import numpy as np

from core.raster.lighting import Lighting
from core.raster.sh import SH_C1
from core.raster.types import SH_C0


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def random_lighting(rng: np.random.Generator, *, indoor: bool | None = None) -> Lighting:
    """A plausible random condition: ambient of random tint, a sky/ground gradient, and a key light."""
    indoor = bool(rng.uniform() < 0.5) if indoor is None else indoor
    ambient = rng.uniform(0.35, 0.75)
    tint = np.clip(1 + rng.normal(0, 0.08, 3), 0.75, 1.25)
    env = np.zeros((9, 3))
    env[0] = ambient * tint / SH_C0
    # Band 1: brighter from above (sky / ceiling) than from below (floor), plus a random side.
    up = np.array([0.0, 1.0, 0.0]) * rng.uniform(0.1, 0.4) + rng.normal(0, 0.12, 3)
    env[1:4] = np.outer(np.array([-up[1], up[2], -up[0]]), tint) / SH_C1 * 0.5
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
    env[0] = 0.8 / SH_C0
    env[1] = -0.08 / SH_C1  # a little more light from above
    return Lighting(env, _unit(np.array([0.3, 0.8, 1.0])), np.full(3, 0.25))


def lighting_sweep(num: int) -> list[Lighting]:
    """Light-stage style sweep: a dim ambient and a strong key circling the person (relighting targets)."""
    out = []
    for k in range(num):
        az = 2 * math.pi * k / max(num, 1)
        env = np.zeros((9, 3))
        env[0] = 0.25 / SH_C0
        out.append(Lighting(env, _unit(np.array([math.sin(az), 0.5, math.cos(az)])), np.full(3, 0.9)))
    return out
