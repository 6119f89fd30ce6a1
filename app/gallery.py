"""The avatar gallery: bundled examples plus the user's avatar files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from app.avatar_source import StudioAvatar, example_figure, load_avatar


def user_dir() -> Path:
    """The folder of the user's own avatars ($LCA_STUDIO_HOME/avatars, default ~/.lca_studio/avatars)."""
    return Path(os.environ.get("LCA_STUDIO_HOME", Path.home() / ".lca_studio")) / "avatars"


def bundled_examples() -> dict[str, Callable[[], StudioAvatar]]:
    """Name -> factory of each example that ships with the studio."""
    out: dict[str, Callable[[], StudioAvatar]] = {}
    from app.model_avatar import DEFAULT_AVATAR_FILES, example_avatar, example_files, load_model_avatar, model_available
    from core.data.avatar import synthetic_available, synthetic_avatar

    for path in DEFAULT_AVATAR_FILES:  # the avatar the studio opens first, listed first (so the list's pick is it)
        if path.is_file() and model_available():
            out["default avatar"] = lambda path=path: load_model_avatar(path)
            break
    for path in example_files():
        out[f"trained model: {path.stem}"] = lambda path=path: example_avatar(path)

    if synthetic_available():
        for seed in (1, 2, 3, 4):
            out[f"synthetic person #{seed}"] = lambda seed=seed: synthetic_avatar(seed)
    out["example figure"] = lambda: example_figure()
    out["example figure (dense)"] = lambda: example_figure(60_000)
    return out


def user_avatars(folder: Path | None = None) -> dict[str, Path]:
    folder = folder or user_dir()
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".safetensors", ".ply")}


def gallery() -> dict[str, Callable[[], StudioAvatar]]:
    out = bundled_examples()
    for name, path in user_avatars().items():
        out[f"mine: {name}"] = lambda path=path: load_avatar(path)
    return out
