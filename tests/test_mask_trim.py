"""Person masks trimmed to the fitted body before refinement (core.capture.mask_trim): background far from the body
is cut, hair by the head and a garment beside the body are kept, a POOR fit keeps the raw mask."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch

from core.capture.mask_trim import BODY_MARGIN, fit_poor, trim_frame_mask, trim_to_body

H = W = 96
HEAD = (np.array([48.0, 14.0]), 12.0)  # centre (u, v) and height in pixels


def _body() -> np.ndarray:
    """[H, W] uint8: a toy dressed silhouette, a head (circle) over a torso and legs (rectangle)."""
    import cv2

    b = np.zeros((H, W), np.uint8)
    cv2.circle(b, (48, 14), 6, 255, -1)
    b[20:90, 38:58] = 255
    return b


def test_blob_far_from_the_body_is_trimmed():
    body = _body()
    mask = body.copy()
    mask[40:60, 75:92] = 255  # background 17+ px from the body (margin 3 px), attached to it by a strip
    mask[48:52, 58:75] = 255
    t = trim_to_body(mask, body, HEAD)
    far = np.zeros_like(mask, bool)
    far[40:60, 75:92] = True
    assert not (t.mask[far] > 127).any(), "the far blob is cut"
    assert ((t.mask > 127) >= (body > 127)).all(), "the body itself is never cut"
    assert 0.1 < t.trimmed < 0.3 and t.note == ""


def test_patch_inside_the_margin_cut_off_from_the_body_is_dropped():
    body = _body()
    mask = body.copy()
    mask[50:53, 60:62] = 255  # 2 px from the body, within the margin, but not touching it
    t = trim_to_body(mask, body, HEAD)
    assert not (t.mask[50:53, 60:62] > 127).any()
    assert np.array_equal(t.mask > 127, body > 127)


def test_hair_and_a_garment_next_to_the_body_are_kept():
    import cv2

    body = _body()
    mask = body.copy()
    cv2.circle(mask, (48, 14), 9, 255, -1)  # big hair: 3 px (a quarter of the head) beyond the scalp all round
    r = round(BODY_MARGIN * HEAD[1])  # a skirt flaring to the margin on both sides
    mask[55:80, 38 - r : 58 + r] = 255
    t = trim_to_body(mask, body, HEAD)
    assert t.trimmed == 0.0 and np.array_equal(t.mask, mask)


def test_poor_fit_keeps_the_raw_mask():
    mask = np.zeros((H, W), np.uint8)
    mask[5:90, 5:90] = 255
    t = trim_frame_mask(None, None, mask, poor=True)  # the body is not looked at
    assert t.mask is mask and t.trimmed == 0.0 and "POOR" in t.note


def test_fit_poor_reads_the_silhouette_fit():
    q = {"silhouette_fit": {"reproj_rel": [0.02, 0.09, 0.02, None], "iou": [0.8, 0.8, 0.4, 0.8]}}
    s = SimpleNamespace(meta={"fit_quality": q})
    assert [fit_poor(s, f) for f in range(4)] == [False, True, True, True]
    assert fit_poor(SimpleNamespace(meta={}), 0) is None, "not measured: no trim"
    assert fit_poor(s, 9) is None


def test_empty_mask_is_left_alone():
    mask = np.zeros((H, W), np.uint8)
    t = trim_to_body(mask, _body(), HEAD)
    assert t.trimmed == 0.0 and t.note
    t = trim_to_body(_body(), _body(), (HEAD[0], math.nan))
    assert t.trimmed == 0.0 and t.note


def test_photo_references_trim_only_trusted_landmark_fits(monkeypatch):
    import core.capture.mask_trim as mt
    from core.capture.mask_trim import MaskTrim
    from core.capture.photos import PhotoCheck
    from core.capture.references import trimmed_checks

    cut = np.zeros((H, W), np.uint8)
    monkeypatch.setattr(mt, "trim_frame_mask", lambda rig, est, mask, garment=None, poor=False: MaskTrim(cut, 0.5, 12))
    fit = lambda method, poor: SimpleNamespace(method=method, poor=poor, estimate=None, garment=None)  # noqa: E731
    mask = np.full((H, W), 255, np.uint8)
    checks = [
        PhotoCheck("a.png", (H, W), None, None, 1.0, 0.5, 0.0, mask=mask, fit=fit("landmarks", False)),
        PhotoCheck("b.png", (H, W), None, None, 1.0, 0.5, 0.0, mask=mask, fit=fit("landmarks", True)),
        PhotoCheck("c.png", (H, W), None, None, 1.0, 0.5, 0.0, mask=mask, fit=fit("box", False)),
    ]
    out = trimmed_checks(checks, rig=object())
    assert out[0].mask is cut and checks[0].mask is mask, "a trusted fit is trimmed, on a copy"
    assert out[1] is checks[1] and out[2] is checks[2], "POOR and box fits keep their masks"


def test_refinement_fits_the_trimmed_masks_and_scores_keep_the_raw_ones(real_footage):
    import dataclasses

    from core.train.evaluate import real_footage as load_footage
    from core.train.refine_frames import frame_views

    clip = load_footage(real_footage)[0]
    fit_mask = clip.mask[:, 0].copy()
    fit_mask[:, :, : fit_mask.shape[2] // 2] = 0  # the left half trimmed
    trimmed = dataclasses.replace(clip, arrays=dict(clip.arrays, fit_mask=fit_mask))
    refs = np.array([0, 1])
    raw, cut = frame_views(trimmed, refs), frame_views(trimmed, refs, trim=True)
    half = fit_mask.shape[2] // 2
    assert raw.trimmed == () and raw.masks[..., :half].sum() > 0, "without trim: the raw masks"
    assert not cut.masks[..., :half].any() and torch.equal(cut.masks[..., half:], raw.masks[..., half:])
    assert not cut.images[..., :half].any(), "nothing trimmed is fitted as the person"
    assert all(0 < t < 1 for t in cut.trimmed) and np.array_equal(trimmed.mask, clip.mask), "scores: the raw masks"
    assert frame_views(clip, refs, trim=True).trimmed == (), "no fit_mask: the raw masks"
