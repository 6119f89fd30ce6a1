"""What the studio needs from an avatar, and where each kind comes from.

`StudioAvatar` is the one interface the session talks to: `core.body.frame.Drivable` (name, description,
controls, `drive(frame)`, face target, canonical Gaussians). `core.model.static.StaticAvatar` wraps a fixed set
of Gaussians (an example figure or a loaded .ply); `app.model_avatar.ModelAvatar` wraps `core.model`'s drivable
avatar; `core.data.avatar.SyntheticAvatar` a ground-truth synthetic person. `default_avatar()` picks the best
one available, so a trained checkpoint replaces the example in one place.
"""

from __future__ import annotations

import logging
from pathlib import Path

from core.body.frame import Drivable
from core.model.static import StaticAvatar

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
StudioAvatar = Drivable


class AvatarLoadError(RuntimeError):
    """An avatar file could not be used; the message says why and what to do."""


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


def default_avatar(progress=None) -> StudioAvatar:
    """The trained default avatar when it is installed, else the best example available.

    `progress(fraction, text)`, when given, hears what is loading (the studio's start-up status line).
    """
    from app.model_avatar import default_model_avatar

    avatar = default_model_avatar(progress)
    if avatar is not None:
        return avatar
    from core.data.avatar import synthetic_available, synthetic_avatar

    if synthetic_available():
        log.info("no trained default avatar installed; opening a ground-truth synthetic person")
        return synthetic_avatar(1)
    log.info("no trained default avatar installed; opening the procedural example figure")
    return example_figure()
