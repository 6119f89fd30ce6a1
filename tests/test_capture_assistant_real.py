"""The capture assistant on a real photo (scikit-image's astronaut, waist up): the person is found as a body,
cut out by a mask, the body fitted with its error and silhouette IoU reported; the missing legs are named, the
crops carry the mask into the pixel-aligned views, and a photo whose fit is poor is refused for personalising."""

import cv2
import numpy as np
import pytest

pytest.importorskip("mediapipe")
skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    from core.capture.photos import CaptureAssistant

    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    a = CaptureAssistant()
    a.add(path)
    return a


def test_the_photo_is_checked_fitted_and_its_gaps_named(assistant):
    from core.capture.photos import coverage

    c = assistant.checks[0]
    assert c.usable and c.found_by.startswith("pose") and c.view == "front"
    assert c.lacks == ["legs"]
    assert any("legs are not in the photo" in p for p in c.problems)
    assert c.fit is not None and c.fit.method == "landmarks"
    assert np.isfinite(c.fit.reproj_px) and 0.0 < c.fit.iou < 1.0
    assert c.fit.silhouette.shape == c.mask.shape == (512, 512)
    assert "silhouette IoU" in c.fit.summary()
    _, guessed = coverage(assistant.checks)
    assert any("legs" in g for g in guessed)


def test_views_carry_the_person_mask_and_poor_fits_are_not_personalised(assistant):
    from app.panels.create import fit_overlay
    from core.capture.photos import photo_inputs
    from core.capture.references import photo_references
    from core.model.config import EncoderConfig
    from core.model.crops import crop_masks, crop_views
    from core.model.rig import rig_from_body_asset

    c = assistant.checks[0]
    rig = rig_from_body_asset()
    _, estimates, masks = photo_inputs(assistant.checks)
    cfg = EncoderConfig(body_crop=(256, 192))
    views = crop_views(estimates, rig, cfg).with_masks(crop_masks(masks, estimates, rig, cfg))
    assert views.mask is not None and views.mask.shape == (1, 256, 192)
    assert 0.05 < float(views.mask.mean()) < 0.9  # the crop spans the whole fitted body, legs below the photo
    from core.capture.photos import photo_trust

    trust = photo_trust(assistant.checks, len(rig.parents))
    assert trust is not None and trust.shape == (1, len(rig.parents))
    assert 0 <= float(trust.min()) and float(trust.max()) == 1.0
    assert views.with_trust(trust).trust is trust
    thumb = cv2.resize(skdata.astronaut(), (150, 150))
    assert (fit_overlay(thumb, c, 150 / 512) != thumb).any()
    c.fit = type(c.fit)(c.fit.estimate, "landmarks", 1e3, 100.0, 0.1, c.fit.silhouette)  # a poor fit
    assert c.fit.poor and "POOR FIT" in c.fit.summary()
    with pytest.raises(ValueError, match="body fit of every photo is poor"):
        photo_references(assistant.checks)
