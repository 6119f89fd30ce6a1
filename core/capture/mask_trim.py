"""Person masks trimmed to the fitted body before refinement fits them: mediapipe's segmenter takes in background
that touches the person (a keyboard before a seated pianist, a white cloth beside a man, wall between raised arms
and body), and refinement (core.model.personalise) paints what the mask holds onto the avatar. A frame's fitted
body, with its clothing allowance (core.capture.garment), says where the person can be: mask pixels further than a
margin from that silhouette are background, except around the head, where hair may stand far off the scalp.

The margin is relative to the body's size on screen (its projected head height): `BODY_MARGIN` head heights beyond
the dressed silhouette (loose sleeves, skirts, a held object's near part), and a disk of `HEAD_RADIUS` head heights
around the head's centre (hair, hats). Of what is left, mask regions that do not touch the dressed silhouette at all
are dropped (a patch of background inside the margin, cut off from the person). A frame whose fit is POOR keeps its
raw mask: its body may not lie on the person, so its silhouette says nothing about where the background is.
Ingestion (`prepare video`, core.capture.clip_fit.refit_sample) keeps both: `sample.mask` as the segmenter gave
it (what a frame is scored with) and `arrays["fit_mask"]`, the trimmed masks refinement fits (`with_fit_masks`);
`create --refine` trims its photos' masks the same way (core.capture.references.trimmed_checks)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from core.data.shards import Sample
from core.model.crops import BodyEstimate
from core.model.rig import BodyRig

BODY_MARGIN = 0.25  # head heights kept beyond the dressed silhouette (about 6 cm on an adult)
HEAD_RADIUS = 0.85  # head heights around the head's centre kept whatever the silhouette (hair, hats)


@dataclass(frozen=True)
class MaskTrim:
    """One mask trimmed to its fitted body."""

    mask: np.ndarray  # [H, W] uint8 (255 on the person): the trimmed mask (the raw one when not trimmed)
    trimmed: float  # share of the raw mask's pixels taken out (0 when not trimmed)
    head_px: float  # the body's projected head height (nan when not measured)
    note: str = ""  # why the mask was not trimmed, when it was not


def head_of(rig: BodyRig, est: BodyEstimate, garment: np.ndarray | None = None) -> tuple[np.ndarray, float] | None:
    """The fitted head on screen: its centre (u, v) pixels and height (pixels), from the posed vertices skinned
    mostly to the head region's bones (core.capture.garment.GARMENT_REGIONS["head"]); None when it is behind the
    camera or the rig has no bone names."""
    from core.capture.garment import GARMENT_REGIONS
    from core.capture.photo_fit import posed_vertices

    if rig.phenotype is None:
        return None
    prefixes = GARMENT_REGIONS["head"][0]
    bones = [j for j, n in enumerate(rig.phenotype.bone_names) if n.startswith(prefixes) and not n.startswith("neck")]
    head = rig.weights[:, bones].sum(-1) > 0.5  # [V]
    if not bool(head.any()):
        return None
    with torch.no_grad():
        V = posed_vertices(rig, est, garment).double()[head]  # [Vh, 3]
    T, K = est.camera.T_cam_world.double(), est.camera.K.double()
    cam = V @ T[:3, :3].T + T[:3, 3]
    if not bool((cam[:, 2] > 1e-3).all()):
        return None
    uv = torch.stack([K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2], K[1, 1] * cam[:, 1] / cam[:, 2] + K[1, 2]], -1)
    uv = uv.numpy()
    lo, hi = uv.min(0), uv.max(0)
    return (lo + hi) / 2, float(hi[1] - lo[1])


def trim_to_body(
    mask: np.ndarray,  # [H, W] uint8 person mask (> 127 on the person)
    dressed: np.ndarray,  # [H, W] uint8 silhouette of the fitted body with its clothing allowance (> 127 inside)
    head: tuple[np.ndarray, float],  # the head's centre (u, v) and height, pixels (`head_of`)
    *,
    body_margin: float = BODY_MARGIN,
    head_radius: float = HEAD_RADIUS,
) -> MaskTrim:
    """`mask` less what lies beyond `body_margin` head heights of `dressed` and outside the disk of `head_radius`
    head heights around the head, and less the regions left that do not touch `dressed` (module docstring)."""
    m = mask > 127
    total = int(m.sum())
    centre, head_px = head
    if total == 0 or not np.isfinite(head_px) or head_px <= 0:
        return MaskTrim(mask, 0.0, float(head_px), "empty mask or no head on screen")
    body = (dressed > 127).astype(np.uint8)
    r = max(1, round(body_margin * head_px))
    allowed = cv2.dilate(body, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
    disk = np.zeros_like(body)
    c = (round(float(centre[0])), round(float(centre[1])))
    cv2.circle(disk, c, max(1, round(head_radius * head_px)), 1, -1)
    allowed |= disk > 0
    keep = m & allowed
    n, labels = cv2.connectedComponents(keep.astype(np.uint8), connectivity=8)
    touching = np.unique(labels[keep & ((body > 0) | (disk > 0))])  # regions touching the body or the head
    keep &= np.isin(labels, touching[touching > 0])
    out = np.where(keep, mask, 0).astype(np.uint8)
    return MaskTrim(out, 1.0 - float(keep.sum()) / total, float(head_px))


def trim_frame_mask(
    rig: BodyRig,
    est: BodyEstimate,
    mask: np.ndarray,  # [H, W] uint8
    garment: np.ndarray | None = None,  # [R] clothing allowance (metres)
    *,
    poor: bool = False,
) -> MaskTrim:
    """A frame's (or photo's) person mask trimmed to its fitted body with its clothing allowance (`trim_to_body`);
    the raw mask when the fit is `poor` or the head is not on screen."""
    from core.capture.photo_fit import body_silhouette

    if poor:
        return MaskTrim(mask, 0.0, float("nan"), "POOR fit: raw mask kept")
    head = head_of(rig, est, garment)
    if head is None:
        return MaskTrim(mask, 0.0, float("nan"), "no fitted head on screen: raw mask kept")
    return trim_to_body(mask, body_silhouette(rig, est, mask.shape, garment), head)


def fit_poor(sample: Sample, f: int) -> bool | None:
    """Whether frame f's body fit is POOR as ingestion's silhouette fit measured it (core.capture.clip_fit
    .FrameQuality.poor: landmark error or silhouette IoU past the photos' limits); None when not measured."""
    from core.capture.photo_fit import IOU_WARN, REPROJ_WARN

    q = (sample.meta.get("fit_quality") or {}).get("silhouette_fit")
    if not q or f >= len(q.get("iou", [])):
        return None
    rel, iou = q["reproj_rel"][f], q["iou"][f]
    return not (rel is not None and rel <= REPROJ_WARN) or (iou is not None and np.isfinite(iou) and iou < IOU_WARN)


def trimmed_masks(sample: Sample, frames: np.ndarray, rig=None) -> list:
    """Frames `frames`' person masks trimmed to their fitted bodies with the clip's clothing allowance
    (`trim_frame_mask`, one MaskTrim each); a frame whose fit is POOR, or was not measured by
    the silhouette fit, keeps its raw mask."""
    from core.train.refine_frames import frame_estimates

    if rig is None:
        from core.capture.photos import _fit_rig

        rig = _fit_rig()
    g = (sample.meta.get("fit_quality") or {}).get("garment_m")
    garment = None if g is None else np.asarray(g, np.float32)
    out = []
    for f, est in zip(frames, frame_estimates(sample, frames), strict=True):
        mask = sample.mask[int(f), 0]
        poor = fit_poor(sample, int(f))
        if poor is None:
            out.append(MaskTrim(mask, 0.0, float("nan"), "no silhouette fit measured: raw mask kept"))
            continue
        out.append(trim_frame_mask(rig, est, mask, garment, poor=poor))
    return out


def with_fit_masks(sample: Sample, rig: BodyRig | None = None) -> tuple[Sample, list[MaskTrim]]:
    """The sample with `arrays["fit_mask"]` [F, H, W] uint8: camera 0's person masks trimmed to the fitted bodies
    (`trimmed_masks`), what refinement fits; `sample.mask` is left as it was (what frames are scored with). The
    share trimmed per frame goes into `meta["fit_quality"]["mask_trimmed"]` when the fit was measured."""
    trims = trimmed_masks(sample, np.arange(sample.num_frames), rig)
    arrays = dict(sample.arrays, fit_mask=np.stack([t.mask for t in trims]).astype(np.uint8))
    meta = dict(sample.meta)
    if isinstance(meta.get("fit_quality"), dict):
        meta["fit_quality"] = dict(meta["fit_quality"], mask_trimmed=[round(t.trimmed, 4) for t in trims])
    return dataclasses.replace(sample, arrays=arrays, meta=meta), trims
