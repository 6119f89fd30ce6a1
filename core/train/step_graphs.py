"""CUDA graphs of the training step's stages: each stage's forward and backward replayed as one graph launch.

The batched step (`core.train.step.TrainStep`) runs as three stages whose inputs and outputs are tensors only
(dicts of them): the identities from the references, their posed and lit Gaussians with the regularisers, and
the losses; gsplat runs between the second and the third, eagerly (it sizes its buffers on the host, so no graph
can hold it). A stage's shapes do not change from step to step, and nothing in it waits for the device (tested),
so `torch.cuda.make_graphed_callables` can capture it: the first training step runs eagerly and keeps a copy of
every stage's inputs, the second captures the three stages on them (forward graphs in order, backward graphs in
reverse, one memory pool), and from then on a stage whose inputs have the captured shapes is one graph launch
forward and one backward instead of some hundreds of kernel launches each.

Stays eager, with the reason logged once: on a CPU, under DDP/FSDP (more than one process), when a batch's
shapes differ from the captured ones (that stage, that call), and for good when the capture fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

log = logging.getLogger(__name__)

WARMUP_ITERS = 3  # eager passes `make_graphed_callables` runs on a side stream before it captures
GRAPH_DEVICES = ("cuda",)


class Stage(nn.Module):
    """`fn` as a module whose parameters are `owner`'s (what a graph of it takes as inputs besides the tensors
    passed); a plain attribute of the step, so the step's state dict keeps the model's own names."""

    def __init__(self, fn: Callable[..., Any], owner: nn.Module | None = None) -> None:
        super().__init__()
        self.fn = fn
        if owner is not None:
            self.owner = owner

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


def signature(args: tuple) -> tuple:
    """What a capture is valid for: the arguments' structure and each tensor's shape, dtype and device."""
    leaves, spec = pytree.tree_flatten(args)
    return spec, tuple((tuple(t.shape), t.dtype, t.device) for t in leaves)


def _sample(t: Tensor) -> Tensor:
    """A stage input kept for the capture: a copy (it becomes the graph's static input) with its grad state."""
    return t.detach().clone().requires_grad_(t.requires_grad)


class StageGraphs:
    """Runs named stages eagerly while recording their inputs, then (`capture`) as CUDA graphs.

    `status`: "recording" (eager; the next `capture` graphs the stages), "live" (graphs replayed where the inputs
    match the capture), "off" (eager for good; `reason` says why)."""

    def __init__(self, stages: dict[str, Stage]) -> None:
        self.stages = dict(stages)  # in the order a step runs them
        self.samples: dict[str, tuple] = {}
        self.specs: dict[str, tuple] = {}
        self.status, self.reason = "recording", ""
        self.captures = 0
        self._warned: set[str] = set()

    def eager(self, name: str, *args: Any) -> Any:
        stage = self.stages[name]
        return type(stage).forward(stage, *args)  # the class's forward: a capture replaces the instance's

    def __call__(self, name: str, *args: Any) -> Any:
        if self.status == "live":
            if signature(args) == self.specs[name]:
                return self.stages[name](*args)
            if name not in self._warned:
                self._warned.add(name)
                log.info("stage %r: inputs of other shapes than the captured ones; that call runs eagerly", name)
        elif self.status == "recording":
            self.samples[name] = pytree.tree_map(_sample, args)
        return self.eager(name, *args)

    def off(self, reason: str) -> None:
        self.status, self.reason = "off", reason
        self.samples.clear()
        log.info("CUDA graphs of the training step: off (%s); the step runs eagerly", reason)

    def capture(self) -> bool:
        """Captures every stage on the inputs it recorded (once all have; call between steps). True when live."""
        if self.status != "recording" or set(self.samples) != set(self.stages):
            return self.status == "live"
        leaves = pytree.tree_leaves(tuple(self.samples.values()))
        if not leaves or any(t.device.type not in GRAPH_DEVICES for t in leaves):
            self.off("the step does not run on a CUDA device")
            return False
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            if torch.distributed.get_world_size() > 1:
                self.off("more than one process: DDP and FSDP hook the backward pass")
                return False
        names = list(self.stages)
        try:
            torch.cuda.make_graphed_callables(
                tuple(self.stages[n] for n in names),
                tuple(self.samples[n] for n in names),
                num_warmup_iters=WARMUP_ITERS,
                allow_unused_input=True,  # a stage uses some of its owner's parameters, not all
            )
        except Exception as e:  # noqa: BLE001  (any capture failure: the eager stages still work)
            for stage in self.stages.values():
                stage.__dict__.pop("forward", None)  # undo a partial capture
            torch.cuda.synchronize()
            log.warning(
                "CUDA graphs of the training step failed (%s: %s); training carries on eagerly", type(e).__name__, e
            )
            self.off(f"capture failed: {type(e).__name__}")
            return False
        self.specs = {n: signature(self.samples[n]) for n in names}
        self.samples.clear()  # the graphs hold their own references to these static inputs
        self.status, self.captures = "live", self.captures + 1
        log.info("CUDA graphs of the training step: %d stages captured (%s)", len(names), ", ".join(names))
        return True
