"""Lighting presets and the user's lighting edits -> a `core.data.lighting.Lighting` (SH environment + key).

The environment is built from an ambient colour and a sky/ground gradient (SH bands 0 and 1), which makes
rotation and colour temperature simple to apply. These helpers belong beside `core.data.lighting`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from app.state import LightingEdit
from core.data.lighting import Lighting

PRESET_FILE = Path(__file__).resolve().parent.parent / "assets" / "presets" / "lighting.yaml"
_C0 = 0.28209479177387814
_C1 = 0.4886025119029199


@dataclass(frozen=True)
class EnvironmentPreset:
    name: str
    ambient: tuple[float, float, float]
    sky: tuple[float, float, float]
    ground: tuple[float, float, float]
    temperature_k: float
    key_azimuth_deg: float
    key_elevation_deg: float
    key_color: tuple[float, float, float]
    key_intensity: float

    def as_edit(self) -> LightingEdit:
        """The lighting edit that selects this preset with its own key light."""
        return LightingEdit(
            preset=self.name,
            temperature_k=self.temperature_k,
            key_azimuth_deg=self.key_azimuth_deg,
            key_elevation_deg=self.key_elevation_deg,
            key_color=self.key_color,
            key_intensity=self.key_intensity,
        )


def load_environment_presets(path: Path = PRESET_FILE) -> dict[str, EnvironmentPreset]:
    with open(path) as f:
        raw = yaml.safe_load(f)
    out = {}
    for name, d in raw.items():
        try:
            key = d["key"]
            out[name] = EnvironmentPreset(
                name=name,
                ambient=tuple(d["ambient"]),
                sky=tuple(d["sky"]),
                ground=tuple(d["ground"]),
                temperature_k=float(d["temperature_k"]),
                key_azimuth_deg=float(key["azimuth_deg"]),
                key_elevation_deg=float(key["elevation_deg"]),
                key_color=tuple(key["color"]),
                key_intensity=float(key["intensity"]),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: lighting preset {name!r} is missing or has a malformed field ({e})") from e
    return out


def temperature_rgb(kelvin: float) -> np.ndarray:  # [3]
    """Approximate RGB tint of a black body at `kelvin`, normalised so 6500 K is white."""

    def raw(k: float) -> np.ndarray:
        t = np.clip(k, 1000.0, 40000.0) / 100.0
        r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
        g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
        b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
        return np.clip(np.array([r, g, b]), 1.0, 255.0)

    return raw(kelvin) / raw(6500.0)


def direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:  # [3] unit, towards the light
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])


def build_lighting(edit: LightingEdit, presets: dict[str, EnvironmentPreset]) -> Lighting:
    """The SH environment and key light that `edit` describes."""
    if edit.preset not in presets:
        raise ValueError(f"unknown lighting preset {edit.preset!r}; choose one of {', '.join(presets)}")
    p = presets[edit.preset]
    tint = temperature_rgb(edit.temperature_k) / temperature_rgb(p.temperature_k)
    ambient = np.asarray(p.ambient) * tint * edit.intensity
    sky = np.asarray(p.sky) * tint * edit.intensity
    ground = np.asarray(p.ground) * tint * edit.intensity
    env = np.zeros((9, 3))
    # Mean radiance, plus a linear gradient from ground to sky tilted a little towards the rotated front.
    env[0] = (ambient + 0.5 * (sky + ground)) / _C0
    up = direction(edit.rotation_deg, 75.0)
    grad = 0.5 * (sky - ground)  # radiance difference along `up`, per channel
    # 3DGS band-1 ordering: (-y, z, -x) with coefficient C1; L(d) = C1 * (-c1*y + c2*z - c3*x).
    env[1] = -up[1] * grad / _C1
    env[2] = up[2] * grad / _C1
    env[3] = -up[0] * grad / _C1
    key_dir = direction(edit.key_azimuth_deg + edit.rotation_deg, edit.key_elevation_deg)
    key_rgb = np.asarray(edit.key_color) * edit.key_intensity * tint
    return Lighting(env, key_dir, key_rgb)


def model_lighting(light: Lighting):
    """The same lighting for `core.model`'s relightable appearance: ambient row + linear x, y, z rows + key.

    Exact for the environments `build_lighting` makes (SH bands 0 and 1; band 2 has no linear counterpart).
    """
    import torch

    from core.model.appearance import Lighting as ModelLighting

    sh = np.asarray(light.env_sh, dtype=np.float64)
    # 3DGS band-1 ordering (-y, z, -x): undo the signs and the C1 factor to get the x, y, z gradient rows.
    env = np.stack([_C0 * sh[0], -_C1 * sh[3], -_C1 * sh[1], _C1 * sh[2]])  # [4, 3]
    f32 = torch.float32
    return ModelLighting(
        env=torch.as_tensor(env, dtype=f32), direction=torch.as_tensor(light.key_dir, dtype=f32),
        colour=torch.as_tensor(light.key_rgb, dtype=f32),
    )  # fmt: skip
