"""Data-parallel wrappers and whole-run state that does not depend on how many processes hold it.

DDP replicates the model; FSDP (PyTorch's `fully_shard`) shards parameters, gradients and optimiser state over
the ranks, one unit per encoder / transformer block plus the rest. Either way a checkpoint holds full tensors
under the names a single process uses (gathered with `torch.distributed.checkpoint.state_dict`), so a run saved
on G GPUs resumes on any other number, or on the CPU.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
)
from torch.distributed.tensor import DTensor, distribute_tensor

from core.io import FileFormatError
from core.train.distributed import DistInfo

log = logging.getLogger(__name__)

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def fsdp_units(model: nn.Module) -> Iterator[nn.Module]:
    """The blocks that get their own FSDP unit (gathered just before they run, freed after)."""
    for stack in ("encoder", "transformer"):
        blocks = getattr(getattr(model, stack, None), "blocks", None)
        if isinstance(blocks, nn.ModuleList):
            yield from blocks


def wrap(step_mod: nn.Module, model: nn.Module, dist: DistInfo, *, fsdp: bool) -> nn.Module:
    """`step_mod` (which owns `model`) ready for data-parallel training on `dist`'s ranks.

    FSDP shards in place (the optimiser must be built afterwards, on the sharded parameters); DDP wraps."""
    if not dist.enabled:
        return step_mod
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        units = list(fsdp_units(model))
        for block in units:
            fully_shard(block)
        fully_shard(step_mod)
        log.info("FSDP: %d block units + root over %d ranks", len(units), dist.world_size)
        return step_mod
    ddp = nn.parallel.DistributedDataParallel
    # The model's buffers are constants (rig, templates), identical on every rank: no sync before each forward.
    # (`forward_sync_buffers` replaces `broadcast_buffers` in newer PyTorch.)
    no_sync = (
        "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp).parameters else "broadcast_buffers"
    )
    return ddp(
        step_mod,
        device_ids=[dist.local_rank] if dist.device.type == "cuda" else None,
        find_unused_parameters=True,  # e.g. the lighting code: no training data carries one
        gradient_as_bucket_view=True,
        **{no_sync: False},
    )


def _is_dtensor(t: torch.Tensor) -> bool:
    return isinstance(t, DTensor)


def local_part(t: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a tensor under FSDP; the tensor itself otherwise."""
    return t.to_local() if isinstance(t, DTensor) else t


def _full(t: torch.Tensor) -> torch.Tensor:
    return (t.full_tensor() if _is_dtensor(t) else t).detach().cpu()


class ParamEMA:
    """Exponential moving average of a model's trainable parameters, kept in the parameters' own layout (local
    shards under FSDP); frozen parameters never change, so they are their own average and are not copied.
    `state_dict()` has the keys `torch.optim.swa_utils.AveragedModel` writes (`module.<name>`, `n_averaged`),
    with full tensors; a collective under FSDP, so every rank calls it."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model, self.decay = model, decay
        self.trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.shadow = {n: p.detach().clone() for n, p in self.trained}
        self.n_averaged = 0

    @torch.no_grad()
    def update(self) -> None:
        shadow = [local_part(self.shadow[n]) for n, _ in self.trained]  # this rank's shards: one fused update
        params = [local_part(p.detach()) for _, p in self.trained]
        if self.n_averaged == 0:
            torch._foreach_copy_(shadow, params)
        else:
            torch._foreach_lerp_(shadow, params, 1.0 - self.decay)
        self.n_averaged += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {f"module.{n}": _full(self.shadow.get(n, p)) for n, p in self.model.named_parameters()}
        for mod_name, mod in self.model.named_modules():  # persistent buffers, as a state dict has them
            for n, b in mod._buffers.items():
                if b is not None and n not in mod._non_persistent_buffers_set:
                    out[f"module.{mod_name + '.' if mod_name else ''}{n}"] = b.detach().cpu()
        out["n_averaged"] = torch.tensor(self.n_averaged, dtype=torch.long)
        return out

    @torch.no_grad()
    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        missing = [n for n in self.shadow if f"module.{n}" not in sd]
        if missing:
            raise KeyError(f"EMA state lacks {missing[:3]}")
        for n, e in self.shadow.items():
            e.copy_(like_param(sd[f"module.{n}"], e))
        self.n_averaged = int(sd.get("n_averaged", torch.tensor(1)))


def grad_norm_clip(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip the global gradient norm (over all ranks' shards under FSDP); returns the norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return norm.full_tensor() if _is_dtensor(norm) else norm


def full_model_state(step_mod: nn.Module, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """The model's full state dict on the CPU (rank 0 only under FSDP; a collective there)."""
    sd = get_model_state_dict(step_mod, options=_FULL)
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def full_optimizer_state(step_mod: nn.Module, opt: torch.optim.Optimizer) -> tuple[dict, list[str]]:
    """The optimiser's full state in torch's own form (parameters numbered in group order) and the parameter
    names in that order. Rank 0 only under FSDP (empty elsewhere); a collective there."""
    osd = get_optimizer_state_dict(step_mod, opt, options=_FULL)
    if not osd or not osd.get("param_groups"):
        return {}, []
    names = [n for g in osd["param_groups"] for n in g["params"]]
    index = {n: i for i, n in enumerate(names)}
    return {"state": {index[n]: st for n, st in osd["state"].items()}, "param_groups": _numbered(osd)}, names


def _numbered(sd: dict) -> list[dict]:
    """The param groups of `sd` with their parameters numbered 0, 1, ... in group order (torch's own form)."""
    groups, start = [], 0
    for g in sd["param_groups"]:
        groups.append({**g, "params": list(range(start, start + len(g["params"])))})
        start += len(g["params"])
    return groups


def like_param(full: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """`full` laid out as `param` is: this rank's shard of it under FSDP (every rank holds the full tensor, so no
    communication), else `full` on the parameter's device."""
    if _is_dtensor(param):
        full = full.to(param.device_mesh.device_type)
        return distribute_tensor(full, param.device_mesh, param.placements, src_data_rank=None)
    return full.to(param.device)


def load_full_optimizer_state(
    step_mod: nn.Module, opt: torch.optim.Optimizer, sd: dict, names: list[str] | None = None
) -> None:
    """Load a full optimiser state (torch's numbered form, as `full_optimizer_state` returns) into `opt`,
    whatever the number of ranks it was saved from; every rank passes the same full state. Moments are matched
    to parameters by name and cut to each rank's shard under FSDP."""
    fqn = {id(p): n for n, p in step_mod.named_parameters()}
    current = [p for g in opt.param_groups for p in g["params"]]
    here = [fqn[id(p)] for p in current]
    regrouped = [len(g["params"]) for g in sd["param_groups"]] != [len(g["params"]) for g in opt.param_groups]
    if names is None:  # older checkpoints: numbered in the order this optimiser lists its parameters
        if regrouped:
            raise FileFormatError(
                "the checkpoint's optimiser has other parameter groups than this run (another config?)"
            )
        names = here
    if sorted(names) != sorted(here):
        missing, extra = sorted(set(here) - set(names)), sorted(set(names) - set(here))
        raise FileFormatError(
            f"the checkpoint's optimiser state does not fit this run (missing {missing[:3]}, unexpected {extra[:3]})"
        )
    saved = {names[int(i)]: st for i, st in sd["state"].items()}
    state = {}
    for i, (name, p) in enumerate(zip(here, current, strict=True)):
        if name in saved:
            state[i] = {
                k: like_param(v, p) if torch.is_tensor(v) and v.dim() > 0 else v for k, v in saved[name].items()
            }
    if regrouped:  # an older run kept a group per depth: its moments, matched by name, join this run's groups
        log.info("the checkpoint's optimiser groups its parameters otherwise; its moments load into this run's groups")
    opt.load_state_dict(
        {"state": state, "param_groups": _numbered({"param_groups": opt.param_groups} if regrouped else sd)}
    )
