"""Feed-forward vs per-subject optimisation from the same 8 reference frames (the paper's FF vs personalised
comparison): for each held-out identity, the model's avatar is evaluated on the novel views and poses, then refined
with `core.model.personalise` for --steps steps on the reference frames and evaluated again. Writes JSON.

python bench/personalise.py assets/default_model.safetensors --count 2 --steps 300 --out runs/personalise.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core.data.benchmarks import BENCHMARKS, load_benchmark, write_benchmark  # noqa: E402
from core.data.synth import SynthConfig  # noqa: E402
from core.env import describe_environment  # noqa: E402
from core.train.evaluate import evaluate_state, personalise_sample, sample_identity  # noqa: E402
from core.train.export import model_from_checkpoint  # noqa: E402

log = logging.getLogger("bench.personalise")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--bench-root", default="data/benchmarks")
    ap.add_argument("--count", type=int, default=2, help="identities per benchmark")
    ap.add_argument("--resolution", type=int, default=192)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--crop-size", type=int, default=192)
    ap.add_argument("--face-size", type=int, default=96)
    ap.add_argument("--out", type=Path, default=Path("runs/personalise.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, meta = model_from_checkpoint(args.checkpoint, device)
    model = model.float().eval()
    cfg = SynthConfig(width=args.resolution, height=args.resolution)
    result: dict = {"bench": "personalise", "device": describe_environment()["device"], "steps": args.steps,
                    "checkpoint": str(args.checkpoint), "benchmarks": {}}  # fmt: skip
    for name in BENCHMARKS:
        rows = []
        for path in write_benchmark(Path(args.bench_root), name, args.count, cfg):
            for sample in load_benchmark(path):
                state = sample_identity(
                    model, sample, crop_size=args.crop_size, face_size=args.face_size, device=device
                )
                ff = evaluate_state(model, state, sample, device=device)
                t0 = time.perf_counter()
                refined, losses = personalise_sample(model, state, sample, steps=args.steps, device=device)
                seconds = time.perf_counter() - t0
                pers = evaluate_state(model, refined, sample, device=device)
                rows.append({
                    "ff_psnr": statistics.mean(ff["psnr"]), "ff_ssim": statistics.mean(ff["ssim"]),
                    "ff_psnr_masked": statistics.mean(ff["psnr_masked"]),
                    "personalised_psnr": statistics.mean(pers["psnr"]),
                    "personalised_ssim": statistics.mean(pers["ssim"]),
                    "personalised_psnr_masked": statistics.mean(pers["psnr_masked"]),
                    "loss_first": losses[0], "loss_last": losses[-1], "personalise_s": seconds,
                })  # fmt: skip
                log.info("%s: %s", name, json.dumps({k: round(v, 3) for k, v in rows[-1].items()}))
        result["benchmarks"][name] = {k: statistics.mean(r[k] for r in rows) for k in rows[0]} | {
            "identities": len(rows)
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
