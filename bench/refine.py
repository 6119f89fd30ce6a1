"""Time `create --refine` on 8 photos: the shipped model makes an avatar, 8 views of a recoloured copy of it
(rendered through the fitted-pose path with their silhouettes as masks) stand in for 8 photos of a person, and
the avatar is refined for each step count; writes JSON with the optimisation time, time per step and the fitted
photos' person PSNR before and after.

    python bench/refine.py --steps 5 100 300 --out refine.json      # on a CUDA machine: the <= 10 s target
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.capture.references import PhotoReferences  # noqa: E402
from core.capture.refine import references_of, refine_created  # noqa: E402
from core.env import device_name, processor_name  # noqa: E402
from core.io import write_json  # noqa: E402
from core.model.avatar import Avatar  # noqa: E402
from core.model.crops import BodyEstimate  # noqa: E402
from core.raster.types import Camera  # noqa: E402
from core.train.export import shipped_model  # noqa: E402


def eight_photos(model, avatar: Avatar, size: int) -> PhotoReferences:
    """8 views around a recoloured copy of `avatar` (the 'person'), with their silhouettes as person masks."""
    dev = next(model.parameters()).device
    person = Avatar(model, avatar.state, strength=avatar.part_strength)
    tint = torch.tensor([0.7, 0.2, 0.1], device=dev)
    person._set_canonical(albedo=(avatar.state.canonical.albedo * 0.3 + tint).clamp(0, 1))
    angles = [i * 2 * math.pi / 8 for i in range(8)]
    cams = [Camera.look_at((2.6 * math.sin(a), 1.0, 2.6 * math.cos(a)), (0, 0.9, 0), width=size, height=size)
            for a in angles]  # fmt: skip
    ests = BodyEstimate.split(model.rig.neutral_params(8), cams)
    return references_of(person, ests, names=tuple(f"view{i}" for i in range(8)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 100, 300])
    ap.add_argument("--size", type=int, default=160, help="photo side in pixels")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    model, label = shipped_model()
    enc = model.cfg.encoder
    torch.manual_seed(0)
    avatar = Avatar.create(
        model, body_crops=torch.rand(1, 3, *enc.body_crop), face_crops=torch.rand(1, 3, *enc.face_crop)
    )
    refs = eight_photos(model, avatar, args.size)
    dev = next(model.parameters()).device
    device = device_name(dev) if dev.type == "cuda" else f"CPU {processor_name()}"
    rows = []
    for n in args.steps:
        t = time.perf_counter()
        _, rep = refine_created(avatar, refs, n, holdout=0)
        rows.append({"steps": n, "optimise_s": rep.seconds, "s_per_step": rep.seconds_per_step,
                     "with_scoring_s": time.perf_counter() - t, **rep.means()})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    result = {"model": label, "device": device, "photos": 8, "size": args.size, "runs": rows}
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
