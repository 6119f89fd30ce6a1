"""An honest score on real footage (clips and photos written by `main.py prepare video`).

Protocol (cross-frame): in each clip the avatar is made from reference frames at its start, and scored on frames
at least `gap_s` (default 1 s) after the last reference, each driven by that frame's own fitted body and camera.
A photo (one frame) can only be scored on itself: that row is a reconstruction, reported apart and never mixed
into the held-out numbers. Clips shot from several calibrated cameras (`num_cameras > 1`) are scored
cross-view: references from camera 0, targets from the other cameras.

Metric: the avatar rendered on black against the person cut out onto black (by the frame's person mask), inside
the union of the two silhouettes (within the pixels that show the source frame, not the letterbox padding), so person pixels the avatar fails to cover count as errors, and avatar pixels
off the person too: PSNR, SSIM (over the union's bounding box) and silhouette IoU (alpha > 0.5 vs mask).
Controls, scored the same way on the same frames and printed beside every score:
- `flat`: the person's silhouette filled with one colour, the mean person colour of the reference frames;
- `wrong identity`: the avatar of another source, driven by this frame's body.
An avatar that is not better than both controls has not captured the person.

With refinement (`main.py eval --real DIR --refine N`), each source's avatar is also refined on its reference frames
only, as `create --refine N` refines on photos (with head close-ups), and scored as "refined" beside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from core.data.benchmarks import ROLE_NOVEL_POSE, ROLE_NOVEL_VIEW, ROLE_REF
from core.data.loader import crop, mask_box, square_box
from core.data.shards import Sample
from core.io import atomic_write_bytes
from core.model.crops import fit_crop_matrix, fit_crops
from core.model.model import IdentityState, LCAModel
from core.train.losses import ssim
from core.train.refine_frames import frame_estimates, valid_pixels

log = logging.getLogger(__name__)

ROLE_UNUSED = -1  # frames between the references and the first frame far enough from them
ROLE_RECONSTRUCTION = 3  # a photo scored on itself
MAX_REFS = 8
REF_SPAN_S = 0.5  # references come from the first half second of a clip (at least one frame)


def frame_times(sample: Sample) -> np.ndarray:
    """Seconds of each frame of a clip: `times_s` written by ingestion, else its frame indices at 30 fps."""
    m = sample.meta
    if "times_s" in m and len(m["times_s"]) == sample.num_frames:
        return np.asarray(m["times_s"], np.float64)
    frames = np.asarray(m.get("frames", range(sample.num_frames)), np.float64)
    return frames / float(m.get("fps", 30.0))


def held_out_roles(sample: Sample, gap_s: float = 1.0) -> np.ndarray:
    """Role per frame [F]: references (the clip's first `REF_SPAN_S`, at most `MAX_REFS`), novel poses (frames
    >= `gap_s` after the last reference), unused (between). A single frame: a reconstruction."""
    F = sample.num_frames
    if F == 1:
        return np.array([ROLE_RECONSTRUCTION])
    t = frame_times(sample)
    if t[-1] - t[0] < gap_s:  # too short for a frame >= gap_s from a reference: the clip's start, on itself
        role = np.full(F, ROLE_UNUSED)
        role[0] = ROLE_RECONSTRUCTION
        return role
    refs = np.nonzero(t <= min(t[0] + REF_SPAN_S, t[-1] - gap_s))[0][:MAX_REFS]
    role = np.full(F, ROLE_UNUSED)
    role[refs] = ROLE_REF
    role[t >= t[refs].max() + gap_s] = ROLE_NOVEL_POSE
    return role


@dataclass(frozen=True)
class PersonScore:
    psnr: float  # inside the union of the silhouettes, avatar-on-black vs person-on-black
    ssim: float  # over the union's bounding box
    iou: float  # silhouettes: alpha > 0.5 vs mask > 0.5
    covered: float  # share of the person's pixels the avatar covers
    spill: float  # share of the avatar's pixels off the person


def person_score(
    pred: np.ndarray, alpha: np.ndarray, target: np.ndarray, mask: np.ndarray, valid: np.ndarray | None = None
) -> PersonScore:
    """pred [H, W, 3] on black in [0, 1], alpha [H, W], target [H, W, 3] in [0, 1], mask [H, W] in [0, 1];
    `valid` [H, W] bool: pixels that show the source frame (padding beyond its borders is not scored)."""
    a, m = alpha > 0.5, mask > 0.5
    if valid is not None:
        a, m = a & valid, m & valid
    union = a | m
    person = target * m[..., None]
    if not union.any():
        return PersonScore(float("nan"), float("nan"), float("nan"), float("nan"), float("nan"))
    mse = float(((pred - person) ** 2)[union].mean())
    p = 10 * np.log10(1.0 / max(mse, 1e-10))
    ys, xs = np.nonzero(union)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    if min(y1 - y0, x1 - x0) >= 11:
        t = lambda x: torch.as_tensor(x[y0:y1, x0:x1], dtype=torch.float32)[None]  # noqa: E731
        s = float(ssim(t(pred), t(person)))
    else:
        s = float("nan")
    inter = (a & m).sum()
    return PersonScore(
        psnr=float(p),
        ssim=s,
        iou=float(inter / union.sum()),
        covered=float(inter / max(m.sum(), 1)),
        spill=float((a & ~m).sum() / max(a.sum(), 1)),
    )


def _ref_crops(sample: Sample, refs: np.ndarray, crop_size: int, face_size: int):
    """Body crops, face crops, person-mask crops and crop intrinsics of the reference frames."""
    from core.data.loader import crop_matrix  # noqa: PLC0415

    body, face, masks, Ks = [], [], [], []
    for f in refs:
        img, m = sample.rgb[f, 0], sample.mask[f, 0]
        box = square_box(*(mask_box(m) or (0, 0, img.shape[1], img.shape[0])), pad=0.1)
        body.append(crop(img, *box, crop_size)[0])
        masks.append(crop(np.repeat(m[..., None], 3, -1), *box, crop_size)[0][..., 0])
        face.append(crop(img, *square_box(*sample.arrays["head_box"][f, 0], pad=0.35), face_size)[0])
        Ks.append(crop_matrix(*box, crop_size) @ sample.arrays["K"][f, 0])
    t = lambda x: torch.as_tensor(np.stack(x)).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
    return t(body), t(face), torch.as_tensor(np.stack(masks)).float() / 255.0, np.stack(Ks)


@torch.no_grad()
def real_identity(
    model: LCAModel, sample: Sample, refs: np.ndarray, *, crop_size: int, face_size: int, device: torch.device
) -> IdentityState:
    """The avatar of a clip from its reference frames `refs` (pixel-aligned colours only inside the person masks)."""
    from core.model.pixel_align import ReferenceViews  # noqa: PLC0415

    a = sample.arrays
    full, face, masks, Ks = _ref_crops(sample, refs, crop_size, face_size)
    bh, bw = model.cfg.encoder.body_crop
    body = fit_crops(full[None].to(device), (bh, bw))
    faces = fit_crops(face[None].to(device), tuple(model.cfg.encoder.face_crop))
    shape = torch.as_tensor(a["est_shape"], device=device).float()[None] if model.anchor_shape is not None else None
    views = None
    if model.pixel_appearance is not None:
        t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
        views = ReferenceViews(
            rotations=t(a["est_pose"][refs]),
            expression=t(a["est_expression"][refs]),
            gaze=t(a["est_gaze"][refs]),
            translation=t(a["est_translation"][refs]),
            K=t(Ks),
            T_cam_world=t(a["T_cam_world"][refs, 0]),
        ).cropped(fit_crop_matrix((crop_size, crop_size), (bh, bw)))
        m = fit_crops(masks[None, :, None].expand(1, -1, 3, -1, -1), (bh, bw))[0, :, 0]
        views = views.with_masks(m).map(lambda v: v[None].to(device))
    return model(body, faces, shape, views).select(0)


def render_on_black(model: LCAModel, state: IdentityState, sample: Sample, f: int, device) -> tuple[np.ndarray, ...]:
    """The avatar driven by frame f's fitted body, rendered through its camera on black: colour [H, W, 3], alpha
    [H, W] (core.model.personalise.render_state, as refinement draws it)."""
    from core.model.personalise import render_state

    colour, alpha = render_state(model, state, frame_estimates(sample, np.array([f]))[0])
    return colour.cpu().numpy(), alpha.cpu().numpy()


def _mean_person_colour(sample: Sample, frames: np.ndarray) -> np.ndarray:
    px = [sample.rgb[f, 0][sample.mask[f, 0] > 127] for f in frames]
    px = np.concatenate(px) if px else np.zeros((0, 3))
    return px.mean(0) / 255.0 if len(px) else np.full(3, 0.5)


def refine_sources(
    model: LCAModel,
    footage: list[Sample],
    states: list[IdentityState],
    references: list[np.ndarray],
    *,
    steps: int,
    lr: float,
    device: torch.device,
    progress: bool = True,
    trim: bool = True,
) -> tuple[list[IdentityState], list[dict]]:
    """Each source's feed-forward `states[i]` refined for `steps` steps on its reference frames `references[i]` only
    (core.train.refine_frames: the person cut out onto black by the frame's mask and valid box, driven by the frame's
    fitted body and camera, each frame followed by its head close-up where the fitted head is in view at >= 40 px,
    pixels outside the valid box left out and floaters pruned after, as `create --refine` does with photos); the
    refined states and, per source, what the refinement did. With `trim`, the masks refinement fits are first
    trimmed to each frame's fitted body (core.train.refine_frames.trimmed_masks); the frames are scored with their
    masks as ingested."""
    import time

    from tqdm import tqdm  # noqa: PLC0415

    from core.train.refine_frames import frame_views, personalise_views  # noqa: PLC0415

    refined, info = [], []
    bar = tqdm(total=steps * len(footage), desc="real: refine", unit="step", disable=not progress, dynamic_ncols=True)
    for s, state, refs in zip(footage, states, references, strict=True):
        views = frame_views(s, refs, head_rig=model.rig, trim=trim)
        bar.set_postfix_str(_name(s)[:24])
        t0 = time.perf_counter()
        new, losses, pruned = personalise_views(
            model, state, views, steps=steps, lr=lr, device=device, progress=lambda _k, _loss: bar.update(1)
        )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        refined.append(new)
        info.append({
            "frames": sorted({int(f) for f in views.frames}), "views": len(views), "closeups": views.closeups,
            "closeup_notes": list(views.notes), "steps": steps, "lr": lr, "loss_first": round(losses[0], 5),
            "loss_last": round(losses[-1], 5), "seconds": round(time.perf_counter() - t0, 2), "pruned": pruned,
            "mask_trimmed": [round(x, 4) for x in views.trimmed],
        })  # fmt: skip
    bar.close()
    return refined, info


def evaluate_real(
    model: LCAModel,
    footage: list[Sample],
    *,
    crop_size: int = 128,
    face_size: int = 64,
    device: torch.device | str = "cpu",
    gap_s: float = 1.0,
    max_targets: int = 6,
    progress: bool = True,
    refine_steps: int = 0,
    refine_lr: float = 2e-3,
    refine_trim: bool = True,
) -> tuple[dict, list[dict]]:
    """Per-source rows (held-out and reconstruction kept apart) and a summary; plus the tiles for `real_sheet`.

    With `refine_steps` > 0, each source's feed-forward avatar is also refined on its reference frames only
    (`refine_sources`, what `create --refine N` does with photos) and scored as "refined" on the same frames with the
    same metric; a reconstruction row's refined score is still a reconstruction (the photo was refined on). The
    wrong-identity control stays the other source's feed-forward avatar. Per-frame values are kept (`per_frame`).
    `refine_trim`: refinement fits masks trimmed to the frames' fitted bodies (False: the masks as ingested); the
    scores always use the masks as ingested.
    """
    from tqdm import tqdm  # noqa: PLC0415

    if refine_steps < 0:
        raise ValueError(f"refine_steps must be >= 0, got {refine_steps}")
    device = torch.device(device)
    model = model.to(device).eval()
    roles = [held_out_roles(s, gap_s) for s in footage]
    references = [np.nonzero((r == ROLE_REF) | (r == ROLE_RECONSTRUCTION))[0] for r in roles]
    states = []
    for s, refs in tqdm(list(zip(footage, references, strict=True)), desc="real: avatars", disable=not progress):
        states.append(real_identity(model, s, refs, crop_size=crop_size, face_size=face_size, device=device))
    refined, refine_info = None, None
    if refine_steps > 0:
        refined, refine_info = refine_sources(
            model,
            footage,
            states,
            references,
            steps=refine_steps,
            lr=refine_lr,
            device=device,
            progress=progress,
            trim=refine_trim,
        )
    kinds = ("avatar", "refined", "flat", "wrong_identity") if refined else ("avatar", "flat", "wrong_identity")
    rows, tiles = [], []
    for i, (s, r) in enumerate(tqdm(list(zip(footage, roles, strict=True)), desc="real: score", disable=not progress)):
        targets = np.nonzero((r == ROLE_NOVEL_POSE) | (r == ROLE_NOVEL_VIEW) | (r == ROLE_RECONSTRUCTION))[0]
        if len(targets) > max_targets:
            targets = targets[np.linspace(0, len(targets) - 1, max_targets).round().astype(int)]
        refs = references[i]
        flat = _mean_person_colour(s, refs)
        other = (i + 1) % len(footage)
        t = frame_times(s)
        scores: dict[str, list[PersonScore]] = {k: [] for k in kinds}
        for f in targets:
            target = s.rgb[f, 0].astype(np.float32) / 255.0
            mask = s.mask[f, 0].astype(np.float32) / 255.0
            valid = valid_pixels(s, f)
            pred, alpha = render_on_black(model, states[i], s, f, device)
            scores["avatar"].append(person_score(pred, alpha, target, mask, valid))
            tile = {"source": _name(s), "target": target * (mask[..., None] > 0.5), "avatar": pred, "frame": target,
                    "alpha": alpha, "mask": mask}  # fmt: skip
            if refined:
                tile["refined"], ra = render_on_black(model, refined[i], s, f, device)
                scores["refined"].append(person_score(tile["refined"], ra, target, mask, valid))
            tile["flat"] = np.where(mask[..., None] > 0.5, flat[None, None], 0.0).astype(np.float32)
            scores["flat"].append(person_score(tile["flat"], mask, target, mask, valid))
            if other != i:
                tile["wrong"], wa = render_on_black(model, states[other], s, f, device)
                scores["wrong_identity"].append(person_score(tile["wrong"], wa, target, mask, valid))
            else:
                tile["wrong"] = np.zeros_like(pred)
            if len(tiles) < 64:
                tiles.append(tile)
        held_out = bool((r == ROLE_NOVEL_POSE).any() or (r == ROLE_NOVEL_VIEW).any())
        gaps = [float(np.min(np.abs(t[f] - t[refs]))) for f in targets] if held_out else [0.0] * len(targets)
        row = {
            "source": _name(s),
            "protocol": "cross-frame" if held_out else "reconstruction (scored on its own reference)",
            "references": int(len(refs)),
            "targets": int(len(targets)),
            "min_gap_s": round(min(gaps), 2) if gaps else None,
            "wrong_identity_from": _name(footage[other]) if other != i else None,
        }
        per_frame: dict = {"frame": [int(f) for f in targets], "gap_s": [round(g, 3) for g in gaps]}
        for k, v in scores.items():
            if v:
                row[k] = {m: _mean([getattr(x, m) for x in v]) for m in SCORES}
                per_frame[k] = {m: [_num(getattr(x, m)) for x in v] for m in SCORES}
        row["per_frame"] = per_frame
        if refine_info is not None:
            row["refinement"] = refine_info[i]
        rows.append(row)
    summary = {}
    for name, sel in (("held_out", lambda r: r["protocol"] == "cross-frame"), ("reconstruction", lambda r: r["protocol"] != "cross-frame")):  # fmt: skip
        chosen = [r for r in rows if sel(r) and "avatar" in r]
        if chosen:
            summary[name] = {
                k: {m: _mean([r[k][m] for r in chosen if k in r]) for m in ("psnr", "ssim", "iou")}
                | {f"{m}_se": _standard_error([r[k][m] for r in chosen if k in r]) for m in ("psnr", "ssim", "iou")}
                for k in kinds
                if any(k in r for r in chosen)
            } | {"sources": len(chosen), "frames": int(sum(r["targets"] for r in chosen))}
    res = {"protocol": __doc__.split("\n\n")[1].replace("\n", " "), "summary": summary, "sources": rows}
    if refine_info is not None:
        res["refinement"] = {
            "steps": refine_steps, "lr": refine_lr, "mask_trim": refine_trim, "seconds": round(sum(x["seconds"] for x in refine_info), 2),
            "on": "each source's reference frames only (with their head close-ups), never a scored frame",
        }  # fmt: skip
    return res, tiles


SCORES = ("psnr", "ssim", "iou", "covered", "spill")  # the fields of PersonScore


def _num(v: float) -> float | None:
    """A per-frame value for JSON: rounded, or None where it is not a number."""
    return round(float(v), 4) if np.isfinite(v) else None


def _mean(v: list[float]) -> float | None:
    v = [x for x in v if np.isfinite(x)]
    return round(float(np.mean(v)), 4) if v else None


def _standard_error(v: list[float | None]) -> float | None:
    """Standard error of the mean over sources (sample standard deviation / sqrt(n)); None for fewer than two."""
    v = [x for x in v if x is not None and np.isfinite(x)]
    return round(float(np.std(v, ddof=1) / np.sqrt(len(v))), 4) if len(v) >= 2 else None


def _name(s: Sample) -> str:
    from pathlib import Path  # noqa: PLC0415

    return Path(str(s.meta.get("source", s.key))).name


def real_sheet(tiles: list[dict], path, per_source: int = 2, side: int = 128) -> None:
    """One row per scored frame: frame with silhouettes (green person mask, red avatar), person on black, avatar
    on black, the refined avatar (when refinement ran), flat control, wrong-identity control."""
    cols = [k for k in ("target", "avatar", "refined", "flat", "wrong") if tiles and k in tiles[0]]
    names = {"target": "person on black", "avatar": "avatar", "refined": "refined", "flat": "flat control",
             "wrong": "wrong identity"}  # fmt: skip
    rows, seen = [], {}
    for t in tiles:
        if seen.get(t["source"], 0) >= per_source:
            continue
        seen[t["source"]] = seen.get(t["source"], 0) + 1
        frame = (t["frame"] * 255).astype(np.uint8).copy()
        for m, col in ((t["mask"], (60, 230, 90)), (t["alpha"], (240, 60, 60))):
            cs, _ = cv2.findContours((m > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(frame, cs, -1, col, 1)
        ims = [frame] + [(np.clip(t[k], 0, 1) * 255).astype(np.uint8) for k in cols]
        row = np.concatenate([cv2.resize(x, (side, side), interpolation=cv2.INTER_AREA) for x in ims], 1)
        cv2.putText(row, t["source"][:22], (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1)
        rows.append(row)
    if not rows:
        return
    head = np.zeros((16, rows[0].shape[1], 3), np.uint8)
    for j, lab in enumerate(["frame (mask/avatar)"] + [names[k] for k in cols]):
        cv2.putText(head, lab, (3 + j * side, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1)
    img = np.concatenate([head, *rows], 0)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if ok:
        atomic_write_bytes(path, buf.tobytes())


def format_real(res: dict) -> str:
    """A table of the real-footage rows and the summary's means: every avatar score (and the refined avatar's, when
    refinement ran) beside its flat and wrong-identity controls."""
    rows, summary = res["sources"], res.get("summary", {})
    refined = any("refined" in r for r in [*rows, *summary.values()])
    psnr_kinds = ("avatar", "refined", "flat", "wrong_identity") if refined else ("avatar", "flat", "wrong_identity")
    iou_kinds = ("avatar", "refined", "wrong_identity") if refined else ("avatar", "wrong_identity")
    ssim_kinds = ("avatar", "refined") if refined else ("avatar",)
    short = {"avatar": "avatar", "refined": "refined", "flat": "flat", "wrong_identity": "wrong-id"}

    def cell(row: dict, k: str, m: str) -> str:
        v = row.get(k, {}).get(m)
        return "   -  " if v is None else f"{v:6.2f}" if m == "psnr" else f"{v:6.3f}"

    def cells(row: dict, kinds: tuple[str, ...], m: str) -> str:
        return " / ".join(cell(row, k, m) for k in kinds)

    def heading(m: str, kinds: tuple[str, ...]) -> str:
        text = f"{m} " + " / ".join(short[k] for k in kinds)
        return f"{text:{9 * len(kinds) - 3}s}"

    lines = [
        f"{'source':28s} {'protocol':12s} {'n':>3s}  {heading('PSNR', psnr_kinds)}   {heading('IoU', iou_kinds)}   "
        f"{heading('SSIM', ssim_kinds)}"
    ]

    def line(name: str, proto: str, n: int, r: dict) -> str:
        return (
            f"{name[:28]:28s} {proto:12s} {n:3d}  {cells(r, psnr_kinds, 'psnr')}   {cells(r, iou_kinds, 'iou')}   "
            f"{cells(r, ssim_kinds, 'ssim')}"
        )

    for r in rows:
        proto = "cross-frame" if r["protocol"] == "cross-frame" else "recon (seen)"
        lines.append(line(r["source"], proto, r["targets"], r))
    for name, label in (("held_out", "cross-frame"), ("reconstruction", "recon (seen)")):
        if name in summary:
            sm = summary[name]
            lines.append(line(f"mean of {sm['sources']} source(s)", label, sm["frames"], sm))
            se = {
                k: {m: v.get(f"{m}_se") for m in ("psnr", "ssim", "iou")} for k, v in sm.items() if isinstance(v, dict)
            }
            if any(x is not None for v in se.values() for x in v.values()):
                lines.append(line("  standard error (sources)", label, sm["sources"], se))
    return "\n".join(lines)
