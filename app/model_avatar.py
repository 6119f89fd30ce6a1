"""Adapter from `core.model`'s drivable avatar to the studio's `StudioAvatar` interface."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from app.avatar_source import ROOT, AvatarLoadError, StudioAvatar

log = logging.getLogger(__name__)

# The trained default avatar, produced by training; the studio falls back to an example until it exists.
DEFAULT_AVATAR_FILES = (ROOT / "assets" / "default_avatar.safetensors", ROOT / "assets" / "default_model.safetensors")


def model_available() -> bool:
    return importlib.util.find_spec("core.model.avatar") is not None


def load_model_avatar(path: Path) -> StudioAvatar:
    if not model_available():
        raise AvatarLoadError(
            f"cannot open {path.name}: this build has no avatar model (core.model.avatar); open a .ply instead"
        )
    raise AvatarLoadError(f"cannot open {path.name}: the avatar model's file format is not wired into the studio yet")


def default_model_avatar() -> StudioAvatar | None:
    for path in DEFAULT_AVATAR_FILES:
        if path.is_file() and model_available():
            try:
                return load_model_avatar(path)
            except AvatarLoadError as e:
                log.warning("default avatar %s could not be opened: %s", path, e)
    return None
