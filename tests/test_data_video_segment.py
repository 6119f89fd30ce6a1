"""The person mask's GrabCut refinement on a synthetic frame: a thin limb as dark as the floor that the segmenter
half-trusts is kept along the skeleton's bones, and a detached blob the segmenter is sure of is dropped."""

from __future__ import annotations

import numpy as np

from core.data.video_segment import refine_mask


def _frame() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rgb [120, 120, 3], prob [120, 120], bones [120, 120] bool, blob [120, 120] bool)."""
    rgb = np.full((120, 120, 3), 60, np.uint8)  # a dark floor
    rgb[:, :, 2] = 70
    prob = np.zeros((120, 120), np.float32)
    rgb[15:65, 35:65] = (200, 40, 40)  # the torso: red, the segmenter is sure
    prob[15:65, 35:65] = 0.97
    rgb[65:110, 47:53] = (60, 60, 70)  # a thin leg as dark as the floor; the segmenter half-sure
    prob[65:110, 47:53] = 0.7
    blob = np.zeros((120, 120), bool)
    blob[20:40, 85:105] = True  # a ball beside the person, apart from them
    rgb[blob] = (210, 45, 40)
    prob[blob] = 0.95
    bones = np.zeros((120, 120), bool)
    bones[20:108, 49:51] = True  # spine and leg
    return rgb, prob, bones, blob


def test_refine_mask_keeps_a_thin_limb_along_the_bones_and_drops_a_detached_blob():
    rgb, prob, bones, blob = _frame()
    box = np.array([5, 5, 115, 115], np.float32)
    mask = refine_mask(rgb, prob, box, sure=bones) > 0
    assert mask[67:108, 49:51].all()  # the leg stays along its bone
    assert not mask[blob].any()  # the ball goes
    assert mask[20:60, 40:60].all()  # the torso stays
    plain = refine_mask(rgb, prob, box) > 0  # without the skeleton: the colour models drop the leg, keep the ball
    assert plain[67:108, 47:53].mean() < 0.2
    assert plain[blob].mean() > 0.9
