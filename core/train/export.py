"""Models from checkpoints: rebuild the model a checkpoint was trained with, and export a compact copy to ship."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from core.config import from_dict
from core.io import FileFormatError
from core.model.config import ModelConfig, stored_model_config
from core.model.model import LCAModel
from core.model.rig import rig_from_body_asset
from core.train.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint
from core.train.config import DataConfig

log = logging.getLogger(__name__)


SHIPPED_MODEL_FILE = Path(__file__).resolve().parents[2] / "assets" / "default_model.safetensors"
_SHIPPED: dict[str, tuple[LCAModel, str] | None] = {}


def shipped_model() -> tuple[LCAModel, str] | None:
    """The shipped trained model (on the GPU when there is one) and a description, or None when it is missing or
    unreadable; loaded once per process (the studio's example avatars and photo creation share it)."""
    if "model" not in _SHIPPED:
        result = None
        if SHIPPED_MODEL_FILE.is_file():
            device = "cuda" if torch.cuda.is_available() else "cpu"
            try:
                model, meta = model_from_checkpoint(SHIPPED_MODEL_FILE, device)
                result = (model, f"trained {model.cfg.name} model (step {meta['step']}, {SHIPPED_MODEL_FILE.name})")
            except (FileFormatError, OSError, ValueError, KeyError) as e:
                log.warning("the trained model %s could not be loaded: %s", SHIPPED_MODEL_FILE, e)
        _SHIPPED["model"] = result
    return _SHIPPED["model"]


def model_config_of(path: str | os.PathLike) -> ModelConfig:
    """The checkpoint's model config, checked like a YAML config (sizes included) and with no path to another file
    (see `stored_model_config`); the header is checked against the file first, so nothing is built for a
    truncated or foreign file."""
    meta = read_checkpoint_meta(path)
    try:
        return stored_model_config(meta["config"]["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise FileFormatError(f"{path}: checkpoint header has no usable model config ({e})") from e


def stored_crop_sizes(meta: dict, path: str | os.PathLike) -> tuple[int, int]:
    """(crop_size, face_size) the checkpoint was trained with, checked like the training YAML's `data` section
    (defaults where the header has none)."""
    train = meta.get("config", {}).get("train", {}) if isinstance(meta.get("config"), dict) else {}
    data = train.get("data", {}) if isinstance(train, dict) else {}
    data = data if isinstance(data, dict) else {}
    try:
        cfg = from_dict(DataConfig, {k: data[k] for k in ("crop_size", "face_size") if k in data})
    except ValueError as e:
        raise FileFormatError(f"{path}: checkpoint header has an unusable training crop size ({e})") from e
    return cfg.crop_size, cfg.face_size


def model_from_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[LCAModel, dict]:
    """The trained model (EMA weights when present) and the checkpoint header."""
    model = LCAModel(model_config_of(path), rig_from_body_asset())
    state = load_checkpoint(path, model=model, prefer_ema=True)
    return model.to(device).eval(), state.meta


def export_model(ckpt: str | os.PathLike, out: str | os.PathLike, *, dtype: torch.dtype = torch.float16) -> Path:
    """Weights only (EMA if present), cast to `dtype`, with the same header: what the studio ships and loads."""
    model, meta = model_from_checkpoint(ckpt)
    model = model.to(dtype)
    extra = dict(meta.get("extra", {}), exported_from=str(ckpt), dtype=str(dtype).removeprefix("torch."))
    path = save_checkpoint(out, model=model, step=meta["step"], config=meta["config"], extra=extra)
    log.info("exported %s (%.1f MB)", path, Path(path).stat().st_size / 1e6)
    return path
