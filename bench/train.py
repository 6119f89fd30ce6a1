"""Training throughput: samples per second and the step split into data, forward, backward and optimiser -> JSON.

    python bench/train.py configs/train/pretrain-base.yaml --steps 30 --out bench/results/train-<device>.json

Uses the config's data (generated first if the config asks for synthetic data) and model; times each phase
with a device synchronisation around it, after a few warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.data.loader import to_float_images  # noqa: E402
from core.train.cli import parse_overrides  # noqa: E402
from core.train.config import load_train_config  # noqa: E402
from core.train.distributed import init_distributed  # noqa: E402
from core.train.loop import _batches, build_optimizer, build_step, ensure_data  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    cfg = load_train_config(args.config, parse_overrides(args.set))
    dist = init_distributed(cfg.device)
    dev = dist.device
    root = ensure_data(cfg, dist)
    model, step = build_step(cfg, dev)
    opt = build_optimizer(cfg, model)
    batches = _batches(cfg, root, 0, 0)
    times: dict[str, list[float]] = {"data": [], "forward": [], "backward": [], "optimiser": [], "step": []}
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for i in range(args.warmup + args.steps):
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
        if i >= args.warmup:
            for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
                times[k].append(v * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "config": args.config,
        "model": cfg.model,
        "batch_size": cfg.batch_size,
        "num_refs": cfg.data.num_refs,
        "num_targets": cfg.data.num_targets,
        "render_size": cfg.data.render_size,
        "steps_timed": args.steps,
        "median_ms": med,
        "samples_per_s": cfg.batch_size * 1e3 / med["step"],
        "data_wait_share": med["data"] / med["step"],
        "peak_gpu_mem_gb": torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
