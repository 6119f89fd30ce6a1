"""What the studio needs from an avatar, and adapters that provide it.

`StudioAvatar` is the one interface the session talks to. `StaticAvatar` wraps a fixed set of Gaussians
(an example figure or a loaded .ply); `app.model_avatar.ModelAvatar` wraps `core.model`'s drivable avatar.
`default_avatar()` picks the best one available, so a trained checkpoint replaces the example in one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from app.part_edits import apply_part_edits
from app.state import EditState
from core.data.lighting import Lighting, shade
from core.raster.types import Gaussians, rgb_to_sh0, sh0_to_rgb

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


class AvatarLoadError(RuntimeError):
    """An avatar file could not be used; the message says why and what to do."""


@dataclass(frozen=True)
class Rig:
    """The drivable controls an avatar exposes (empty for static avatars)."""

    expression_names: tuple[str, ...] = ()
    joint_names: tuple[str, ...] = ()
    joint_parents: tuple[int, ...] = ()


class StudioAvatar(Protocol):
    name: str  # shown in the status bar and gallery
    description: str  # what kind of avatar this is (model config, example, ...)
    rig: Rig

    def drive(self, edit: EditState, lighting: Lighting) -> Gaussians:
        """Posed, edited, lit Gaussians (unbatched) for the current edit state: the cheap per-frame path."""
        ...

    def face_target(self) -> tuple[float, float, float]:
        """A world point at the middle of the face, for 'focus on face'."""
        ...

    def canonical(self) -> Gaussians:
        """The undriven Gaussians (for .ply export and part swaps)."""
        ...


def _normals_from_quats(g: Gaussians) -> torch.Tensor:  # [G, 3]
    """Each splat's thinnest axis, oriented away from the body's vertical axis."""
    from core.model.skinning import quat_to_matrix

    R = quat_to_matrix(g.quats)  # [G, 3, 3]
    thin = g.log_scales.argmin(-1)  # [G]
    n = R.gather(-1, thin[:, None, None].expand(-1, 3, 1))[..., 0]  # column of the thinnest axis
    outward = g.means.clone()
    outward[:, 1] = 0.0
    sign = torch.where((n * outward).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(n)
    return n * sign


class StaticAvatar:
    """A fixed set of Gaussians: edits to parts and lighting apply; pose and expression have nothing to drive."""

    def __init__(self, gaussians: Gaussians, *, name: str, description: str) -> None:
        if gaussians.means.dim() != 2:
            raise ValueError(f"StaticAvatar needs an unbatched set (means [G, 3]), got {tuple(gaussians.means.shape)}")
        self._g = gaussians.detach().to(torch.float32)
        self.name = name
        self.description = description
        self.rig = Rig()
        self._albedo = sh0_to_rgb(self._g.sh[:, 0, :]).clamp(0, 1)  # [G, 3]
        self._normals = _normals_from_quats(self._g)

    def canonical(self) -> Gaussians:
        return self._g

    def face_target(self) -> tuple[float, float, float]:
        if self._g.parts is not None and bool((self._g.parts == 1).any()):
            c = self._g.means[self._g.parts == 1].mean(0)
        else:
            c = self._g.means[self._g.means[:, 1] > self._g.means[:, 1].quantile(0.93)].mean(0)
        return (float(c[0]), float(c[1]), float(c[2]))

    def drive(self, edit: EditState, lighting: Lighting) -> Gaussians:
        g = self._g
        if edit.view_mode in ("full", "shading"):
            albedo = torch.full_like(self._albedo, 0.8) if edit.view_mode == "shading" else self._albedo
            lit = shade(albedo, self._normals, lighting)
            sh = torch.zeros_like(g.sh)
            sh[:, 0, :] = rgb_to_sh0(lit)
            g = g.replace(sh=sh)
        return apply_part_edits(g, edit.parts)


def example_figure(num: int = 20_000, seed: int = 0) -> StaticAvatar:
    """The procedural standing figure that ships with the renderer (always available)."""
    from render.scenes import avatar_like_scene

    g = avatar_like_scene(num, seed=seed, sh_degree=0)
    return StaticAvatar(g, name=f"example figure #{seed}", description=f"procedural example figure, {num:,} splats")


def load_ply_avatar(path: Path) -> StaticAvatar:
    """A 3DGS .ply as a static avatar."""
    from core.raster.ply import load_ply

    try:
        g = load_ply(path)
    except (ValueError, FileNotFoundError) as e:
        raise AvatarLoadError(str(e)) from e
    return StaticAvatar(g, name=path.stem, description=f".ply file, {g.num:,} splats")


def load_avatar(path: str | Path) -> StudioAvatar:
    """Open an avatar file (.safetensors from the model, or a 3DGS .ply); raises AvatarLoadError."""
    path = Path(path)
    if not path.is_file():
        raise AvatarLoadError(f"no avatar file at {path}; pick an existing .safetensors or .ply file")
    if path.suffix.lower() == ".ply":
        return load_ply_avatar(path)
    from app.model_avatar import load_model_avatar

    return load_model_avatar(path)


def default_avatar() -> StudioAvatar:
    """The trained default avatar when it is installed, else the best example available."""
    from app.model_avatar import default_model_avatar

    avatar = default_model_avatar()
    if avatar is not None:
        return avatar
    from app.synthetic_avatar import synthetic_available, synthetic_avatar

    if synthetic_available():
        log.info("no trained default avatar installed; opening a ground-truth synthetic person")
        return synthetic_avatar(1)
    log.info("no trained default avatar installed; opening the procedural example figure")
    return example_figure()
