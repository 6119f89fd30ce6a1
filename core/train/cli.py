"""`python main.py train CONFIG`: run or resume a training run (also under `torchrun`)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def parse_overrides(items: list[str]) -> dict:
    """`a.b=3` pairs -> nested dict; values parsed as YAML scalars (numbers, booleans, null, strings)."""
    from core.config import ConfigError, parse_scalar

    out: dict = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item}: {p} was given a value earlier; it cannot also have fields")
        node[parts[-1]] = parse_scalar(value, f"--set {item[:80]}")
    return out


def add_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    p.add_argument("config", help="training YAML, e.g. configs/train/pretrain-base.yaml")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields (data.root=...)")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start the run over (an earlier run in its folder moves to previous/<time>/)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")

    def run(args: argparse.Namespace) -> int:
        from core.config import ConfigError
        from core.io import FileFormatError, check_output_path
        from core.train.config import load_train_config
        from core.train.loop import train
        from core.train.runs import CONFIG_FILE

        try:
            cfg = load_train_config(args.config, parse_overrides(args.set))
            check_output_path(cfg.run_dir / CONFIG_FILE, "run folder")
            final = train(cfg, resume=not args.fresh, progress=not args.no_progress)
        except (ConfigError, FileNotFoundError, FileFormatError) as e:
            # a config that does not fit the data or the GPU count, missing data, a corrupt or foreign checkpoint
            log.error("%s", e)
            return 2
        log.info("%s", final.summary())
        return 0

    return run


def add_eval_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    p.add_argument("checkpoint", help="a training checkpoint or an exported model (.safetensors)")
    p.add_argument(
        "--bench-root", default=None,
        help="held-out sets, generated there when missing (default: the user's data folder's data/benchmarks)",
    )  # fmt: skip
    p.add_argument(
        "--count", type=int, default=32,
        help="identities per benchmark (32: enough for a confidence interval of about +-0.3 dB on a mean)",
    )  # fmt: skip
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument(
        "--face-size", type=int, default=256, metavar="N",
        help="side of the head close-ups of sets generated here (0: none); sets with close-ups also get face_psnr",
    )  # fmt: skip
    p.add_argument(
        "--out", default=None, help="folder for eval.json and eval_sheet.png (default: beside the checkpoint)"
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--real", default=None, metavar="DIR",
        help="also score real footage: a folder written by `main.py prepare video FILE --out DIR`",
    )  # fmt: skip
    p.add_argument(
        "--refine", type=int, default=0, metavar="N",
        help="with --real: also refine each source's avatar for N steps on its reference frames only (as `create "
        "--refine N` does with photos, head close-ups included) and score the refined avatar on the same held-out "
        "frames beside the feed-forward one (0: no refinement)",
    )  # fmt: skip
    p.add_argument(
        "--refine-lr", type=float, default=2e-3, metavar="LR", help="learning rate of --refine (as create's)"
    )
    p.add_argument(
        "--refine-raw-masks", action="store_true",
        help="with --refine: fit the person masks as ingested (default: trimmed to each frame's fitted body, "
        "core.capture.mask_trim; the scores use the masks as ingested either way)",
    )  # fmt: skip
    p.add_argument(
        "--sets", nargs="+", default=["wild-test", "studio-test"],
        choices=["wild-test", "studio-test", "loose-test", "none"],
        help="held-out sets to score (loose-test: identities in skirts and dresses, for the loose-garment deformer; "
        "none: only the real footage of --real)",
    )  # fmt: skip
    p.add_argument(
        "--lpips", default=None, metavar="FILE",
        help="also measure LPIPS with this TorchScript network (its weights cannot be downloaded here; see "
        "core/train/lpips.py for how to export one)",
    )  # fmt: skip

    def run(args: argparse.Namespace) -> int:
        import json
        from pathlib import Path

        import torch

        from core.io import atomic_write, check_output_path
        from core.paths import user_data_dir
        from core.train.checkpoint import read_checkpoint_meta
        from core.train.evaluate import evaluate
        from core.train.export import model_from_checkpoint, stored_crop_sizes

        device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
        out = Path(args.out) if args.out else Path(args.checkpoint).parent
        try:
            if args.count < 1 or not 16 <= args.resolution <= 4096 or not 0 <= args.face_size <= 4096:
                raise ValueError(
                    f"--count must be >= 1, --resolution in 16..4096 and --face-size in 0..4096 (got {args.count}, "
                    f"{args.resolution}, {args.face_size})"
                )
            if args.refine < 0 or not args.refine_lr > 0:
                raise ValueError(f"--refine must be >= 0 and --refine-lr > 0 (got {args.refine}, {args.refine_lr})")
            if args.real is None and (args.refine or "none" in args.sets):
                raise ValueError(
                    ("--refine" if args.refine else "--sets none") + " scores real footage only: give --real DIR "
                    "(a folder written by `main.py prepare video FILE --out DIR`)"
                )
            if "none" in args.sets and len(args.sets) > 1:
                raise ValueError(f"--sets none cannot be combined with other sets (got {' '.join(args.sets)})")
            check_output_path(out / "eval.json", "evaluation result")
            # crop as in training: checked from the header before anything is built
            crop_size, face_size = stored_crop_sizes(read_checkpoint_meta(args.checkpoint), args.checkpoint)
            model, meta = model_from_checkpoint(args.checkpoint, device)
        except (FileNotFoundError, ValueError) as e:  # FileFormatError is a ValueError
            log.error("%s", e)
            return 2
        try:
            res = evaluate(
                model,
                args.bench_root or user_data_dir("data", "benchmarks"),
                count=args.count,
                resolution=args.resolution,
                crop_size=crop_size,
                face_size=face_size,
                out_json=out / "eval.json",
                sheet=out / "eval_sheet.png",
                device=device,
                real=args.real,
                lpips=args.lpips,
                benchmarks=tuple(b for b in args.sets if b != "none"),
                closeup_size=args.face_size,
                refine_steps=args.refine,
                refine_lr=args.refine_lr,
                refine_trim=not args.refine_raw_masks,
            )
        except (FileNotFoundError, ValueError) as e:  # --real without ingested footage (checked before any other work)
            log.error("%s", e)
            return 2
        res["checkpoint"] = {"path": str(args.checkpoint), "step": meta["step"]}
        text = json.dumps(res, indent=2)
        atomic_write(out / "eval.json", lambda p: p.write_text(text))
        print(json.dumps(res["benchmarks"], indent=2))
        if "real" in res:
            from core.train.evaluate_real import format_real

            print(format_real(res["real"]))
        return 0

    return run
