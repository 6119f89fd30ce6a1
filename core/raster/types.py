"""The two records every stage passes around: `Gaussians` (splats) and `Camera` (OpenCV convention).

Shape letters used across the project: B batch, N images, G Gaussians, A anchors, V vertices,
J joints, C cameras, H/W height/width, D token width, K SH coefficients per colour channel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

# Semantic part labels carried by every Gaussian (index = value stored in `Gaussians.parts`).
PART_NAMES: tuple[str, ...] = (
    "skin",
    "face",
    "hair",
    "upper_garment",
    "lower_garment",
    "shoes",
    "accessories",
)

SH_C0 = 0.28209479177387814  # Y_0^0; colour = 0.5 + SH_C0 * sh[..., 0, :] (3DGS convention)


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """Linear RGB in [0, 1] -> degree-0 SH coefficient (inverse of the 3DGS DC convention)."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    return sh0 * SH_C0 + 0.5


def sh_degree_of(num_coeffs: int) -> int:
    degree = int(round(math.sqrt(num_coeffs))) - 1
    if (degree + 1) ** 2 != num_coeffs or degree > 3:
        raise ValueError(f"SH coefficient count must be 1, 4, 9 or 16, got {num_coeffs}")
    return degree


def _check(name: str, t: Tensor, tail: tuple[int | None, ...], lead: tuple[int, ...]) -> None:
    if t.dim() != len(lead) + len(tail) or tuple(t.shape[: len(lead)]) != lead:
        raise ValueError(f"Gaussians.{name}: expected shape {(*lead, *tail)}, got {tuple(t.shape)}")
    for got, want in zip(t.shape[len(lead) :], tail, strict=True):
        if want is not None and got != want:
            raise ValueError(f"Gaussians.{name}: expected shape {(*lead, *tail)}, got {tuple(t.shape)}")


@dataclass(frozen=True)
class Gaussians:
    """A set of 3D Gaussian splats, optionally batched over leading dims `...`."""

    means: Tensor  # [..., G, 3] world positions (metres)
    quats: Tensor  # [..., G, 4] rotations as (w, x, y, z), not necessarily normalised
    log_scales: Tensor  # [..., G, 3] log of the standard deviations along the local axes
    opacity_logits: Tensor  # [..., G] pre-sigmoid opacity
    sh: Tensor  # [..., G, K, 3] SH coefficients per channel, K in {1, 4, 9, 16}
    parts: Tensor | None = None  # [..., G] int64 index into PART_NAMES

    def __post_init__(self) -> None:
        if self.means.dim() < 2:
            raise ValueError(f"Gaussians.means: expected shape [..., G, 3], got {tuple(self.means.shape)}")
        lead = tuple(self.means.shape[:-1])  # (..., G)
        _check("means", self.means, (3,), lead)
        _check("quats", self.quats, (4,), lead)
        _check("log_scales", self.log_scales, (3,), lead)
        _check("opacity_logits", self.opacity_logits, (), lead)
        _check("sh", self.sh, (None, 3), lead)
        sh_degree_of(self.sh.shape[-2])
        if self.parts is not None:
            _check("parts", self.parts, (), lead)

    # Derived views -------------------------------------------------------------------------
    @property
    def num(self) -> int:
        return self.means.shape[-2]

    @property
    def sh_degree(self) -> int:
        return sh_degree_of(self.sh.shape[-2])

    @property
    def scales(self) -> Tensor:  # [..., G, 3]
        return self.log_scales.exp()

    @property
    def opacities(self) -> Tensor:  # [..., G]
        return torch.sigmoid(self.opacity_logits)

    @property
    def device(self) -> torch.device:
        return self.means.device

    # Construction / transformation --------------------------------------------------------
    @classmethod
    def from_rgb(
        cls,
        means: Tensor,  # [..., G, 3]
        rgb: Tensor,  # [..., G, 3] in [0, 1]
        scales: Tensor,  # [..., G, 3] standard deviations
        opacities: Tensor,  # [..., G] in (0, 1)
        quats: Tensor | None = None,  # [..., G, 4] wxyz; identity when None
        parts: Tensor | None = None,
    ) -> Gaussians:
        if quats is None:
            quats = torch.zeros(*means.shape[:-1], 4, dtype=means.dtype, device=means.device)
            quats[..., 0] = 1.0
        opac = opacities.clamp(1e-6, 1 - 1e-6)
        return cls(
            means=means,
            quats=quats,
            log_scales=scales.clamp_min(1e-12).log(),
            opacity_logits=torch.log(opac) - torch.log1p(-opac),
            sh=rgb_to_sh0(rgb).unsqueeze(-2),
            parts=parts,
        )

    def to(self, *args, **kwargs) -> Gaussians:
        """Like `Tensor.to`; part ids keep their integer dtype."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                out[f.name] = None
            elif f.name == "parts":
                device = kwargs.get("device", next((a for a in args if not isinstance(a, torch.dtype)), None))
                out[f.name] = v.to(device) if device is not None else v
            else:
                out[f.name] = v.to(*args, **kwargs)
        return Gaussians(**out)

    def index(self, idx: Tensor | slice) -> Gaussians:
        """Select Gaussians along the G dimension (unbatched sets only)."""
        if self.means.dim() != 2:
            raise ValueError("Gaussians.index works on unbatched sets [G, ...]; index the batch first")
        return self.map_tensors(lambda t: t[idx])

    def detach(self) -> Gaussians:
        return self.map_tensors(Tensor.detach)

    def map_tensors(self, fn: Callable[[Tensor], Tensor]) -> Gaussians:
        """`fn` applied to every field (to `parts` too, where present), e.g. `lambda t: t[b]` for set b of a batch."""
        return Gaussians(**{f.name: None if (v := getattr(self, f.name)) is None else fn(v) for f in fields(self)})

    def replace(self, **changes) -> Gaussians:
        return replace(self, **changes)

    @staticmethod
    def cat(items: list[Gaussians]) -> Gaussians:
        """Concatenate along G. Parts are kept only if every item has them."""
        if not items:
            raise ValueError("Gaussians.cat needs at least one set")
        k = max(g.sh.shape[-2] for g in items)
        sh = [torch.nn.functional.pad(g.sh, (0, 0, 0, k - g.sh.shape[-2])) for g in items]
        parts = None
        if all(g.parts is not None for g in items):
            parts = torch.cat([g.parts for g in items], dim=-1)
        return Gaussians(
            means=torch.cat([g.means for g in items], dim=-2),
            quats=torch.cat([g.quats for g in items], dim=-2),
            log_scales=torch.cat([g.log_scales for g in items], dim=-2),
            opacity_logits=torch.cat([g.opacity_logits for g in items], dim=-1),
            sh=torch.cat(sh, dim=-3),
            parts=parts,
        )


@dataclass(frozen=True)
class Camera:
    """Pinhole camera(s), OpenCV convention: x right, y down, z forward; pixel centres at +0.5."""

    K: Tensor  # [..., 3, 3] intrinsics in pixels
    T_cam_world: Tensor  # [..., 4, 4] world-to-camera rigid transform
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.K.shape[-2:] != (3, 3):
            raise ValueError(f"Camera.K: expected shape [..., 3, 3], got {tuple(self.K.shape)}")
        if self.T_cam_world.shape[-2:] != (4, 4):
            raise ValueError(f"Camera.T_cam_world: expected shape [..., 4, 4], got {tuple(self.T_cam_world.shape)}")
        if self.K.shape[:-2] != self.T_cam_world.shape[:-2]:
            raise ValueError(
                f"Camera: K batch {tuple(self.K.shape[:-2])} != T_cam_world batch {tuple(self.T_cam_world.shape[:-2])}"
            )
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"Camera: width and height must be positive, got {self.width}x{self.height}")

    @property
    def T_world_cam(self) -> Tensor:  # [..., 4, 4]
        return torch.linalg.inv(self.T_cam_world)

    @property
    def position(self) -> Tensor:  # [..., 3] camera centre in world coordinates
        R = self.T_cam_world[..., :3, :3]
        t = self.T_cam_world[..., :3, 3:]
        return -(R.transpose(-1, -2) @ t)[..., 0]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.K.shape[:-2])

    def to(self, *args, **kwargs) -> Camera:
        return Camera(self.K.to(*args, **kwargs), self.T_cam_world.to(*args, **kwargs), self.width, self.height)

    def scaled(self, factor: float) -> Camera:
        """The same view at `factor` times the resolution."""
        K = self.K.clone()
        K[..., :2, :] *= factor
        return Camera(K, self.T_cam_world, max(1, round(self.width * factor)), max(1, round(self.height * factor)))

    @classmethod
    def look_at(
        cls,
        eye: Tensor | tuple[float, float, float],  # [3]
        target: Tensor | tuple[float, float, float],  # [3]
        *,
        up: tuple[float, float, float] = (0.0, 1.0, 0.0),
        fov_y_deg: float = 40.0,
        width: int = 512,
        height: int = 512,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Camera:
        """A camera at `eye` looking at `target`; world is y-up (the body model's frame)."""
        eye_t = torch.as_tensor(eye, dtype=torch.float64)
        tgt = torch.as_tensor(target, dtype=torch.float64)
        up_t = torch.as_tensor(up, dtype=torch.float64)
        z = tgt - eye_t
        z = z / z.norm()
        x = torch.linalg.cross(z, up_t)  # OpenCV: x right, y down (= -up), z forward
        if x.norm() < 1e-8:
            x = torch.linalg.cross(z, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
        x = x / x.norm()
        y = torch.linalg.cross(z, x)
        R = torch.stack([x, y, z])  # rows: camera axes in world coordinates
        T = torch.eye(4, dtype=torch.float64)
        T[:3, :3] = R
        T[:3, 3] = -R @ eye_t
        f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
        K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float64)
        return cls(K.to(dtype=dtype, device=device), T.to(dtype=dtype, device=device), width, height)
