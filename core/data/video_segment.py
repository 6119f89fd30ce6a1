"""Finding and cutting out the person in real footage: a box from mediapipe's pose and face landmarks, and a
mask from mediapipe's selfie segmentation (its model ships in the wheel) refined by OpenCV's GrabCut."""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

GRABCUT_SIDE = 320  # GrabCut runs on the box resized to at most this side (its cost grows with the pixels)


def person_box_from_landmarks(
    pose: np.ndarray | None,  # [33, 4] normalised x, y, z, visibility (or None)
    face: np.ndarray | None,  # [478, 3] normalised face mesh (or None)
    size: tuple[int, int],  # (W, H) of the frame
    *,
    min_visibility: float = 0.5,
    pad: float = 0.12,
) -> np.ndarray | None:
    """Box [x0, y0, x1, y1] (pixels) around the visible landmarks, padded by `pad` of its size on each side
    (more above the head, whose hair the landmarks miss), clipped to the frame; None if nothing is seen."""
    W, H = size
    pts = []
    if pose is not None:
        p = np.asarray(pose, np.float64)
        ok = (np.nan_to_num(p[:, 3]) >= min_visibility) & (np.abs(p[:, :2] - 0.5) < 0.55).all(1)
        pts.append(p[ok, :2])
    if face is not None:
        pts.append(np.asarray(face, np.float64)[:, :2])
    if not pts or sum(len(q) for q in pts) < 3:
        return None
    xy = np.concatenate(pts) * np.array([W, H])
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    s = max(x1 - x0, y1 - y0, 8.0)
    box = np.array([x0 - pad * s, y0 - 2 * pad * s, x1 + pad * s, y1 + pad * s])
    box = np.clip(box, 0, [W, H, W, H])
    if box[2] - box[0] < 4 or box[3] - box[1] < 4:
        return None
    return box.astype(np.float32)


def refine_mask(
    rgb: np.ndarray,  # [H, W, 3] uint8
    prob: np.ndarray,  # [H, W] float person probability (selfie segmentation)
    box: np.ndarray,  # [4] person box (pixels): outside is background
    iters: int = 2,
    sure: np.ndarray | None = None,  # [H, W] bool: on the person (e.g. along the skeleton's bones), or None
) -> np.ndarray:
    """GrabCut seeded by the probability map inside the box -> mask [H, W] uint8 (255 = person).

    Confident pixels (p > 0.9, p < 0.1) are fixed; the rest are only probable, so colour models can move
    the boundary onto the image's edges. `sure` pixels the segmenter calls person (p > 0.5) are fixed too (thin,
    low-contrast limbs the colour models would drop), and then only the parts of the mask connected to them are
    kept (a held ball or a block of wall the segmenter took in, when detached). Falls back to the thresholded
    probability when GrabCut cannot run.
    """
    H, W = prob.shape
    x0, y0 = (int(np.floor(v)) for v in box[:2])
    x1, y1 = (int(np.ceil(v)) for v in box[2:])
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    plain = np.where(prob > 0.5, 255, 0).astype(np.uint8)
    out = np.zeros((H, W), np.uint8)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return out
    out[y0:y1, x0:x1] = plain[y0:y1, x0:x1]
    p = prob[y0:y1, x0:x1]
    fg, bg = p > 0.9, p < 0.1
    if fg.sum() < 16 or bg.sum() < 16:
        return out  # GrabCut needs samples of both; the box is all person or all background
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    s = min(1.0, GRABCUT_SIDE / max(crop.shape[:2]))
    size = (max(8, round(crop.shape[1] * s)), max(8, round(crop.shape[0] * s)))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA) if s < 1 else crop
    ps = cv2.resize(p, size, interpolation=cv2.INTER_LINEAR) if s < 1 else p
    gc = np.where(ps > 0.5, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    gc[ps > 0.9], gc[ps < 0.1] = cv2.GC_FGD, cv2.GC_BGD
    seeds = None
    if sure is not None:
        seeds = np.asarray(sure, bool) & (prob > 0.5)  # [H, W]
        ss = seeds[y0:y1, x0:x1].astype(np.uint8)
        ss = cv2.resize(ss * 255, size, interpolation=cv2.INTER_AREA) > 0 if s < 1 else ss > 0  # thin lines kept
        gc[ss] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, iters, cv2.GC_INIT_WITH_MASK)
    except cv2.error as e:
        log.debug("GrabCut failed (%s): keeping the selfie-segmentation mask", e)
        return out
    m = np.where((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    if s < 1:
        m = cv2.resize(m, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_NEAREST)
    out[y0:y1, x0:x1] = m
    return _with_connected_outside(out, plain, (x0, y0, x1, y1), seeds)


def _with_connected_outside(
    inside: np.ndarray,  # [H, W] uint8 refined mask (0 outside the box)
    plain: np.ndarray,  # [H, W] uint8 thresholded probability
    box: tuple[int, int, int, int],
    seeds: np.ndarray | None = None,  # [H, W] bool pixels known to be on the person, or None
) -> np.ndarray:
    """The refined mask inside the box plus the segmentation's person pixels outside it that are connected to
    it (the box misses limbs whose landmarks were unsure; other people elsewhere stay out); with `seeds`, only
    the parts connected to them (every part inside the box when no seed is in the mask)."""
    x0, y0, x1, y1 = box
    outside = plain.copy()
    outside[y0:y1, x0:x1] = 0
    both = np.maximum(inside, outside)
    n, labels = cv2.connectedComponents((both > 0).astype(np.uint8), connectivity=8)
    if n <= 1:
        return inside
    keep = np.zeros(n, bool)
    if seeds is not None:
        keep[np.unique(labels[seeds])] = True
        keep[0] = False
    if not keep.any():
        keep[np.unique(labels[y0:y1, x0:x1][inside[y0:y1, x0:x1] > 0])] = True
        keep[0] = False
    return np.where(keep[labels], 255, 0).astype(np.uint8)


class Segmenter:
    """mediapipe selfie segmentation (general model, bundled in the wheel); the graph is built on first use."""

    def __init__(self) -> None:
        self._graph: Any = None

    def probability(self, rgb: np.ndarray) -> np.ndarray:
        """Person probability [H, W] float32 in [0, 1] of an RGB uint8 frame [H, W, 3]."""
        from core.tracking.landmarks import _native_stderr_silenced, _solutions  # noqa: PLC0415

        if self._graph is None:
            with _native_stderr_silenced():
                self._graph = _solutions().selfie_segmentation.SelfieSegmentation(model_selection=0)
        with _native_stderr_silenced():
            res = self._graph.process(np.ascontiguousarray(rgb))
        if res.segmentation_mask is None:
            return np.zeros(rgb.shape[:2], np.float32)
        return np.asarray(res.segmentation_mask, np.float32)

    def __call__(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Mask [H, W] uint8 (255 = person) of the person in `box` [4]."""
        return refine_mask(rgb, self.probability(rgb), box)

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None
