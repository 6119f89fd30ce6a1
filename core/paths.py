"""Where the program may write on its own: the user's data folder (outputs nobody named) and cache folder.

Nothing is written into the repository or the current directory unless a path is given on the command line.
`LCA_DATA_DIR` / `LCA_CACHE_DIR` override the platform defaults (tests point them at temporary folders).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "lca-studio"
DATA_ENV = "LCA_DATA_DIR"
CACHE_ENV = "LCA_CACHE_DIR"


def _platform_base(kind: str) -> Path:
    """The platform's folder for `kind` ("data" or "cache") per user, without the app name."""
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    if sys.platform == "darwin":
        return home / "Library" / ("Application Support" if kind == "data" else "Caches")
    if kind == "data":
        return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")


def user_data_dir(*parts: str) -> Path:
    """The studio's data folder (created), e.g. ~/.local/share/lca-studio/<parts...>; $LCA_DATA_DIR overrides."""
    base = Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else _platform_base("data") / APP_NAME
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_cache_dir(*parts: str) -> Path:
    """The studio's cache folder (created), e.g. ~/.cache/lca-studio/<parts...>; $LCA_CACHE_DIR overrides.

    Everything in it can be deleted at any time; it is rebuilt when needed.
    """
    base = Path(os.environ[CACHE_ENV]) if os.environ.get(CACHE_ENV) else _platform_base("cache") / APP_NAME
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
