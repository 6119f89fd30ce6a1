"""The studio's and the synthetic world's lighting: one record (a degree-2 RGB SH environment plus a directional
key light), Lambertian shading of albedo under it, and the named presets the studio offers.

The SH basis uses the 3DGS/gsplat ordering and signs (l, m = -l..l), so coefficients mean the same here as in
`core.raster.sh`. Radiance out = albedo * (irradiance_env(n) / pi + key_rgb * max(0, n . l)). `core.model`'s
relightable appearance reads the same record through `core.model.appearance.Lighting.from_environment`.
Presets are an ambient colour and a sky/ground gradient (SH bands 0 and 1), which makes rotation and colour
temperature simple to apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import Tensor

from core.raster.sh import SH_C1, SH_C2
from core.raster.types import SH_C0

PRESET_FILE = Path(__file__).resolve().parents[2] / "assets" / "presets" / "lighting.yaml"
SHADING_GREY = 0.8  # the uniform albedo a "shading" view lights, so that only the lighting shows

# Cosine-lobe convolution per band (Ramamoorthi & Hanrahan 2001): radiance SH -> irradiance SH.
_BAND_GAIN = np.array([math.pi] + [2 * math.pi / 3] * 3 + [math.pi / 4] * 5)


def sh2_basis(dirs: Tensor) -> Tensor:
    """Degree-2 real SH basis of unit directions [..., 3] -> [..., 9]."""
    x, y, z = dirs.unbind(-1)
    return torch.stack(
        [
            torch.full_like(x, SH_C0),
            -SH_C1 * y,
            SH_C1 * z,
            -SH_C1 * x,
            SH_C2[0] * x * y,
            SH_C2[1] * y * z,
            SH_C2[2] * (2 * z * z - x * x - y * y),
            SH_C2[3] * x * z,
            SH_C2[4] * (x * x - y * y),
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
    env[0] = level / SH_C0  # E/pi = gain0 * L0 * C0 / pi = L0 * C0
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


@dataclass(frozen=True)
class LightingEdit:
    """Environment preset plus the user's adjustments and a directional key light (what the studio edits)."""

    preset: str = "studio"
    rotation_deg: float = 0.0  # environment rotation about +y
    intensity: float = 1.0
    temperature_k: float = 6500.0
    key_azimuth_deg: float = 30.0  # direction towards the key light, about +y from +z
    key_elevation_deg: float = 35.0
    key_color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    key_intensity: float = 0.3


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
    env[0] = (ambient + 0.5 * (sky + ground)) / SH_C0
    up = direction(edit.rotation_deg, 75.0)
    grad = 0.5 * (sky - ground)  # radiance difference along `up`, per channel
    # 3DGS band-1 ordering: (-y, z, -x) with coefficient C1; L(d) = C1 * (-c1*y + c2*z - c3*x).
    env[1] = -up[1] * grad / SH_C1
    env[2] = up[2] * grad / SH_C1
    env[3] = -up[0] * grad / SH_C1
    key_dir = direction(edit.key_azimuth_deg + edit.rotation_deg, edit.key_elevation_deg)
    key_rgb = np.asarray(edit.key_color) * edit.key_intensity * tint
    return Lighting(env, key_dir, key_rgb)
