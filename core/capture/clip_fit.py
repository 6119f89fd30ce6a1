"""The body fit of a real clip's frames with silhouettes, run by `prepare video` after each frame's landmark fit: one
body shape and clothing allowance shared by the clip's frames, and each frame's pose and camera corrected from its
landmark fit so that the body's outline meets the person mask as its landmarks meet the tracker's (the photos' joint
fit, core.capture.shape_fit), the corrections held alike from one frame to the next. Per frame it measures what the
capture assistant reports for a photo: the landmark error and the silhouette IoU, before and after.

A head-and-shoulders frame (no hip seen: the body below the chest is out of frame) is fitted to its landmarks alone,
the face's weighted up and the shoulders' down (`BUST_WEIGHTS`). There the shoulders and the face are all the
landmarks, and the two disagree in scale: the tracker places its shoulder landmarks 2.6-2.7 ear spans apart (the
outside of the shoulders), the body's shoulder joints (the upper arms' heads, where the fit puts them) lie 2.2 ear
spans apart; the shoulders (weight 1, the face's 0.5) and the cut-off torso's silhouette then scaled the whole body
up, its head 27% too large (ears 7-10 px off at 192 px, where the landmark fit had them within 2 px)."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np

from core.capture.photo_fit import IOU_WARN, REPROJ_WARN, body_silhouette, mask_iou
from core.capture.shape_fit import PhotoTarget, ShapeFitConfig, fit_shared_shape, landmarks_uv
from core.data.shards import Sample
from core.model.crops import BodyEstimate
from core.model.rig import BodyRig

log = logging.getLogger(__name__)

# The photos' joint fit with fewer rounds (a clip has up to 64 frames, not 16 photos) and the corrections of
# consecutive frames held alike.
CLIP_FIT = ShapeFitConfig(rounds=3, pose_steps=10, steps=10, temporal=1.0)
SILHOUETTE_FIT = "+ silhouettes: pose and camera corrected, one body shape and clothing allowance for the clip"
HIPS = (23, 24)  # pose landmarks of the hips: a frame that shows neither is a head-and-shoulders (bust) frame
# Landmark weights of a bust frame (in place of core.data.video_fit.FIT_POINTS': face 0.5, shoulders 1): on
# jwpIntro.mp4 and single_face.mp4 the ears then land within 1 px (7-10 px with the silhouette, 2 px without)
BUST_WEIGHTS = ((0, 2.0), (2, 2.0), (5, 2.0), (7, 2.0), (8, 2.0), (11, 0.3), (12, 0.3))


@dataclass(frozen=True)
class FrameQuality:
    """How well one frame's fitted body agrees with the frame (sample pixels)."""

    reproj_px: float  # RMS distance of the body's landmarks to the tracker's (the landmarks the fit uses)
    person_px: float  # size of the person: the larger side of those landmarks' box
    iou: float  # silhouette IoU of the body (with the clothing allowance, when fitted) and the person mask
    iou_body: float  # silhouette IoU of the body alone

    @property
    def reproj_rel(self) -> float:
        return self.reproj_px / max(self.person_px, 1.0)

    @property
    def poor(self) -> bool:
        """Poor as a photo's fit is poor (core.capture.photo_fit): landmark error or IoU past their limits."""
        return not (self.reproj_rel <= REPROJ_WARN) or (np.isfinite(self.iou) and self.iou < IOU_WARN)


@dataclass(frozen=True)
class ClipFit:
    """A clip sample with its refitted bodies, and each frame's fit quality before and after."""

    sample: Sample  # est_shape, est_pose and T_cam_world refitted; meta["fit_quality"] written
    before: tuple[FrameQuality, ...]  # F: the landmark fit (template shape, no allowance)
    bust: tuple[bool, ...]  # F: head-and-shoulders frames (no hip seen), fitted to their landmarks alone
    after: tuple[FrameQuality, ...]  # F: the fit with silhouettes
    shape: np.ndarray  # [S] the body shape shared by the clip's frames
    garment: np.ndarray | None  # [R] clothing allowance per region (metres); None: none fitted
    seconds: float  # wall time of the fit

    def summary(self) -> str:
        """`16 frames: landmark error 2.1% -> 2.4%, silhouette IoU 0.55 -> 0.71 (body alone 0.66), 3 poor; 900 ms a
        frame`."""
        mean = lambda q, k: float(np.nanmean([getattr(x, k) for x in q]))  # noqa: E731
        poor = sum(q.poor for q in self.after)
        return (
            f"{len(self.after)} frames: landmark error {100 * mean(self.before, 'reproj_rel'):.1f}% -> "
            f"{100 * mean(self.after, 'reproj_rel'):.1f}%, silhouette IoU {mean(self.before, 'iou'):.2f} -> "
            f"{mean(self.after, 'iou'):.2f} (body alone {mean(self.after, 'iou_body'):.2f}), {poor} poor; "
            f"{1000 * self.seconds / max(len(self.after), 1):.0f} ms a frame"
        )


def _estimates(sample: Sample) -> list[BodyEstimate]:
    from core.train.refine_frames import frame_estimates

    return frame_estimates(sample, np.arange(sample.num_frames))


def _valid(sample: Sample, f: int) -> np.ndarray:
    from core.train.refine_frames import valid_pixels

    v = valid_pixels(sample, f)
    return np.ones(sample.rgb.shape[2:4], bool) if v is None else v


def _used(landmarks: np.ndarray) -> np.ndarray:
    """[33] bool: the landmarks [33, 4] the fit uses (as the landmark fit chooses them: seen, inside the image)."""
    from core.data.video_fit import FIT_POINTS

    lm = np.asarray(landmarks, np.float64)
    inside = (lm[:, 0] > -0.02) & (lm[:, 0] < 1.02) & (lm[:, 1] > -0.02) & (lm[:, 1] < 1.02)
    used = np.zeros(len(lm), bool)
    ids = sorted(FIT_POINTS)
    used[ids] = ((np.nan_to_num(lm[:, 3]) >= 0.5) & inside)[ids]
    return used


def is_bust(landmarks: np.ndarray) -> bool:
    """Whether a frame shows head and shoulders only: none of the hips' landmarks [33, 4] is used (module
    docstring)."""
    return not _used(landmarks)[list(HIPS)].any()


def frame_quality(
    rig: BodyRig,
    est: BodyEstimate,
    landmarks: np.ndarray,  # [33, 4] normalised to the frame
    mask: np.ndarray,  # [H, W] uint8 person mask
    valid: np.ndarray,  # [H, W] bool: the pixels that show the source
    garment: np.ndarray | None = None,  # [R] clothing allowance (metres)
) -> FrameQuality:
    """Landmark error and silhouette IoU (within the source's pixels) of one frame's body estimate."""
    H, W = mask.shape
    used = _used(landmarks)
    obs = np.asarray(landmarks, np.float64)[:, :2] * np.array([W, H])
    uv = landmarks_uv(rig, est)
    rms = float(np.sqrt(np.mean(np.sum((uv[used] - obs[used]) ** 2, -1)))) if used.any() else float("nan")
    span = obs[used].max(0) - obs[used].min(0) if used.any() else np.ones(2)
    m = mask * valid
    body = body_silhouette(rig, est, (H, W)) * valid
    dressed = body if garment is None else body_silhouette(rig, est, (H, W), garment) * valid
    return FrameQuality(rms, float(max(span.max(), 1.0)), mask_iou(dressed, m), mask_iou(body, m))


def fit_clip(
    sample: Sample, rig: BodyRig | None = None, cfg: ShapeFitConfig | None = None, bust: bool = True
) -> ClipFit:
    """The clip's bodies refitted with silhouettes (module docstring), from the landmark fit that ingestion wrote
    (`est_*`, `T_cam_world`, the tracker's `pose_landmarks`, the person masks). Only camera 0 of a clip is fitted.
    `bust`: head-and-shoulders frames are fitted to their landmarks alone, with `BUST_WEIGHTS` (False: as the others).
    Raises ValueError for a sample without landmarks (the coarse fallback's) and FloatingPointError when the fit
    diverges (the caller keeps the landmark fit)."""
    if "pose_landmarks" not in sample.arrays:
        raise ValueError(
            f"{sample.key}: no pose landmarks in the sample (a coarse fit, or ingested before they were kept); "
            "ingest it again with --method mediapipe"
        )
    if rig is None:
        from core.capture.photos import _fit_rig

        rig = _fit_rig()
    cfg = cfg or CLIP_FIT
    t0 = time.perf_counter()
    F = sample.num_frames
    marks = np.asarray(sample.arrays["pose_landmarks"][:, 0], np.float64)  # [F, 33, 4]
    ests = _estimates(sample)
    valid = [_valid(sample, f) for f in range(F)]
    masks = [sample.mask[f, 0] for f in range(F)]
    before = tuple(frame_quality(rig, e, marks[f], masks[f], valid[f]) for f, e in enumerate(ests))
    busts = tuple(bust and is_bust(marks[f]) for f in range(F))
    targets = [
        PhotoTarget(e, marks[f], None, q.person_px, valid[f], BUST_WEIGHTS)
        if busts[f]
        else PhotoTarget(e, marks[f], masks[f], q.person_px, valid[f])
        for f, (e, q) in enumerate(zip(ests, before, strict=True))
    ]
    result = fit_shared_shape(rig, targets, cfg)
    garment = None if result.garment is None else result.garment.detach().double().numpy()
    after = tuple(frame_quality(rig, e, marks[f], masks[f], valid[f], garment) for f, e in enumerate(result.estimates))
    seconds = time.perf_counter() - t0
    arrays = dict(sample.arrays)
    arrays["est_shape"] = result.shape.detach().float().numpy()
    arrays["est_pose"] = np.stack([e.params.rotations[0].float().numpy() for e in result.estimates])
    T = np.array(sample.arrays["T_cam_world"], np.float32, copy=True)
    T[:, 0] = np.stack([e.camera.T_cam_world.float().numpy() for e in result.estimates])
    arrays["T_cam_world"] = T
    r = lambda v: [round(float(x), 4) for x in v]  # noqa: E731
    meta = dict(sample.meta)
    meta["fit"] = f"{meta.get('fit', '')} {SILHOUETTE_FIT}".strip()
    meta["fit_quality"] = {
        "landmark_fit": {"reproj_rel": r(q.reproj_rel for q in before), "iou": r(q.iou for q in before)},
        "silhouette_fit": {
            "reproj_rel": r(q.reproj_rel for q in after),
            "iou": r(q.iou for q in after),
            "iou_body": r(q.iou_body for q in after),
        },
        "garment_m": None if garment is None else r(garment),
        "bust_frames": [f for f, b in enumerate(busts) if b],
        "ms_per_frame": round(1000 * seconds / max(F, 1), 1),
        "iou": "silhouette IoU of the fitted body (with its clothing allowance) and the person mask, within the "
        "source's pixels; reproj_rel: RMS landmark error / the person's size",
    }
    out = dataclasses.replace(sample, arrays=arrays, meta=meta)
    return ClipFit(out, before, busts, after, result.shape.detach().double().numpy(), garment, seconds)


def report_clip_fit(fit: ClipFit, source: str) -> None:
    """Log the fit's summary and a POOR FIT warning per frame whose fit is poor (as the capture assistant warns)."""
    log.info("%s: body fit %s", source, fit.summary())
    if any(fit.bust):
        log.info(
            "%s: %d of %d frames show head and shoulders only (no hip seen): fitted to their landmarks alone, the "
            "face's weighted up, the shoulders' down (no silhouette)", source, sum(fit.bust), len(fit.bust),
        )  # fmt: skip
    frames = fit.sample.meta.get("frames", list(range(len(fit.after))))
    for f, q in zip(frames, fit.after, strict=True):
        if q.poor:
            log.warning(
                "%s frame %d: POOR FIT (landmark error %.1f%%, silhouette IoU %.2f): its body may not sit on the "
                "person", source, f, 100 * q.reproj_rel, q.iou,
            )  # fmt: skip


def refit_sample(sample: Sample, source: str) -> Sample:
    """`prepare video`'s step after the landmark fit: the clip's bodies refitted with silhouettes (`fit_clip`), its
    quality logged, and the masks refinement fits trimmed to those bodies (core.capture.mask_trim.with_fit_masks:
    `arrays["fit_mask"]`; `sample.mask` stays the segmenter's); the sample as it was when it has no landmarks (the
    coarse fallback) or the fit diverges."""
    if "pose_landmarks" not in sample.arrays:
        return sample
    try:
        fit = fit_clip(sample)
    except FloatingPointError as e:
        log.warning("%s: %s; its frames keep the landmark fit", source, e)
        return sample
    report_clip_fit(fit, source)
    from core.capture.mask_trim import with_fit_masks

    sample, trims = with_fit_masks(fit.sample)
    raw = [int((fit.sample.mask[f, 0] > 127).sum()) for f in range(sample.num_frames)]
    cut = sum(n * t.trimmed for n, t in zip(raw, trims, strict=True))
    worst = max(range(len(trims)), key=lambda f: trims[f].trimmed)
    log.info(
        "%s: masks refinement fits trimmed to the fitted bodies: %.1f%% of mask pixels (at most %.1f%%, frame %d); "
        "%d frame(s) keep their raw mask (POOR fit)", source, 100 * cut / max(sum(raw), 1),
        100 * trims[worst].trimmed, worst, sum(t.note.startswith("POOR") for t in trims),
    )  # fmt: skip
    return sample
