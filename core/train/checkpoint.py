"""Training checkpoints: model, EMA, optimiser, step and RNG states in one safetensors file (no pickle).

Written atomically, so a run killed mid-save keeps its last good checkpoint. Loading checks the model
architecture recorded in the header against the model it is loaded into and names the first mismatch.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.io import (
    FileFormatError,
    header_meta,
    inconsistent_as_format_error,
    load_tensors,
    read_safetensors_header,
    save_tensors,
)

log = logging.getLogger(__name__)
KIND = "lca-checkpoint"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointState:
    step: int
    meta: dict  # the whole JSON header (config, metrics, versions)


def _optimizer_to_tensors(opt: torch.optim.Optimizer | Mapping) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt if isinstance(opt, Mapping) else opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_state(tensors: dict[str, torch.Tensor], info: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, sc in info.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(sc)
    return {"state": state, "param_groups": info["param_groups"]}


def _optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict) -> None:
    opt.load_state_dict(_optimizer_state(tensors, info))


def _rng_tensors() -> dict[str, torch.Tensor]:
    out = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda{i}"] = s
    return out


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module | Mapping[str, torch.Tensor],
    step: int,
    config: dict,
    optimizer: torch.optim.Optimizer | Mapping | None = None,
    ema: torch.nn.Module | Mapping[str, torch.Tensor] | None = None,
    extra: dict | None = None,
    optimizer_names: list[str] | None = None,
) -> Path:
    """Write everything a run needs to resume (or the studio needs to decode) to `path`, atomically.

    `model`, `optimizer` and `ema` are modules / optimisers or their (full) state dicts; `optimizer_names`
    names the optimiser's numbered parameters (so the state loads however the next run is parallelised)."""
    model_sd = model if isinstance(model, Mapping) else model.state_dict()
    tensors = {f"model.{k}": v for k, v in model_sd.items()}
    meta: dict = {
        "format": FORMAT_VERSION,
        "step": int(step),
        "config": config,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "shapes": {k: list(v.shape) for k, v in model_sd.items()},
        "extra": extra or {},
    }
    if ema is not None:
        ema_sd = ema if isinstance(ema, Mapping) else ema.state_dict()
        tensors.update({f"ema.{k}": v for k, v in ema_sd.items()})
    if optimizer is not None:
        opt_t, opt_info = _optimizer_to_tensors(optimizer)
        tensors.update(opt_t)
        if optimizer_names is not None:
            opt_info["names"] = list(optimizer_names)
        meta["optimizer"] = opt_info
    tensors.update(_rng_tensors())
    json.dumps(meta)  # fail before touching the disk if something is not serialisable
    return save_tensors(path, tensors, meta, kind=KIND)


def check_compatible(
    meta: dict,
    model: torch.nn.Module,
    path: str | os.PathLike = "checkpoint",
    *,
    allow_missing: tuple[str, ...] = (),
) -> list[str]:
    """Raise a FileFormatError naming the first parameter whose shape differs (a checkpoint of another model).

    Parameters whose names start with one of `allow_missing` may be absent from the checkpoint (new layers that
    keep their initial values); returns those that are."""
    if meta.get("format") != FORMAT_VERSION:
        raise FileFormatError(
            f"{path}: checkpoint format {meta.get('format')} is not supported (expected {FORMAT_VERSION})"
        )
    want = {k: list(v.shape) for k, v in model.state_dict().items()}
    have = meta.get("shapes", {})
    if not isinstance(have, dict):
        raise FileFormatError(f"{path}: checkpoint header has no parameter shape table")
    missing = sorted(set(want) - set(have))
    allowed = [k for k in missing if k.startswith(allow_missing)] if allow_missing else []
    missing = [k for k in missing if k not in allowed]
    unexpected = sorted(set(have) - set(want))
    if missing or unexpected:
        raise FileFormatError(
            f"{path}: checkpoint does not match this model (missing {missing[:3]}, unexpected {unexpected[:3]}); "
            "was it trained with another model config?"
        )
    for k, shape in want.items():
        if k in have and have[k] != shape:
            raise FileFormatError(
                f"{path}: parameter {k} has shape {have[k]} in the checkpoint but {shape} in the model"
            )
    return allowed


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    ema: torch.nn.Module | None = None,
    restore_rng: bool = False,
    prefer_ema: bool = False,
    map_location: str | torch.device = "cpu",
    allow_missing: tuple[str, ...] = (),
) -> CheckpointState:
    """Restore a checkpoint into `model` (and optimiser, EMA, RNG). Strict, except that parameters named with a
    prefix in `allow_missing` may be absent (initialising a model that adds layers, e.g. `model.new_layer_prefixes`);
    those keep their initial values and are logged. Resuming a run passes none."""
    tensors, meta = load_tensors(path, kind=KIND)
    with inconsistent_as_format_error(path, "checkpoint"):
        return _restore(
            path, tensors, meta, model, optimizer, ema, restore_rng, prefer_ema, map_location, allow_missing
        )


def _restore(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    meta: dict,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    ema: torch.nn.Module | None,
    restore_rng: bool,
    prefer_ema: bool,
    map_location: str | torch.device,
    allow_missing: tuple[str, ...] = (),
) -> CheckpointState:
    new = check_compatible(meta, model, path, allow_missing=allow_missing)
    prefix = "ema.module." if prefer_ema and any(k.startswith("ema.module.") for k in tensors) else "model."
    model_sd = {k[len(prefix) :]: v.to(map_location) for k, v in tensors.items() if k.startswith(prefix)}
    if new:
        log.info("%s lacks %d new parameters; they keep their initial values: %s", path, len(new), ", ".join(new))
        model_sd.update({k: v for k, v in model.state_dict().items() if k in new})
    model.load_state_dict(model_sd)
    if ema is not None:
        ema_sd = {k[4:]: v.to(map_location) for k, v in tensors.items() if k.startswith("ema.")}
        if ema_sd:
            ema.load_state_dict(ema_sd)
        else:
            log.warning("%s has no EMA weights; EMA restarts from the model weights", path)
    if optimizer is not None and "optimizer" in meta:
        _optimizer_from_tensors(optimizer, {k: v.to(map_location) for k, v in tensors.items()}, meta["optimizer"])
    if restore_rng:
        torch.set_rng_state(tensors["rng.cpu"])
        if torch.cuda.is_available():
            states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda")]
            if len(states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(states)
    return CheckpointState(step=int(meta["step"]), meta=meta)


@dataclass(frozen=True)
class RunCheckpoint(CheckpointState):
    """A run's checkpoint with the parts that are loaded after the model is parallelised (full tensors)."""

    optimizer: dict | None = None  # torch's numbered optimiser state dict
    optimizer_names: list[str] | None = None  # the numbered parameters' names (None: older checkpoints)
    ema: dict[str, torch.Tensor] = field(default_factory=dict)  # AveragedModel-style keys


def load_run_checkpoint(
    path: str | os.PathLike, *, model: torch.nn.Module, map_location: str | torch.device = "cpu"
) -> RunCheckpoint:
    """Restore the model weights and RNG state of a run's checkpoint (strictly) and return its optimiser and EMA
    state for loading once the model is wrapped for DDP / FSDP. One read of the file."""
    tensors, meta = load_tensors(path, kind=KIND)
    with inconsistent_as_format_error(path, "checkpoint"):
        state = _restore(path, tensors, meta, model, None, None, True, False, map_location)
        info = meta.get("optimizer")
        return RunCheckpoint(
            step=state.step,
            meta=meta,
            optimizer=_optimizer_state(tensors, info) if info else None,
            optimizer_names=info.get("names") if info else None,
            ema={k[4:]: v for k, v in tensors.items() if k.startswith("ema.")},
        )


def read_checkpoint_meta(path: str | os.PathLike) -> dict:
    """The JSON header only (config, step, metrics); cheap enough for listing runs. The tensor table is checked
    against the file's size, so a truncated checkpoint is refused here, before any model is built for it."""
    return header_meta(read_safetensors_header(path), path, KIND)
