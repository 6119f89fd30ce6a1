"""Ingestion accuracy on rendered clips with known truth: front-facing clips made here and the synthetic
world's wild clips, each ingested like real footage and scored by `ingest_error`.

    python -m core.data.video_bench --out bench/results/ingest_video.json --figure docs/data_video_fit.png
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.data.shards import Sample
from core.io import save_image_bgr, write_json

log = logging.getLogger(__name__)


def frontal_clip(
    seed: int,
    *,
    frames: int = 4,
    size: int = 256,
    detail: float = 0.3,
    motion: str = "wave",
    azimuth_deg: float = 0.0,
    fps: float = 15.0,
) -> Sample:
    """A clip of a held-out synthetic person (split "wild-test") doing `motion`, filmed by a still camera 3 m in
    front of them (turned `azimuth_deg` about them) at a 43 mm-like focal length, over a wild background.
    Arrays as the wild clips: K, T_cam_world, head_box, gt_* (no est_*)."""
    import torch  # noqa: PLC0415

    from core.data.backgrounds import wild_background  # noqa: PLC0415
    from core.data.body_bridge import world_body  # noqa: PLC0415
    from core.data.cameras import intrinsics, look_at_matrix, to_camera  # noqa: PLC0415
    from core.data.identity import build_identity  # noqa: PLC0415
    from core.data.identity_spec import draw_identity_spec  # noqa: PLC0415
    from core.data.motion import generate_expressions, generate_gaze, generate_motion  # noqa: PLC0415
    from core.data.render import lit_gaussians, pose_identity, render_views  # noqa: PLC0415
    from core.data.seeds import identity_seed, rng_for  # noqa: PLC0415
    from core.data.synth import _head_boxes  # noqa: PLC0415
    from core.raster.lighting import uniform_lighting  # noqa: PLC0415

    body = world_body()
    spec = draw_identity_spec(identity_seed(0, "wild-test", seed))
    identity = build_identity(spec, body, detail=detail)
    rng = rng_for("frontal-clip", seed)
    rot, trans, motion = generate_motion(rng, body.bone_names, frames, motion=motion, fps=fps)
    expr = generate_expressions(rng, body.expression_names, frames, fps=fps)
    gaze = generate_gaze(rng, frames, fps=fps)
    f32 = lambda x: torch.as_tensor(x, dtype=torch.float32)  # noqa: E731
    posed = pose_identity(identity, body, f32(rot), f32(trans), f32(expr), f32(gaze), fps=fps)
    a = math.radians(azimuth_deg)
    T = look_at_matrix(np.array([3.0 * math.sin(a), 1.0, 3.0 * math.cos(a)]), np.array([0.0, 0.9, 0.0]))
    K = intrinsics(1.2 * size, size, size)
    bg = wild_background(rng, size, size, photo_share=0.0)
    light = uniform_lighting(1.0)
    rgb = np.empty((frames, 1, size, size, 3), np.uint8)
    mask = np.empty((frames, 1, size, size), np.uint8)
    for f in range(frames):
        col, alpha, _ = render_views(lit_gaussians(identity, posed, f, light), to_camera(K, T, size, size))
        img = col[0] + (1 - alpha[0, ..., None]) * bg
        rgb[f, 0] = np.round(img * 255).clip(0, 255).astype(np.uint8)
        mask[f, 0] = np.round(alpha[0] * 255).clip(0, 255).astype(np.uint8)
    Ks, Ts = np.repeat(K[None], frames, 0), np.repeat(T[None], frames, 0)
    head_idx = np.nonzero(np.isin(body.regions.numpy(), [0, 1, 2]))[0]
    phen = np.array([spec.phenotype[n] for n in body.phenotype_names])
    arrays = {
        "K": Ks[:, None].astype(np.float32),
        "T_cam_world": Ts[:, None].astype(np.float32),
        "head_box": _head_boxes(posed.body.vertices.float().numpy(), head_idx, Ks, Ts)[:, None],
        "gt_shape": phen.astype(np.float32),
        "gt_pose": rot.astype(np.float32),
        "gt_translation": trans.astype(np.float32),
        "gt_expression": expr.astype(np.float32),
        "gt_gaze": gaze.astype(np.float32),
    }
    meta = {"kind": "frontal", "motion": motion, "azimuth_deg": azimuth_deg, "seed": seed}
    return Sample(key=f"frontal-{seed:03d}", meta=meta, arrays=arrays, rgb=rgb, mask=mask)


def score_clip(ingestor, gt: Sample, *, fps: float = 15.0) -> dict:
    """Ingest the frames of `gt` like footage (assumed lens) and score them; the report's skips included."""
    from core.data.video_error import ingest_error  # noqa: PLC0415

    frames = [gt.rgb[f, 0] for f in range(gt.num_frames)]
    t0 = time.perf_counter()
    est, report = ingestor.ingest(frames, gt.key, fps=fps)
    ms = 1e3 * (time.perf_counter() - t0) / max(1, len(frames))
    err = ingest_error(gt, est, report.kept) if est is not None else {"detection_rate": 0.0}
    return {
        "key": gt.key,
        "motion": gt.meta.get("motion"),
        "frames": gt.num_frames,
        "kept": report.frames_kept,
        "skipped": [f"{i}: {why}" for i, why in report.skipped],
        "ms_per_frame": round(ms, 1),
        **{k: round(float(v), 4) for k, v in err.items()},
    }, est


def _summary(rows: list[dict]) -> dict:
    keys = ("detection_rate", "mask_iou", "head_centre_px", "head_depth_rel", "joint_reproj_px", "joint_error_mm")
    out = {}
    for k in keys:
        v = [r[k] for r in rows if k in r and np.isfinite(r[k])]
        out[k] = round(float(np.mean(v)), 4) if v else None
    out["frames_kept"] = int(sum(r["kept"] for r in rows))
    out["frames"] = int(sum(r["frames"] for r in rows))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results/ingest_video.json"))
    ap.add_argument("--figure", type=Path, default=None, help="also draw fits (astronaut + rendered clips) here")
    ap.add_argument("--frontal", type=int, default=3, help="front-facing rendered clips")
    ap.add_argument("--wild", type=Path, nargs="*", default=[], help="shards of synthetic wild clips to score")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from core.data.shards import iter_shard  # noqa: PLC0415
    from core.data.video import Ingestor  # noqa: PLC0415

    ing = Ingestor(size=args.size)
    motions = ("wave", "reach", "squat", "idle", "dance")
    frontal_rows, wild_rows, shown = [], [], []
    for k in range(args.frontal):
        gt = frontal_clip(k, frames=args.frames, size=args.size, motion=motions[k % len(motions)], azimuth_deg=15 * k)
        row, est = score_clip(ing, gt)
        frontal_rows.append(row)
        log.info("%s", row)
        if est is not None and len(shown) < 2:
            shown.append((gt, est, 0))
    for path in args.wild:
        for gt in iter_shard(path):
            row, est = score_clip(ing, gt)
            wild_rows.append(row)
            log.info("%s", row)
    result = {
        "what": "real-footage ingestion (mediapipe landmarks, selfie segmentation + GrabCut, retargeted body fit) "
        "on rendered clips with known truth; assumed focal 1.2 x frame side, errors as core.data.video_error",
        "device": f"CPU ({platform.processor() or platform.machine()})",
        "size": args.size,
        "frontal": {"summary": _summary(frontal_rows), "clips": frontal_rows},
        "wild": {"summary": _summary(wild_rows), "clips": wild_rows} if wild_rows else None,
    }
    write_json(args.out, result)
    print(json.dumps({k: result[k]["summary"] for k in ("frontal", "wild") if result[k]}, indent=2))
    if args.figure:
        figure(args.figure, ing, shown)
    return 0


def figure(path: Path, ingestor, shown: list[tuple[Sample, Sample, int]]) -> Path:
    """Rows of (frame, mask, fitted skeleton): scikit-image's astronaut, then rendered clips (true joints as
    green crosses)."""
    import cv2  # noqa: PLC0415
    from skimage import data as skdata  # noqa: PLC0415

    from core.data.body_bridge import world_body  # noqa: PLC0415
    from core.data.video_error import EVAL_JOINTS, _joints, _project, _to_camera, draw_fit  # noqa: PLC0415

    rows = []
    astro = np.ascontiguousarray(skdata.astronaut())
    est, report = ingestor.ingest([astro], "astronaut.png")
    if est is not None:
        rows.append(draw_fit(est, 0))
    else:
        log.warning("astronaut skipped: %s", report.skipped)
    body = world_body()
    jx = [body.bone_index[n] for n in EVAL_JOINTS]
    for gt, est, e in shown:
        f = int(est.meta["frames"][e])
        a = gt.arrays
        Xg = _to_camera(_joints(body, a, "gt_", [f]), a["T_cam_world"][[f], 0].astype(np.float64))
        uv = _project(Xg[:, jx], a["K"][[f], 0].astype(np.float64))[0]
        tile = draw_fit(est, e, truth_uv=uv)
        rows.append(cv2.resize(tile, (rows[0].shape[1], rows[0].shape[0])) if rows else tile)
    save_image_bgr(path, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    return path


if __name__ == "__main__":
    raise SystemExit(main())
