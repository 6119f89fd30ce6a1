"""Evaluation on the held-out benchmark identities (`wild-test`, `studio-test`): novel views and novel poses;
and on real footage (`real`): clips and photos ingested by `main.py prepare video`.

For each identity the model sees its 8 reference images, builds the avatar once, and renders every target
camera and pose. The headline metrics are person-only, as in the paper: PSNR, SSIM and L1 inside the target's
person mask ("person"); the same over the whole frame (avatar over the benchmark's grey backdrop, about 80% of the
pixels) stay beside them as "frame". LPIPS joins both when a local network file is given (`core.train.lpips`).
Benchmarks generated with head close-ups (`--face-size`) add "face": the person-only PSNR of the views' close-ups.
Every identity's own means are saved too (`per_identity`), so findings can carry confidence intervals. Real
footage is scored by `core.train.evaluate_real` (avatar on black against the person on black inside the union of
silhouettes, silhouette IoU, flat-colour and wrong-identity controls, references >= 1 s from every scored frame;
its own sheet `<sheet>_real.png`). Writes JSON and a comparison sheet (PNG).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from core.data.backgrounds import studio_background
from core.data.benchmarks import BENCHMARKS, ROLE_NOVEL_POSE, ROLE_NOVEL_VIEW, ROLE_REF, load_benchmark, write_benchmark
from core.data.closeups import warp_to_closeup
from core.data.loader import crop, crop_matrix, mask_box, square_box
from core.data.shards import Sample
from core.data.synth import SynthConfig
from core.io import atomic_write_bytes
from core.model.crops import fit_crop_matrix, fit_crops
from core.model.drive import drive_gaussians
from core.model.model import IdentityState, LCAModel
from core.model.pixel_align import ReferenceViews
from core.raster import Camera, Gaussians
from core.raster.rasterize import rasterize
from core.train.losses import l1_error, psnr, ssim
from core.train.lpips import LPIPSMetric
from core.train.step_inputs import lighting_from_sh

log = logging.getLogger(__name__)


def reference_crops(sample: Sample, crop_size: int, face_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-body and face crops [N, 3, S, S] of the reference frames (role 0), cut as the training loader does."""
    refs = np.nonzero(sample.arrays["role"] == ROLE_REF)[0]
    full, face = [], []
    for f in refs:
        img = sample.rgb[f, 0]
        box = mask_box(sample.mask[f, 0]) or (0, 0, img.shape[1], img.shape[0])
        full.append(crop(img, *square_box(*box, pad=0.1), crop_size)[0])
        face.append(crop(img, *square_box(*sample.arrays["head_box"][f, 0], pad=0.35), face_size)[0])
    t = lambda x: torch.as_tensor(np.stack(x)).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
    return t(full), t(face)


def reference_views(sample: Sample, crop_size: int) -> ReferenceViews:
    """Views [N] of the reference frames' full-body crops (as `reference_crops` cuts them, side `crop_size`): the
    estimated body of each frame (what a tracker would give) and the intrinsics of its crop."""
    a = sample.arrays
    refs = np.nonzero(a["role"] == ROLE_REF)[0]
    Ks = []
    for f in refs:
        img = sample.rgb[f, 0]
        box = mask_box(sample.mask[f, 0]) or (0, 0, img.shape[1], img.shape[0])
        Ks.append(crop_matrix(*square_box(*box, pad=0.1), crop_size) @ a["K"][f, 0])
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
    return ReferenceViews(
        rotations=t(a["est_pose"][refs]),
        expression=t(a["est_expression"][refs]),
        gaze=t(a["est_gaze"][refs]),
        translation=t(a["est_translation"][refs]),
        K=t(np.stack(Ks)),
        T_cam_world=t(a["T_cam_world"][refs, 0]),
    )


@torch.no_grad()
def evaluate_sample(
    model: LCAModel,
    sample: Sample,
    *,
    crop_size: int,
    face_size: int,
    device: torch.device,
    lpips: LPIPSMetric | None = None,
) -> dict[str, list]:
    """Per-target metrics of one benchmark identity, plus its renders for the comparison sheet."""
    state = sample_identity(model, sample, crop_size=crop_size, face_size=face_size, device=device)
    return evaluate_state(model, state, sample, device=device, lpips=lpips)


@torch.no_grad()
def sample_identity(
    model: LCAModel, sample: Sample, *, crop_size: int, face_size: int, device: torch.device
) -> IdentityState:
    """The feed-forward identity of one benchmark sample, from its 8 reference frames."""
    a = sample.arrays
    full, face = reference_crops(sample, crop_size, face_size)
    body = fit_crops(full[None].to(device), tuple(model.cfg.encoder.body_crop))
    faces = fit_crops(face[None].to(device), tuple(model.cfg.encoder.face_crop))
    shape = torch.as_tensor(a["est_shape"], device=device).float()[None] if model.anchor_shape is not None else None
    views = None
    if model.pixel_appearance is not None:
        body_crop = tuple(model.cfg.encoder.body_crop)
        views = reference_views(sample, crop_size).cropped(fit_crop_matrix((crop_size, crop_size), body_crop))
        views = views.map(lambda v: v[None].to(device))
    return model(body, faces, shape, views).select(0)


@torch.no_grad()
def evaluate_state(
    model: LCAModel,
    state: IdentityState,
    sample: Sample,
    *,
    device: torch.device,
    lpips: LPIPSMetric | None = None,
) -> dict[str, list]:
    """Per-target metrics (novel views and poses) of one identity state against a benchmark sample's targets
    (real footage is scored by `core.train.evaluate_real`); with close-ups in the sample, also "face_psnr" and the
    close-ups themselves ("closeup_pred", "closeup_target")."""
    a = sample.arrays
    H, W = sample.rgb.shape[2:4]
    bg = torch.as_tensor(studio_background(H, W), dtype=torch.float32, device=device)  # [H, W, 3]
    out: dict = {"key": sample.key, "role": [], "pred": [], "target": []} | {
        k: [] for k in metric_keys(lpips is not None)
    }
    closeups = sample.closeup_size > 0 and "closeup_K" in a
    if closeups:
        out |= {"face_psnr": [], "closeup_pred": [], "closeup_target": []}
    targets = np.nonzero(a["role"] != ROLE_REF)[0]
    for f in targets:
        posed = posed_frame(model, state, sample, int(f), device)
        cam = Camera(*(torch.as_tensor(a[k][f, 0], device=device).float() for k in ("K", "T_cam_world")), W, H)
        r = rasterize(posed.to(torch.float32), cam, background=(0.0, 0.0, 0.0))
        target = torch.as_tensor(sample.rgb[f, 0], device=device).float()[None] / 255.0
        pred = (r.color[0] + (1 - r.alpha[0]) * bg).clamp(0, 1)[None]  # [1, H, W, 3]
        mask = torch.as_tensor(sample.mask[f, 0], device=device).float()[None, ..., None] / 255.0
        out["role"].append(int(a["role"][f]))
        for k, v in image_metrics(pred, target, (mask > 0.5).float(), lpips).items():
            out[k].append(float(v[0]))
        out["pred"].append(pred[0].cpu().numpy())
        out["target"].append(target[0].cpu().numpy())
        if closeups:
            face = closeup_metrics(posed, sample, int(f), device)
            for k, v in face.items():
                out[k].append(v)
    return out


@torch.no_grad()
def posed_frame(model: LCAModel, state: IdentityState, sample: Sample, f: int, device: torch.device) -> Gaussians:
    """The identity driven to frame f of a benchmark sample (its true body and lighting)."""
    g = lambda k: torch.as_tensor(sample.arrays[k][f], device=device).float()  # noqa: E731
    light = lighting_from_sh(g("env_sh"), g("key_dir"), g("key_rgb"))
    args = (g("gt_pose"), g("gt_expression"), g("gt_gaze"), light, g("gt_translation"))
    return drive_gaussians(model, state, *args).gaussians


@torch.no_grad()
def closeup_metrics(posed: Gaussians, sample: Sample, f: int, device: torch.device) -> dict:
    """Frame f's head close-up: the posed Gaussians through its close-up camera over the backdrop as that camera
    sees it, scored person-only against the benchmark's close-up ("face_psnr"), and both images [N, N, 3]."""
    a, N = sample.arrays, sample.closeup_size
    H, W = sample.rgb.shape[2:4]
    bg = warp_to_closeup(studio_background(H, W), a["K"][f, 0], a["closeup_K"][f, 0], N)
    cam = Camera(*(torch.as_tensor(a[k][f, 0], device=device).float() for k in ("closeup_K", "T_cam_world")), N, N)
    r = rasterize(posed.to(torch.float32), cam, background=(0.0, 0.0, 0.0))
    pred = (r.color[0] + (1 - r.alpha[0]) * torch.as_tensor(bg, device=device)).clamp(0, 1)[None]  # [1, N, N, 3]
    target = torch.as_tensor(sample.closeup_rgb[f, 0], device=device).float()[None] / 255.0
    mask = (torch.as_tensor(sample.closeup_mask[f, 0], device=device).float()[None, ..., None] > 127.5).float()
    return {
        "face_psnr": float(psnr(pred, target, mask)[0]),
        "closeup_pred": pred[0].cpu().numpy(),
        "closeup_target": target[0].cpu().numpy(),
    }


def template_model(model: LCAModel) -> LCAModel:
    """A per-frame model of the same body and anchors as `model` but nothing learnt: a fresh pose head (its last
    layer is zero, so no pose-dependent deltas), no deformer, no lighting code. Driving it is plain linear blend
    skinning of the canonical Gaussians, which is what a per-subject method optimises through."""
    cfg = replace(
        model.cfg, deformer=replace(model.cfg.deformer, enabled=False), heads=replace(model.cfg.heads, decoder="dual")
    )
    return LCAModel(cfg, model.rig, anchors=model.anchors, drive_only=True).to(model.anchor_pos.device).eval()


@torch.no_grad()
def template_state(model: LCAModel, template: LCAModel, sample: Sample, *, device: torch.device) -> IdentityState:
    """The starting point of the independent per-subject baseline: the body template shaped by the sample's
    estimated body shape (what a tracker gives), with default Gaussians on its anchors (no offsets, grey albedo,
    half opacity, the anchor spacing as scale, the template's part labels). No feed-forward network is involved;
    `model` only lends its body shape model (no learnt weights)."""
    from core.model.heads import CANONICAL_CHANNELS, decode_canonical

    shape = torch.as_tensor(sample.arrays["est_shape"], device=device).float()[None] if model.shape_dim else None
    anchors, rest_poses, support = model.shaped_rest(shape, 1)
    A, K = template.cfg.tokens.num_anchors, template.cfg.heads.gaussians_per_anchor
    can = decode_canonical(
        torch.zeros(1, A, K, CANONICAL_CHANNELS, device=device),
        template.anchor_normals,
        template.anchor_part_prior,
        max_offset=template.cfg.heads.max_offset,
        base_log_scale=template.base_log_scale,
    )
    h = template.cfg.heads.hidden
    from core.model.deformer import GARMENT_PARTS

    garment = torch.softmax(can.part_logits, -1)[..., list(GARMENT_PARTS)].sum(-1)
    return IdentityState(
        anchors=anchors,
        rest_poses=rest_poses,
        support=support,
        canonical=can,
        pose_proj=torch.zeros(1, A, h, device=device),
        pose_zero=torch.zeros(1, A, K, template.pose_head.out.out_features // K, device=device),
        garment=garment,
    ).select(0)


METRICS = ("psnr", "ssim", "l1")  # higher, higher, lower is better


def metric_keys(with_lpips: bool = False) -> list[str]:
    """Per-target keys of `evaluate_state`: person_<metric> (inside the mask, the headline) and frame_<metric>."""
    names = (*METRICS, "lpips") if with_lpips else METRICS
    return [f"{region}_{m}" for region in ("person", "frame") for m in names]


def image_metrics(
    pred: torch.Tensor,  # [B, H, W, 3] in [0, 1]
    target: torch.Tensor,  # [B, H, W, 3]
    mask: torch.Tensor,  # [B, H, W, 1] person mask in {0, 1}
    lpips: LPIPSMetric | None = None,
) -> dict[str, torch.Tensor]:
    """Per-image [B] person-only and whole-frame PSNR, SSIM and L1 (and LPIPS with a network), keyed as
    `metric_keys`."""
    out = {
        "person_psnr": psnr(pred, target, mask),
        "person_ssim": ssim(pred, target, reduce=False, mask=mask),
        "person_l1": l1_error(pred, target, mask),
        "frame_psnr": psnr(pred, target),
        "frame_ssim": ssim(pred, target, reduce=False),
        "frame_l1": l1_error(pred, target),
    }
    if lpips is not None:
        out["person_lpips"] = lpips(pred, target, mask)
        out["frame_lpips"] = lpips(pred, target)
    return out


def _means(rows: list[dict], keys: list[str], role: int | None) -> dict:
    """{"person": {...}, "frame": {...}, "count"} over the targets of `rows` with `role` (None: all), and "face"
    ({"psnr"} of the close-ups) where some of those rows have close-ups."""
    vals = {
        k: [v for r in rows for i, v in enumerate(r.get(k, [])) if role is None or r["role"][i] == role] for k in keys
    }
    res: dict = {"person": {}, "frame": {}}
    for k, v in vals.items():
        region, metric = k.split("_", 1)
        if region in ("person", "frame") or v:
            res.setdefault(region, {})[metric] = float(np.mean(v)) if v else float("nan")
    return res | {"count": len(vals[keys[0]])}


def _summary(rows: list[dict]) -> dict:
    """Means per role (novel_view, novel_pose, reconstruction) and over all targets ("all"), each as
    {"person": {psnr, ssim, l1[, lpips]}, "frame": {...}[, "face": {psnr}], "count"}; plus every identity's own means over its
    targets ("per_identity", in benchmark order), the unit that confidence intervals resample."""
    res: dict = {}
    if not rows:
        return res
    keys = list(dict.fromkeys(k for r in rows for k in r if k.startswith(("person_", "frame_", "face_"))))
    named = ((ROLE_NOVEL_VIEW, "novel_view"), (ROLE_NOVEL_POSE, "novel_pose"))
    for role, name in (*named, (None, "all")):
        if any(role is None or ro == role for r in rows for ro in r["role"]):
            res[name] = _means(rows, keys, role)
    res["per_identity"] = [_means([r], keys, None) | {"key": r.get("key", str(i))} for i, r in enumerate(rows)]
    return res


def comparison_sheet(rows_by_bench: dict[str, list[dict]], path: Path, per_bench: int = 6) -> None:
    """Rows of (target over render) tiles, one row per benchmark: the first identity's targets (real footage has
    its own sheet, `core.train.evaluate_real.real_sheet`)."""
    strips = []
    for name, rows in rows_by_bench.items():
        if not rows:
            continue
        pairs = list(zip(rows[0]["target"], rows[0]["pred"], strict=True))
        tiles = [np.concatenate([t, p], 0) for t, p in pairs[:per_bench]]
        strip = np.concatenate(tiles, 1)
        label = np.zeros((18, strip.shape[1], 3), np.uint8)
        text = f"{name}: top target, bottom model"
        if all("person_psnr" in r and "frame_psnr" in r for r in rows):  # the headline first, the frame beside
            person = np.mean([v for r in rows for v in r["person_psnr"]])
            frame = np.mean([v for r in rows for v in r["frame_psnr"]])
            text += f"; PSNR person {person:.2f} dB (frame {frame:.2f})"
        faces = [v for r in rows for v in r.get("face_psnr", [])]
        if faces:
            text += f", face {np.mean(faces):.2f}"
        cv2.putText(label, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255,) * 3, 1)
        strips.append(np.concatenate([label.astype(np.float32) / 255.0, strip], 0))
    if not strips:
        return
    width = max(s.shape[1] for s in strips)
    strips = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in strips]
    img = (np.clip(np.concatenate(strips, 0), 0, 1) * 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if ok:
        atomic_write_bytes(path, buf.tobytes())


def natural_key(path: Path) -> list:
    """Sort key of a path that orders its numbers by value: `2-b/` before `10-a/`."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def real_footage(folder: Path) -> list[Sample]:
    """The clips and photos that `prepare video` ingested into `folder` (its `video/` shards)."""
    from core.data.shards import iter_shard, list_shards

    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is not a folder; ingest footage first: python main.py prepare video FILE --out {folder}"
        )
    shards = list_shards(folder / "video") if (folder / "video").is_dir() else list_shards(folder)
    shards = sorted(shards, key=natural_key)  # "2-b" before "10-a", as numbered
    samples = [s for path in shards for s in iter_shard(path) if s.meta.get("kind") == "video"]
    if not samples:
        raise FileNotFoundError(
            f"no ingested footage in {folder}; run: python main.py prepare video FILE --out {folder}"
        )
    return samples


def evaluate(
    model: LCAModel,
    bench_root: str | Path,
    *,
    count: int = 32,
    resolution: int = 128,
    detail: float = 1.0,
    crop_size: int = 128,
    face_size: int = 64,
    out_json: str | Path | None = None,
    sheet: str | Path | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    real: str | Path | None = None,
    lpips: str | Path | None = None,
    benchmarks: tuple[str, ...] = BENCHMARKS,
    closeup_size: int = 0,
    refine_steps: int = 0,
    refine_lr: float = 2e-3,
    refine_trim: bool = True,
) -> dict:
    """Metrics per benchmark (generating the held-out sets under `bench_root` first when they are missing, with head
    close-ups of `closeup_size` px when it is > 0); with `real`, also on the clips and photos that `main.py prepare
    video` wrote into that folder; with `lpips`, also LPIPS through that TorchScript network file (see
    `core.train.lpips`). Sets that carry close-ups (however they were made) also get the face PSNR. With `real` and
    `refine_steps` > 0, each real source's avatar is also refined on its reference frames and scored beside the
    feed-forward one (`core.train.evaluate_real.refine_sources`)."""
    if refine_steps and real is None:
        raise ValueError("refinement is scored on real footage only: give `real` (main.py eval --real DIR)")
    footage = real_footage(Path(real)) if real is not None else None  # a missing folder fails before any work
    device = torch.device(device)
    lp = LPIPSMetric(lpips, device) if lpips is not None else None
    model = model.to(device).eval()
    cfg = SynthConfig(width=resolution, height=resolution, detail=detail, closeup_size=closeup_size)
    results: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "headline": "person: inside the target's person mask; frame: the whole image over the grey backdrop; "
        "face (where the sets have close-ups): person-only PSNR of the views' head close-ups",
        "lpips": str(lpips) if lpips is not None else "not measured: needs a local network file (--lpips)",
        "benchmarks": {},
    }
    rows_by_bench: dict[str, list[dict]] = {}
    t0 = time.time()
    for name in benchmarks:
        shards = write_benchmark(Path(bench_root), name, count, cfg, progress=progress)
        rows = []
        for path in tqdm(shards, desc=f"eval {name}", unit="identity", disable=not progress, dynamic_ncols=True):
            for sample in load_benchmark(path):
                rows.append(
                    evaluate_sample(model, sample, crop_size=crop_size, face_size=face_size, device=device, lpips=lp)
                )
        rows_by_bench[name] = rows
        results["benchmarks"][name] = _summary(rows) | {"identities": len(rows)}
    if footage is not None:  # the honest real-footage protocol (core.train.evaluate_real)
        from core.train.evaluate_real import evaluate_real, real_sheet

        real_res, tiles = evaluate_real(
            model, footage, crop_size=crop_size, face_size=face_size, device=device, progress=progress,
            refine_steps=refine_steps, refine_lr=refine_lr, refine_trim=refine_trim,
        )  # fmt: skip
        results["real"] = real_res
        if sheet is not None:
            real_sheet(tiles, Path(sheet).with_name(Path(sheet).stem + "_real.png"))
    results["seconds"] = time.time() - t0
    if out_json is not None:
        atomic_write_bytes(out_json, json.dumps(results, indent=2).encode())
    if sheet is not None:
        comparison_sheet(rows_by_bench, Path(sheet))
    return results
