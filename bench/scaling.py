"""Multi-GPU scaling of training on one host -> JSON (and a plot).

    python bench/scaling.py throughput configs/train/pretrain-base.yaml --gpus 1 2 4 --out bench/results/scaling.json
    python bench/scaling.py equivalence configs/train/pretrain-base.yaml --gpus 2 --out bench/results/scaling_eq.json
    python bench/scaling.py plot bench/results/scaling_*.json --png docs/scaling.png

`throughput` runs `torch.distributed.run --nproc_per_node=G main.py train CONFIG` for each G with the same batch
per GPU (weak scaling) and reads samples per second (median over the steps after --warmup), the efficiency
against one GPU ((samples/s at G) / (G x samples/s at 1)) and the peak memory of the fullest GPU.

`equivalence` checks that data parallelism does not change the training: the same global batch on 1 GPU, on G
GPUs with DDP and on G GPUs with FSDP gives the same losses for the first steps (bf16 tolerance), and a run
checkpointed under FSDP on G GPUs resumes on 1 GPU where the 1-GPU run would be.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.io import write_json  # noqa: E402


def train_run(config: str, gpus: int, out: Path, name: str, sets: list[str], *, fresh: bool = True) -> list[dict]:
    """One `main.py train` under torch.distributed.run (continuing run `name` unless `fresh`); the run's
    training rows of metrics.jsonl."""
    from core.train.runs import train_command

    overrides = {"out_dir": out, "name": name, **dict(item.split("=", 1) for item in sets)}
    cmd = train_command(Path(config), overrides, nproc=gpus, fresh=fresh)
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "4")}
    print("$", " ".join(cmd[1:]), flush=True)
    res = subprocess.run(cmd, env=env, cwd=ROOT, timeout=3600, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{name} failed ({res.returncode}):\n{res.stderr[-4000:]}")
    return read_rows(out / name)


def read_rows(run: Path) -> list[dict]:
    from core.train.metrics import read_metrics

    return [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]


def device_name() -> tuple[str, int]:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("bench/scaling.py measures GPUs; no CUDA device here")
    return torch.cuda.get_device_name(0), torch.cuda.device_count()


def throughput(args: argparse.Namespace) -> dict:
    name, count = device_name()
    steps = args.warmup + args.steps
    out = Path(tempfile.mkdtemp(prefix="scaling-"))
    runs = []
    for g in args.gpus:
        if g > count:
            print(f"skipping {g} GPUs: this host has {count}")
            continue
        fsdp = args.fsdp and g > 1
        sets = [
            f"steps={steps}", "log_every=1", f"ckpt_every={steps}", f"sample_every={steps}", "eval_every=0",
            f"batch_size={args.batch}", "global_batch=0", f"fsdp={str(fsdp).lower()}", *args.set,
        ]  # fmt: skip
        rows = train_run(args.config, g, out, f"g{g}", sets)
        timed = [r for r in rows if r["step"] >= args.warmup]
        step_s = statistics.median(r["step_s"] for r in timed)
        runs.append(
            {
                "gpus": g,
                "fsdp": fsdp,
                "batch_per_gpu": args.batch,
                "step_s": step_s,
                "samples_per_s": args.batch * g / step_s,
                "gpu_mem_gb": max(r.get("gpu_mem_gb", 0.0) for r in rows),
                **{k: statistics.median(r.get(k, 0.0) for r in timed) for k in ("data_s", "forward_s", "backward_s")},
                "loss_first": rows[0]["loss"],
                "loss_last": rows[-1]["loss"],
            }
        )
        print(json.dumps(runs[-1]), flush=True)
    base = next((r for r in runs if r["gpus"] == 1), None)
    for r in runs:
        r["efficiency"] = r["samples_per_s"] / (r["gpus"] * base["samples_per_s"]) if base else None
    return {"device": name, "gpus_on_host": count, "config": args.config, "overrides": args.set, "runs": runs}


def equivalence(args: argparse.Namespace) -> dict:
    name, count = device_name()
    g = max(x for x in args.gpus if x <= count)
    n = args.steps
    out = Path(tempfile.mkdtemp(prefix="scaling-eq-"))
    common = ["log_every=1", "sample_every=1000", "eval_every=0", f"global_batch={args.batch * g}", *args.set]
    ref = read_losses(train_run(args.config, 1, out, "one", [f"steps={2 * n}", f"ckpt_every={2 * n}", *common]))
    ddp = read_losses(train_run(args.config, g, out, "ddp", [f"steps={n}", f"ckpt_every={n}", *common]))
    fsdp_sets = [f"ckpt_every={n}", "fsdp=true", *common]
    fsdp = read_losses(train_run(args.config, g, out, "fsdp", [f"steps={n}", *fsdp_sets]))
    resumed = read_losses(train_run(args.config, 1, out, "fsdp", [f"steps={2 * n}", *fsdp_sets], fresh=False))

    def rel(a: list[float], b: list[float]) -> float:
        return max(abs(x - y) / abs(y) for x, y in zip(a, b, strict=True))

    result = {
        "device": name,
        "gpus": g,
        "global_batch": args.batch * g,
        "steps": n,
        "loss_1gpu": ref,
        "loss_ddp": ddp,
        "loss_fsdp": fsdp,
        "loss_fsdp_resumed_on_1gpu": resumed,
        "max_rel_diff_ddp": rel(ddp, ref[:n]),
        "max_rel_diff_fsdp": rel(fsdp, ref[:n]),
        "max_rel_diff_resumed": rel(resumed[n:], ref[n:]),
    }
    result["within_tolerance"] = all(result[k] <= args.tolerance for k in result if k.startswith("max_rel"))
    result["tolerance"] = args.tolerance
    return result


def read_losses(rows: list[dict]) -> list[float]:
    return [r["loss"] for r in rows]


def plot(paths: list[Path], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [json.loads(p.read_text()) for p in paths]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    top = 1
    for res in results:
        runs = res["runs"]
        gs = [r["gpus"] for r in runs]
        top = max(top, *gs)
        label = f"{Path(res['config']).stem} ({'FSDP' if any(r['fsdp'] for r in runs) else 'DDP'})" + (
            f", {res['label']}" if res.get("label") else ""
        )
        ax.plot(gs, [r["samples_per_s"] for r in runs], "o-", label=label)
        base = runs[0]["samples_per_s"] / runs[0]["gpus"]
        ax.plot(gs, [base * g for g in gs], ":", color="grey")
        for r in runs:
            ax.annotate(f"{r['efficiency']:.0%}", (r["gpus"], r["samples_per_s"]), textcoords="offset points",
                        xytext=(4, -12))  # fmt: skip
    ax.set_xlabel("GPUs (one host)")
    ax.set_ylabel("training samples / s")
    ax.set_xticks(range(1, top + 1))
    ax.set_title(f"Data-parallel scaling on {results[0]['device']}\n(dotted: linear; labels: efficiency)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    print(f"wrote {png}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd in ("throughput", "equivalence"):
        p = sub.add_parser(cmd)
        p.add_argument("config")
        p.add_argument("--gpus", type=int, nargs="+", default=[1, 2, 4, 8])
        p.add_argument("--batch", type=int, default=4, help="samples per GPU")
        p.add_argument("--steps", type=int, default=30, help="timed steps (equivalence: steps compared)")
        p.add_argument("--warmup", type=int, default=10)
        p.add_argument("--fsdp", action="store_true", help="shard with FSDP on more than one GPU")
        p.add_argument("--tolerance", type=float, default=0.02, help="largest relative loss difference (bf16)")
        p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
        p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("plot")
    p.add_argument("json", type=Path, nargs="+", help="throughput results (one line each)")
    p.add_argument("--png", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "plot":
        plot(args.json, args.png)
        return 0
    result = throughput(args) if args.cmd == "throughput" else equivalence(args)
    write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0 if result.get("within_tolerance", True) else 1


if __name__ == "__main__":
    sys.exit(main())
