"""CUDA graphs of the training step's stages: each stage's forward and backward replayed as one graph launch.

The batched step (`core.train.step.TrainStep`) runs as three stages whose inputs and outputs are tensors only
(dicts of them): the identities from the references, their posed and lit Gaussians with the regularisers, and
the losses; gsplat runs between the second and the third, eagerly (it sizes its buffers on the host, so no graph
can hold it). A stage's shapes do not change from step to step, and nothing in it waits for the device (tested),
so it can be captured. At the first training step the stages run once eagerly to record their inputs (the result
is dropped), then all three are captured on copies of those inputs, forward graphs in order and backward graphs
in reverse in one memory pool (`torch.cuda.make_graphed_callables`' scheme), and the step runs through them: a
stage whose inputs have the captured shapes is one graph launch forward and one backward instead of some
hundreds of kernel launches each.

Unlike `make_graphed_callables`, the capture here (a) tolerates other threads' CUDA calls (the data loader pins
memory while the step is captured: `capture_error_mode="thread_local"`), and (b) keeps no autograd graph of the
warm-up or capture alive afterwards (a live one ties the parameters' gradient accumulators to a stream other than
the replay's, and the autograd engine then synchronises the two on every step).

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

WARMUP_ITERS = 3  # eager passes of each stage on a side stream before the capture
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
        self.replays: dict[str, Callable[..., Any]] = {}
        self.specs: dict[str, tuple] = {}
        self.status, self.reason = "recording", ""
        self.captures = 0
        self._warned: set[str] = set()

    def eager(self, name: str, *args: Any) -> Any:
        return self.stages[name](*args)

    def __call__(self, name: str, *args: Any) -> Any:
        if self.status == "live":
            if signature(args) == self.specs[name]:
                return self.replays[name](*args)
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
        """Captures every stage on the inputs it recorded (once all have; call with no autograd graph of the
        stages' parameters alive, e.g. before the first training step). True when live."""
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
            replays = capture_stages([self.stages[n] for n in names], [self.samples[n] for n in names])
        except Exception as e:  # noqa: BLE001  (any capture failure: the eager stages still work)
            log.warning(
                "CUDA graphs of the training step failed (%s: %s); training carries on eagerly",
                type(e).__name__,
                e,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            self.off(f"capture failed: {type(e).__name__}")
            return False
        self.replays = dict(zip(names, replays, strict=True))
        self.specs = {n: signature(self.samples[n]) for n in names}
        self.samples.clear()  # the graphs hold their own references to these static inputs
        self.status, self.captures = "live", self.captures + 1
        log.info("CUDA graphs of the training step: %d stages captured (%s)", len(names), ", ".join(names))
        return True


def _graph(g: torch.cuda.CUDAGraph, pool) -> torch.cuda.graph:
    return torch.cuda.graph(g, pool=pool, capture_error_mode="thread_local")


def capture_stages(stages: list[Stage], samples: list[tuple]) -> list[Callable[..., Any]]:
    """CUDA graphs of `stages` (in the order they run) on their sample inputs -> a replaying callable per stage,
    a drop-in for the stage's forward under autograd (the scheme of `torch.cuda.make_graphed_callables`)."""
    n = len(stages)
    flat = [tuple(pytree.tree_leaves(args)) for args in samples]
    params = [tuple(s.parameters()) for s in stages]
    surfaces = [a + p for a, p in zip(flat, params, strict=True)]  # what a stage's backward differentiates by

    def grads_of(outs: tuple[Tensor, ...], surface: tuple[Tensor, ...], grad_outs) -> tuple | None:
        diff = [o for o in outs if o.requires_grad]
        wrt = [x for x in surface if x.requires_grad]
        if not diff or not wrt:
            return None
        return torch.autograd.grad(diff, wrt, grad_outputs=grad_outs, allow_unused=True)

    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up: lazy initialisation (cuBLAS, cuDNN plans) stays out of the graphs
        for stage, args, surface in zip(stages, samples, surfaces, strict=True):
            for _ in range(WARMUP_ITERS):
                outs = tuple(pytree.tree_leaves(stage(*args)))
                grads_of(outs, surface, [torch.zeros_like(o) for o in outs if o.requires_grad])
                del outs
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()

    pool = torch.cuda.graph_pool_handle()
    fwd = [torch.cuda.CUDAGraph() for _ in range(n)]
    bwd = [torch.cuda.CUDAGraph() for _ in range(n)]
    live, specs = [], []
    for stage, args, g in zip(stages, samples, fwd, strict=True):
        with _graph(g, pool):
            out = stage(*args)
        leaves, spec = pytree.tree_flatten(out)
        live.append(tuple(leaves))
        specs.append(spec)
    grad_in: list[tuple] = [()] * n
    grad_out: list[tuple] = [()] * n
    for i in reversed(range(n)):  # backward graphs in reverse, as the backward pass runs them
        gout = tuple(torch.empty_like(o) if o.requires_grad else None for o in live[i])
        grads = None
        if any(o.requires_grad for o in live[i]) and any(x.requires_grad for x in surfaces[i]):
            with _graph(bwd[i], pool):
                grads = grads_of(live[i], surfaces[i], [g for g in gout if g is not None])
        it = iter(grads or ())
        grad_in[i] = tuple(next(it) if x.requires_grad and grads is not None else None for x in surfaces[i])
        grad_out[i] = gout
    static_out = [tuple(o.detach() for o in outs) for outs in live]
    del live  # the captured autograd graphs (and their hold on the parameters' accumulators) go with these
    torch.cuda.synchronize()
    return [
        _replaying(
            fwd[i], bwd[i], surfaces[i], len(flat[i]), params[i], specs[i], static_out[i], grad_out[i], grad_in[i]
        )
        for i in range(n)
    ]


def _replaying(fwd, bwd, surface, num_args, params, spec, static_out, grad_out, grad_in) -> Callable[..., Any]:
    """One stage's graphs as an autograd function of the stage's inputs and parameters."""

    class Replay(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs: Tensor) -> tuple[Tensor, ...]:
            for i in range(num_args):  # only the passed tensors can be new; the parameters are updated in place
                if surface[i].data_ptr() != inputs[i].data_ptr():
                    surface[i].copy_(inputs[i])
            fwd.replay()
            return tuple(o.detach() for o in static_out)

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, *grads: Tensor) -> tuple[Tensor | None, ...]:
            for g, grad in zip(grad_out, grads, strict=True):
                if g is not None and grad is not None and g.data_ptr() != grad.data_ptr():
                    g.copy_(grad)
            bwd.replay()
            return tuple(b.detach() if b is not None else None for b in grad_in)

    def run(*args: Any) -> Any:
        out = Replay.apply(*pytree.tree_leaves(args), *params)
        return pytree.tree_unflatten(list(out), spec)

    return run
