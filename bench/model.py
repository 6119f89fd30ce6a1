"""Benchmark of the LCA model: parameters, `create` time (8 images) and `drive` time, peak memory; writes JSON.

python bench/model.py --config base --out runs/bench_model.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time

import torch

from core.env import device_name
from core.io import write_json
from core.model.avatar import Avatar
from core.model.config import load_model_config
from core.model.model import LCAModel
from core.model.rig import BodyRig, rig_from_body_asset, toy_rig

log = logging.getLogger("bench.model")


def load_rig() -> tuple[BodyRig, str]:
    """The project's body rig when `core.body` offers one, else the procedural toy rig (same structure)."""
    try:
        return rig_from_body_asset(), "body asset"
    except (ImportError, FileNotFoundError, OSError) as e:
        log.warning("body asset unavailable (%s); using the toy rig", e)
        return toy_rig(rings=64, segments=48, num_expressions=52), "toy rig"


def _timer(fn, device: torch.device, reps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="base")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="bfloat16", help="autocast dtype of create")
    ap.add_argument("--out", default=None, help="default: the user data folder's runs/bench_model.json")
    args = ap.parse_args()
    from core.paths import user_data_dir

    args.out = args.out or str(user_data_dir("runs") / "bench_model.json")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    cfg = load_model_config(args.config)
    rig, rig_name = load_rig()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = LCAModel(cfg, rig).to(device).eval()
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    n_drive = sum(v.numel() for v in model.drive_state_dict().values())
    body = torch.rand(args.images, 3, *cfg.encoder.body_crop, device=device)
    face = torch.rand(args.images, 3, *cfg.encoder.face_crop, device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")
    holder: dict = {}

    def create() -> None:
        with amp:
            holder["av"] = Avatar.create(model, body_crops=body, face_crops=face)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    create_ms = _timer(create, device, args.reps, warmup=3)
    av: Avatar = holder["av"]
    av = Avatar(model, av.state.map(lambda v: v.float()))
    J, E = rig.num_joints, rig.num_expressions
    g = torch.Generator(device="cpu").manual_seed(0)
    poses = [(torch.randn(J, 3, generator=g) * 0.2).to(device) for _ in range(8)]
    expr = torch.rand(E, generator=g).to(device)
    gaze = torch.tensor([0.1, 0.05], device=device)
    i = [0]

    def drive() -> None:
        i[0] += 1
        holder["g"] = av.decode(poses[i[0] % len(poses)], expr, gaze)

    drive_ms = _timer(drive, device, args.reps * 5, warmup=5)  # CUDA graphs on a GPU (Avatar's default)
    os.environ["LCA_CUDA_GRAPHS"] = "0"
    eager_ms = _timer(drive, device, args.reps * 5, warmup=5)
    os.environ.pop("LCA_CUDA_GRAPHS")
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    result = {
        "bench": "model",
        "config": cfg.name,
        "device": device_name(),
        "torch": torch.__version__,
        "rig": rig_name,
        "joints": J,
        "images": args.images,
        "anchors": cfg.tokens.num_anchors,
        "gaussians": holder["g"].num,
        "parameters": n_params,
        "drive_parameters": n_drive,
        "create_dtype": args.dtype,
        "build_s": round(build_s, 3),
        "create_ms_median": round(statistics.median(create_ms), 3),
        "create_ms_min": round(min(create_ms), 3),
        "drive_ms_median": round(statistics.median(drive_ms), 3),
        "drive_ms_min": round(min(drive_ms), 3),
        "drive_cuda_graphs": device.type == "cuda",
        "drive_eager_ms_median": round(statistics.median(eager_ms), 3),
        "peak_memory_gib": None if peak is None else round(peak, 3),
    }
    log.info(json.dumps(result, indent=2))
    write_json(args.out, result)


if __name__ == "__main__":
    main()
