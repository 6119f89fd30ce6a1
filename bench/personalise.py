"""Finding (4): feed-forward against an independent per-subject method, from the same 8 reference frames.

Three arms per held-out identity, each scored on the identity's novel views and poses (person-only PSNR / SSIM / L1
as the headline, whole-frame beside them) and timed:
  feed-forward        one forward pass of the model;
  per-subject         Gaussians optimised from the body template (default Gaussians on the template's anchors,
                      shaped by the estimated body shape; no feed-forward network) for --baseline-steps steps on
                      the reference frames, through their estimated bodies and cameras (`template_state`);
  feed-forward + refinement   the feed-forward avatar refined for --steps steps the same way.
Writes every identity's values (the unit of the confidence intervals `bench/findings.py` computes) and the means.

python bench/personalise.py assets/default_model.safetensors --count 32 --steps 300 --baseline-steps 2000
python bench/personalise.py MODEL --count 2 --resolution 48 --steps 20 --baseline-steps 60   # a CPU-small check
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from core.data.benchmarks import BENCHMARKS, load_benchmark, write_benchmark  # noqa: E402
from core.data.synth import SynthConfig  # noqa: E402
from core.env import device_name  # noqa: E402
from core.io import write_json  # noqa: E402
from core.train.evaluate import (  # noqa: E402
    evaluate_state,
    metric_keys,
    sample_identity,
    template_model,
    template_state,
)
from core.train.export import model_from_checkpoint  # noqa: E402
from core.train.refine_frames import personalise_sample  # noqa: E402

log = logging.getLogger("bench.personalise")
ARMS = ("feed_forward", "per_subject", "feed_forward_refined")


def _means(res: dict) -> dict:
    """{"person": {...}, "frame": {...}} means over one identity's targets (an `evaluate_state` result)."""
    out: dict = {"person": {}, "frame": {}}
    for k in metric_keys():
        region, metric = k.split("_", 1)
        out[region][metric] = statistics.mean(res[k])
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_identity(model, template, sample, args, device) -> dict:
    """The three arms on one benchmark identity: metrics, seconds and the optimisation's first and last loss."""
    row: dict = {"key": sample.key}
    _sync(device)
    t0 = time.perf_counter()
    state = sample_identity(model, sample, crop_size=args.crop_size, face_size=args.face_size, device=device)
    _sync(device)
    row["feed_forward"] = _means(evaluate_state(model, state, sample, device=device)) | {
        "seconds": time.perf_counter() - t0
    }
    t0 = time.perf_counter()
    start = template_state(model, template, sample, device=device)
    fitted, losses = personalise_sample(
        template, start, sample, steps=args.baseline_steps, device=device, lr=args.baseline_lr, acap_weight=0.0
    )
    _sync(device)
    row["per_subject"] = _means(evaluate_state(template, fitted, sample, device=device)) | {
        "seconds": time.perf_counter() - t0, "loss_first": losses[0], "loss_last": losses[-1],
    }  # fmt: skip
    t0 = time.perf_counter()
    refined, losses = personalise_sample(model, state, sample, steps=args.steps, device=device)
    _sync(device)
    row["feed_forward_refined"] = _means(evaluate_state(model, refined, sample, device=device)) | {
        "seconds": time.perf_counter() - t0 + row["feed_forward"]["seconds"],
        "loss_first": losses[0], "loss_last": losses[-1],
    }  # fmt: skip
    return row


def summarise(rows: list[dict]) -> dict:
    """Means over identities per arm: person and frame metrics and seconds."""
    out = {}
    for arm in ARMS:
        out[arm] = {
            region: {m: statistics.mean(r[arm][region][m] for r in rows) for m in rows[0][arm][region]}
            for region in ("person", "frame")
        } | {"seconds": statistics.mean(r[arm]["seconds"] for r in rows)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument(
        "--bench-root", default=None, help="held-out sets (default: the user data folder's data/benchmarks)"
    )
    ap.add_argument("--count", type=int, default=32, help="identities per benchmark")
    ap.add_argument("--resolution", type=int, default=192)
    ap.add_argument("--steps", type=int, default=300, help="refinement steps of the feed-forward avatar")
    ap.add_argument("--baseline-steps", type=int, default=2000, help="steps of the per-subject optimisation")
    ap.add_argument("--baseline-lr", type=float, default=1e-2)
    ap.add_argument("--crop-size", type=int, default=192)
    ap.add_argument("--face-size", type=int, default=96)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--out", type=Path, default=None, help="default: the user data folder's runs/personalise.json")
    args = ap.parse_args(argv)
    from core.paths import user_data_dir

    args.bench_root = args.bench_root or str(user_data_dir("data", "benchmarks"))
    args.out = args.out or user_data_dir("runs") / "personalise.json"
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    model, meta = model_from_checkpoint(args.checkpoint, device)
    model = model.float().eval()
    template = template_model(model)
    cfg = SynthConfig(width=args.resolution, height=args.resolution)
    result: dict = {
        "bench": "personalise", "device": device_name(), "checkpoint": str(args.checkpoint),
        "steps": args.steps, "baseline_steps": args.baseline_steps, "baseline_lr": args.baseline_lr,
        "resolution": args.resolution, "headline": "person: inside the target's person mask", "benchmarks": {},
    }  # fmt: skip
    for name in BENCHMARKS:
        rows = []
        for path in tqdm(write_benchmark(Path(args.bench_root), name, args.count, cfg, progress=True), desc=name):
            for sample in load_benchmark(path):
                rows.append(run_identity(model, template, sample, args, device))
                brief = {a: round(rows[-1][a]["person"]["psnr"], 2) for a in ARMS}
                log.info("%s %s: person PSNR %s", name, sample.key, brief)
        result["benchmarks"][name] = summarise(rows) | {"identities": len(rows), "per_identity": rows}
    write_json(args.out, result)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
