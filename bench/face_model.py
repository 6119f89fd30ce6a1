"""The face comparison of bench/face_model.sh: two models' head close-ups beside the ground truth for a few benchmark
identities (a PNG sheet), and their person and face PSNR side by side from two `main.py eval` results (JSON, with
the paired per-identity difference and its 95% interval).

python bench/face_model.py --old assets/default_model.safetensors --new out/face/default_model.safetensors \
    --bench data/bench-face --old-eval out/face/eval_old/eval.json --new-eval out/face/eval_new/eval.json \
    --sheet out/face/face_sheet.png --json out/face/face_compare.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.data.benchmarks import BENCHMARKS, ROLE_NOVEL_POSE, ROLE_NOVEL_VIEW, load_benchmark  # noqa: E402
from core.io import atomic_write_bytes, write_json  # noqa: E402
from core.train.checkpoint import read_checkpoint_meta  # noqa: E402
from core.train.evaluate import closeup_metrics, posed_frame, sample_identity  # noqa: E402
from core.train.export import model_from_checkpoint, stored_crop_sizes  # noqa: E402

log = logging.getLogger("face_model")


def compare(old: dict, new: dict) -> dict:
    """Per benchmark: both models' person and face PSNR over all targets, and the per-identity face (and person)
    PSNR difference new - old with a 95% interval (normal approximation over identities)."""
    out = {}
    for name, o in old["benchmarks"].items():
        n = new["benchmarks"].get(name)
        if n is None or "all" not in o or "all" not in n:
            continue
        row: dict = {"identities": o.get("identities")}
        for region in ("person", "face"):
            if region not in o["all"] or region not in n["all"]:
                continue
            row[f"{region}_psnr"] = {"old": o["all"][region]["psnr"], "new": n["all"][region]["psnr"]}
            diffs = [
                b[region]["psnr"] - a[region]["psnr"]
                for a, b in zip(o["per_identity"], n["per_identity"], strict=True)
                if region in a and region in b and math.isfinite(b[region]["psnr"] - a[region]["psnr"])
            ]
            if diffs:
                half = 1.96 * statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
                row[f"{region}_psnr"] |= {"diff": statistics.fmean(diffs), "ci95": half, "n": len(diffs)}
        out[name] = row
    return out


def _label(width: int, text: str) -> np.ndarray:
    strip = np.zeros((18, width, 3), np.uint8)
    cv2.putText(strip, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255,) * 3, 1)
    return strip.astype(np.float32) / 255.0


def face_sheet(models: dict[str, tuple], bench: Path, path: Path, *, identities: int, device: torch.device) -> int:
    """Rows of (ground truth | each model) close-ups of the first novel view and the first novel pose, for
    `identities` identities taken in turn from the benchmark sets; returns the rows drawn."""
    shards = {name: sorted((bench / name).glob("*.tar")) for name in BENCHMARKS if (bench / name).is_dir()}
    picks = [s for group in zip(*shards.values(), strict=False) for s in group][:identities]
    rows = []
    for shard in picks:
        sample = load_benchmark(shard)[0]
        if sample.closeup_size == 0:
            log.warning("%s has no head close-ups (generated without --face-size); skipped", shard)
            continue
        roles = list(sample.arrays["role"])
        frames = [roles.index(r) for r in (ROLE_NOVEL_VIEW, ROLE_NOVEL_POSE) if r in roles]  # the first of each
        tiles, text = [], [sample.key]
        for name, (model, crop_size, face_size) in models.items():
            state = sample_identity(model, sample, crop_size=crop_size, face_size=face_size, device=device)
            res = [closeup_metrics(posed_frame(model, state, sample, f, device), sample, f, device) for f in frames]
            if not tiles:
                tiles.append([r["closeup_target"] for r in res])
            tiles.append([r["closeup_pred"] for r in res])
            text.append(f"{name} {np.mean([r['face_psnr'] for r in res]):.2f} dB")
        # per view: truth, then the models (small close-ups enlarged so that the labels fit)
        row = np.concatenate([np.concatenate([t[v] for t in tiles], 1) for v in range(len(tiles[0]))], 1)
        up = max(1, -(-128 // sample.closeup_size))
        row = row.repeat(up, 0).repeat(up, 1)
        rows.append(np.concatenate([_label(row.shape[1], "  ".join(text)), row], 0))
    if not rows:
        return 0
    head = _label(rows[0].shape[1], "per view: truth | " + " | ".join(models) + " (face PSNR, person only)")
    img = (np.clip(np.concatenate([head, *rows], 0), 0, 1) * 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if ok:
        atomic_write_bytes(path, png.tobytes())
    return len(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", required=True, help="the model to compare against (checkpoint)")
    p.add_argument("--new", required=True, help="the new model (checkpoint)")
    p.add_argument("--bench", type=Path, required=True, help="benchmark folder with close-ups")
    p.add_argument("--old-eval", type=Path, required=True, help="eval.json of the old model")
    p.add_argument("--new-eval", type=Path, required=True, help="eval.json of the new model")
    p.add_argument("--sheet", type=Path, required=True, help="PNG to write")
    p.add_argument("--json", type=Path, required=True, help="comparison JSON to write")
    p.add_argument("--identities", type=int, default=6)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = compare(json.loads(args.old_eval.read_text()), json.loads(args.new_eval.read_text()))
    device = torch.device(args.device)
    models = {}
    for name, ckpt in (("old", args.old), ("new", args.new)):
        crop_size, face_size = stored_crop_sizes(read_checkpoint_meta(ckpt), ckpt)
        models[name] = (model_from_checkpoint(ckpt, device)[0], crop_size, face_size)
    drawn = face_sheet(models, args.bench, args.sheet, identities=args.identities, device=device)
    result = {"old": str(args.old), "new": str(args.new), "sheet": str(args.sheet), "sheet_rows": drawn} | result
    write_json(args.json, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
