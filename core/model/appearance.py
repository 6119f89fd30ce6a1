"""Relightable appearance: albedo times a degree-1 SH radiance transfer lit by an RGB SH environment.

The environment holds an ambient row and one row per world axis (degree-1 real SH in Cartesian form); a
directional key light adds the degree-1 projection of a clamped cosine lobe, max(0, n.l) ~ 1/4 + n.l/2.
With `Lighting.neutral()` the shading is exactly 1 and the colour is the albedo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from core.raster.lighting import Lighting as Environment
from core.raster.sh import SH_C1
from core.raster.types import SH_C0


@dataclass(frozen=True)
class Lighting:
    """Lighting of one frame."""

    env: Tensor  # [4, 3] RGB: ambient row, then x, y, z rows (world frame)
    direction: Tensor | None = None  # [3] towards the key light (world frame); None: no key light
    colour: Tensor | None = None  # [3] RGB intensity of the key light
    code: Tensor | None = None  # [Dl] per-frame latent lighting code (wild data); None: zero

    def __post_init__(self) -> None:
        if tuple(self.env.shape) != (4, 3):
            raise ValueError(f"Lighting.env: expected shape [4, 3], got {tuple(self.env.shape)}")
        if (self.direction is None) != (self.colour is None):
            raise ValueError("Lighting: give both direction and colour for a key light, or neither")
        for name in ("direction", "colour"):
            t = getattr(self, name)
            if t is not None and tuple(t.shape) != (3,):
                raise ValueError(f"Lighting.{name}: expected shape [3], got {tuple(t.shape)}")

    @classmethod
    def neutral(cls, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Lighting:
        env = torch.zeros(4, 3, device=device, dtype=dtype)
        env[0] = 1.0
        return cls(env=env)

    @classmethod
    def from_environment(cls, light: Environment) -> Lighting:
        """The studio's and the synthetic world's lighting record as an ambient row + linear x, y, z rows + key.

        Exact for environments of SH bands 0 and 1 (the studio's presets); band 2 has no linear counterpart.
        """
        sh = np.asarray(light.env_sh, dtype=np.float64)  # [9, 3]
        # 3DGS band-1 ordering (-y, z, -x): undo the signs and the C1 factor to get the x, y, z gradient rows.
        env = np.stack([SH_C0 * sh[0], -SH_C1 * sh[3], -SH_C1 * sh[1], SH_C1 * sh[2]])  # [4, 3]
        f32 = torch.float32
        return cls(
            env=torch.as_tensor(env, dtype=f32), direction=torch.as_tensor(light.key_dir, dtype=f32),
            colour=torch.as_tensor(light.key_rgb, dtype=f32),
        )  # fmt: skip

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Lighting:
        def mv(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device=device, dtype=dtype)

        return Lighting(self.env.to(device=device, dtype=dtype), mv(self.direction), mv(self.colour), mv(self.code))


def shade(
    albedo: Tensor,  # [..., 3] in [0, 1]
    transfer: Tensor,  # [..., 3] degree-1 transfer vector in the world frame (a visibility-weighted normal)
    env: Tensor,  # [4, 3]
    direction: Tensor | None = None,  # [3] unit vector towards the light
    colour: Tensor | None = None,  # [3]
) -> Tensor:
    """Outgoing RGB [..., 3] = albedo * (ambient + transfer . linear + key light), clamped to [0, 1]."""
    irradiance = env[0] + transfer @ env[1:]  # [..., 3]
    if direction is not None and colour is not None:
        d = direction / direction.norm().clamp_min(1e-8)
        lobe = (0.25 + 0.5 * (transfer @ d)).clamp_min(0.0)  # [...]
        irradiance = irradiance + lobe[..., None] * colour
    return (albedo * irradiance.clamp_min(0.0)).clamp(0.0, 1.0)


class LightingCode(nn.Module):
    """Maps a per-frame lighting code to an environment offset [4, 3] (zero code -> no change)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.linear = nn.Linear(dim, 12, bias=False) if dim > 0 else None
        if self.linear is not None:
            nn.init.normal_(self.linear.weight, std=0.01)

    def forward(self, lighting: Lighting) -> Tensor:
        """The lighting's total environment [4, 3]."""
        if lighting.code is None or self.linear is None:
            if lighting.code is not None and self.dim == 0:
                raise ValueError("this model has no lighting code (appearance.lighting_code_dim = 0); pass code=None")
            return lighting.env
        if tuple(lighting.code.shape) != (self.dim,):
            raise ValueError(f"Lighting.code: expected shape [{self.dim}], got {tuple(lighting.code.shape)}")
        return lighting.env + self.linear(lighting.code).view(4, 3)


class LightingEstimator(nn.Module):
    """The per-frame lighting code of a frame whose lighting nobody measured (wild clips, real footage), read off
    the frame itself: a small CNN over the person cut out onto black -> code [Dl]. Trained only through the render
    loss of such frames, through `LightingCode`; its last layer starts at zero (neutral light). At drive time no
    code is given and the avatar shows its albedo under the chosen lighting."""

    SIZE = 32  # the frame is resized to SIZE x SIZE first

    def __init__(self, dim: int, width: int = 16) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.GELU(),
        )
        self.out = nn.Linear(2 * width, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, image: Tensor) -> Tensor:
        """image [..., 3, H, W] in [0, 1] -> code [..., Dl]."""
        lead = image.shape[:-3]
        x = image.reshape(-1, *image.shape[-3:]).float()
        x = nn.functional.interpolate(x, size=(self.SIZE, self.SIZE), mode="area")
        return self.out(self.convs(x).mean(dim=(-2, -1))).reshape(*lead, -1)
