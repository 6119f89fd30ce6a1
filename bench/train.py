"""Training throughput: identities per second, the step split into data, forward, backward and optimiser, and
on a GPU the share of the step the GPU is busy and the kernel launches per step (torch.profiler) -> JSON.

    python bench/train.py configs/train/pretrain-base.yaml --steps 30 --out bench/results/train-<device>.json
    python bench/train.py configs/train/pretrain-base.yaml --set compile=false per_target=true   # the old step
    python bench/train.py configs/train/pretrain-base.yaml --set graphs=true   # stages as CUDA graphs

Uses the config's data (generated first if the config asks for synthetic data) and model; times each phase
with a device synchronisation around it, after warm-up steps (which also compile, with `compile` on). Then
profiles `--profile` more steps: kernels (and copies) on the GPU per step, their summed time against the
median step time (GPU busy share; one stream, so kernels do not overlap), and the costliest kernels; and one
more step under `torch.cuda.set_sync_debug_mode` for the places where the host waits for the GPU. Kernels are
counted twice: as the GPU ran them (`kernel_launches_per_step`, kernels inside a replayed CUDA graph included)
and as the host launched them (`host_launches_per_step`: a graph replay is one launch; `graphs=true`). Last,
steps run as the training loop runs them (`loop_ms_per_step`: no phase timing, the loss read back each step).
`bench/train_ops.py` counts the same step's operations on a CPU (a machine without a GPU).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.data.loader import to_float_images  # noqa: E402
from core.env import device_name  # noqa: E402
from core.io import write_json  # noqa: E402
from core.train.cli import parse_overrides  # noqa: E402
from core.train.config import load_train_config  # noqa: E402
from core.train.distributed import init_distributed  # noqa: E402
from core.train.loop import _batches, build_optimizer, build_step, ensure_data  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# The runtime and driver calls by which the host starts work on the GPU (profiler events on the CPU side).
HOST_LAUNCHES = {
    "cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx", "cudaLaunchCooperativeKernel",
    "cudaGraphLaunch", "cuGraphLaunch",
}  # fmt: skip
HOST_COPIES = {"cudaMemcpyAsync", "cudaMemsetAsync", "cudaMemcpy", "cudaMemset"}


def profile_steps(one_step, steps: int, step_ms: float) -> dict:
    """Kernel launches and GPU time per step over `steps` profiled steps; GPU busy = GPU time / median step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for _ in range(steps):
            one_step()
    kernels: dict[str, list[float]] = {}
    host = collections.Counter()  # the host's launch calls: a replayed CUDA graph is one, however many kernels
    for e in p.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            kernels.setdefault(e.name, []).append(e.time_range.elapsed_us())  # microseconds
        elif e.name in HOST_LAUNCHES or e.name in HOST_COPIES:
            host[e.name] += 1
    copies = {n: v for n, v in kernels.items() if n.startswith(("Memcpy", "Memset"))}
    launches = sum(len(v) for n, v in kernels.items() if n not in copies)
    gpu_us = sum(sum(v) for v in kernels.values())
    top = sorted(kernels.items(), key=lambda kv: -sum(kv[1]))[:12]
    return {
        "profiled_steps": steps,
        "kernel_launches_per_step": launches / steps,  # kernels the GPU ran (those inside graphs too)
        "host_launches_per_step": sum(v for k, v in host.items() if k in HOST_LAUNCHES) / steps,
        "host_copies_per_step": sum(v for k, v in host.items() if k in HOST_COPIES) / steps,
        "host_launch_calls_per_step": {k: v / steps for k, v in sorted(host.items())},
        "copies_per_step": sum(len(v) for v in copies.values()) / steps,
        "gpu_ms_per_step": gpu_us / 1e3 / steps,
        "gpu_busy_share": gpu_us / 1e3 / steps / step_ms,
        "top_kernels_ms_per_step": {n[:120]: round(sum(v) / 1e3 / steps, 3) for n, v in top},
    }


def host_waits(one_step) -> dict:
    """The operations of one step that make the host wait for the GPU (`torch.cuda.set_sync_debug_mode`), with
    where they come from: gsplat's own (it sizes its buffers on the host), the body's SVD, anything else is new."""
    import warnings

    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            one_step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    places = [f"{Path(w.filename).name}:{w.lineno}" for w in seen if "synchroniz" in str(w.message)]
    return {"count": len(places), "where": dict(collections.Counter(places))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=None)
    ap.add_argument("--profile", type=int, default=5, help="steps profiled after the timed ones (0: none)")
    args = ap.parse_args(argv)

    cfg = load_train_config(args.config, parse_overrides(args.set))
    dist = init_distributed(cfg.device)
    dev = dist.device
    root = ensure_data(cfg, dist)
    torch.manual_seed(cfg.seed)  # the same initial weights in every variant: their loss curves compare
    model, step = build_step(cfg, dev)
    opt = build_optimizer(cfg, model)
    batches = _batches(cfg, root, 0, 0)
    times: dict[str, list[float]] = {"data": [], "forward": [], "backward": [], "optimiser": [], "step": []}
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    losses: list[float] = []

    def one_step() -> tuple[float, ...]:
        t0 = time.perf_counter()
        _, _, batch = next(batches)
        batch = to_float_images(batch, dev)
        _sync(dev)
        t1 = time.perf_counter()
        out = step(batch)
        _sync(dev)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        _sync(dev)
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        _sync(dev)
        t4 = time.perf_counter()
        losses.append(float(out.loss.detach()))
        return t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0

    t_start = time.perf_counter()
    for _ in range(args.warmup):
        one_step()
    warmup_s = time.perf_counter() - t_start
    for _ in range(args.steps):
        for k, v in zip(times, one_step(), strict=True):
            times[k].append(v * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    prof = profile_steps(one_step, args.profile, med["step"]) if dev.type == "cuda" and args.profile > 0 else {}
    if dev.type == "cuda":

        def plain_step() -> torch.Tensor:  # the step without the phase timing's synchronisations -> its loss
            _, _, batch = next(batches)
            out = step(to_float_images(batch, dev))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            return out.loss.detach()

        prof["host_waits_per_step"] = host_waits(plain_step)

        # as the training loop runs: no phase timing, one wait for the device per step (the loss read back)
        _sync(dev)
        t0 = time.perf_counter()
        n_loop = max(args.steps, 10)
        for _ in range(n_loop):
            losses.append(float(plain_step()))
        loop_ms = (time.perf_counter() - t0) * 1e3 / n_loop
        prof["loop_ms_per_step"] = loop_ms  # no phase timing: what a training run gets
        prof["loop_identities_per_s"] = cfg.batch_size * 1e3 / loop_ms
        prof["loop_gpu_busy_share"] = prof.get("gpu_ms_per_step", 0.0) / loop_ms
    result = {
        "device": device_name(dev),
        "torch": torch.__version__,
        "config": args.config,
        "model": cfg.model,
        "batch_size": cfg.batch_size,
        "num_refs": cfg.data.num_refs,
        "num_targets": cfg.data.num_targets,
        "render_size": cfg.data.render_size,
        "step_path": "per-target" if cfg.per_target else "batched",
        "compiled": bool(getattr(step, "compiled", False)),
        "graphs": step._stages.status + (f" ({step._stages.reason})" if step._stages.reason else ""),
        "amp": cfg.amp,
        "steps_timed": args.steps,
        "warmup_steps": args.warmup,
        "warmup_s": warmup_s,
        "median_ms": med,
        "min_step_ms": min(times["step"]),
        "identities_per_s": cfg.batch_size * 1e3 / med["step"],
        "samples_per_s": cfg.batch_size * 1e3 / med["step"],
        "data_wait_share": med["data"] / med["step"],
        **prof,
        "losses": losses,
        "peak_gpu_mem_gb": torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
