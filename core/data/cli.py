"""`python main.py prepare synth|video`: generate the synthetic world, or ingest real footage into shards."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.data.shards import Sample

log = logging.getLogger(__name__)


def add_cli(
    p: argparse.ArgumentParser, *, clip_fit: Callable[[Sample, str], Sample] | None = None
) -> Callable[[argparse.Namespace], int]:
    """`clip_fit(sample, source)`: the step after each clip's landmark fit that `--silhouette-fit` runs (the body fit
    with silhouettes, core.capture.clip_fit.refit_sample, which `main.py prepare` passes; a layer above this one)."""
    sub = p.add_subparsers(dest="prepare_what", metavar="WHAT", required=True)  # synth | benchmark | video
    s = sub.add_parser("synth", help="generate wild clips and studio captures of synthetic people")
    s.add_argument("--wild", type=int, default=8, help="number of wild training clips")
    s.add_argument("--studio", type=int, default=4, help="number of studio training captures")
    s.add_argument("--test-wild", type=int, default=0, help="held-out wild-test identities")
    s.add_argument("--test-studio", type=int, default=0, help="held-out studio-test identities")
    s.add_argument("--val-wild", type=int, default=0, help="validation wild clips (split 'val': the training curve)")
    s.add_argument("--val-studio", type=int, default=0, help="validation studio captures (split 'val')")
    s.add_argument("--out", type=Path, required=True, help="output folder (resumes if it already holds shards)")
    s.add_argument("--seed", type=int, default=0, help="world seed")
    s.add_argument("--size", type=int, default=256, help="frame width and height in pixels")
    s.add_argument("--frames", type=int, default=16, help="frames per wild clip")
    s.add_argument(
        "--cameras", type=int, nargs=2, default=(8, 32), metavar=("MIN", "MAX"), help="studio cameras per capture"
    )
    s.add_argument("--detail", type=float, default=1.0, help="Gaussian count factor per identity (1.0: about 30k)")
    s.add_argument(
        "--face-size", type=int, default=256, metavar="N",
        help="side of each frame's head close-up (the frame's camera zoomed onto the head; training's face loss); "
        "0: none",
    )  # fmt: skip
    s.add_argument("--per-shard", type=int, default=4, help="samples per shard")
    s.add_argument("--workers", type=int, default=None, help="processes (default min(4, cpu count))")
    b = sub.add_parser("benchmark", help="regenerate the held-out wild-test / studio-test benchmark sets")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--count", type=int, default=4, help="identities per benchmark")
    b.add_argument("--size", type=int, default=256)
    b.add_argument("--detail", type=float, default=1.0)
    b.add_argument(
        "--face-size", type=int, default=256, metavar="N", help="side of the views' head close-ups (0: none)"
    )
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--which", choices=("wild-test", "studio-test", "both"), default="both")
    b.add_argument("--workers", type=int, default=1, help="processes generating identities at once")
    v = sub.add_parser("video", help="ingest real videos or photos into wild-clip shards")
    v.add_argument("source", type=Path, help="a video/image file or a folder of them")
    v.add_argument("--out", type=Path, required=True)
    v.add_argument("--size", type=int, default=256)
    v.add_argument("--max-frames", type=int, default=64)
    v.add_argument("--stride", type=int, default=1)
    v.add_argument(
        "--method",
        choices=("auto", "mediapipe", "coarse"),
        default="auto",
        help="body fit: mediapipe landmarks (auto when installed) or the coarse face-box fallback",
    )
    v.add_argument(
        "--silhouette-fit",
        action=argparse.BooleanOptionalAction,
        default=clip_fit is not None,
        help="after the landmark fit, refit each clip's bodies to the person masks too (one body shape and clothing "
        "allowance per clip, poses and cameras corrected; a head-and-shoulders frame, no hip seen, to its landmarks "
        "alone, the face's weighted up); logs each frame's landmark error and silhouette IoU (default: on; mediapipe "
        "fits only)",
    )

    def run(args: argparse.Namespace) -> int:
        if args.prepare_what in ("synth", "benchmark") and not 0 <= args.face_size <= 4096:
            log.error("--face-size must be 0 (no close-ups) to 4096, got %d", args.face_size)
            return 2
        if args.prepare_what == "synth":
            from core.data.generate import plan_generation, run_generation  # noqa: PLC0415
            from core.data.synth import SynthConfig  # noqa: PLC0415

            cfg = SynthConfig(
                width=args.size,
                height=args.size,
                wild_frames=args.frames,
                studio_cameras=tuple(args.cameras),
                detail=args.detail,
                closeup_size=args.face_size,
            )
            counts = {"train": {"wild": args.wild, "studio": args.studio}}
            if args.val_wild or args.val_studio:
                counts["val"] = {"wild": args.val_wild, "studio": args.val_studio}
            if args.test_wild:
                counts["wild-test"] = {"wild": args.test_wild}
            if args.test_studio:
                counts["studio-test"] = {"studio": args.test_studio}
            plan = plan_generation(args.out, counts, world_seed=args.seed, per_shard=args.per_shard, config=cfg)
            card = run_generation(plan, workers=args.workers)
            print(json.dumps({k: card[k] for k in ("counts", "resolution", "world_seed")}, indent=2))
            return 0
        if args.prepare_what == "benchmark":
            from core.data.benchmarks import BENCHMARKS, write_benchmark  # noqa: PLC0415
            from core.data.synth import SynthConfig  # noqa: PLC0415

            cfg = SynthConfig(width=args.size, height=args.size, detail=args.detail, closeup_size=args.face_size)
            for name in BENCHMARKS if args.which == "both" else (args.which,):
                paths = write_benchmark(
                    args.out, name, args.count, cfg, world_seed=args.seed, progress=True, workers=args.workers
                )
                for path in paths:
                    log.info("benchmark shard %s", path)
            return 0
        from core.data.shards import write_shard  # noqa: PLC0415
        from core.data.video import Ingestor, find_sources, read_frames, video_fps  # noqa: PLC0415

        if args.silhouette_fit and clip_fit is None:
            log.error("--silhouette-fit needs the body fit of core.capture: run it as `python main.py prepare video`")
            return 2
        failures = 0
        with Ingestor(size=args.size, method=args.method) as ingestor:
            from tqdm import tqdm  # noqa: PLC0415

            sources = list(find_sources(args.source))
            for i, src in enumerate(tqdm(sources, desc="ingesting", unit="source", dynamic_ncols=True)):
                frames = read_frames(src, max_frames=args.max_frames, stride=args.stride)
                sample, report = ingestor.ingest(frames, str(src), fps=video_fps(src) / args.stride)
                log.info(
                    "%s: %d/%d frames kept (%s fit), %d skipped",
                    src, report.frames_kept, report.frames_read, report.method, len(report.skipped),
                )  # fmt: skip
                if sample is None:
                    reasons = sorted({why for _, why in report.skipped})
                    log.error("%s: no usable frame (%s); nothing written", src, "; ".join(reasons) or "no frames")
                    failures += 1
                    continue
                if args.silhouette_fit:
                    sample = clip_fit(sample, str(src))
                write_shard(args.out / "video" / f"video-{i:05d}.tar", [sample])
        return 1 if failures else 0

    return run
