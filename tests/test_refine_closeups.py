"""Head close-ups in `create --refine`: a zoomed camera of the same pose puts the fitted head at the crop's centre,
photos without a usable head get none (and a note), and refinement fits them and reports face scores."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import torch

from core.capture.references import photo_references
from core.capture.refine import refine_created, render_through, training_views
from core.io import write_json
from core.model.avatar import Avatar
from core.model.closeups import MIN_HEAD_PX, head_box, head_centre, head_closeup
from core.model.config import load_model_config
from core.model.crops import BodyEstimate, crop_inputs, project
from core.model.model import LCAModel
from core.model.rig import toy_rig
from core.raster.types import Camera

PHOTO = 256  # the photos' side: the toy head is ~50 px across at 2.5 m (close-ups need >= MIN_HEAD_PX)
SIDE = 32  # the refinement's image size


def _estimates(rig, eyes: list[tuple[float, float, float]], target=(0.0, 1.2, 0.0)) -> list[BodyEstimate]:
    cams = [Camera.look_at(e, target, width=PHOTO, height=PHOTO) for e in eyes]
    return BodyEstimate.split(rig.neutral_params(len(cams)), cams)


def test_the_closeup_camera_sees_the_fitted_head_at_the_crop_centre_at_the_refinement_size():
    rig = toy_rig()
    (est,) = _estimates(rig, [(0.8, 1.4, 2.4)])
    rgb = np.full((PHOTO, PHOTO, 3), 128, np.uint8)
    image, mask, valid, close = head_closeup(rgb, None, est, rig, SIDE)
    assert image.shape == (3, SIDE, SIDE) and mask.shape == valid.shape == (SIDE, SIDE)
    cam = close.camera
    assert (cam.width, cam.height) == (SIDE, SIDE)
    torch.testing.assert_close(cam.T_cam_world, est.camera.T_cam_world)  # the same pose, zoomed
    uv, _ = project(head_centre(rig, est)[None].float(), cam)
    box = head_box(rig, est)
    tol = SIDE / box.side  # the box's corner is rounded to whole photo pixels
    assert (uv[0] - SIDE / 2).abs().max() <= tol, uv
    assert box.side >= MIN_HEAD_PX
    assert float(cam.K[1, 1]) > float(est.camera.K[1, 1]) * SIDE / PHOTO * 2, "the close-up zooms in"


def test_a_photo_with_no_head_in_view_gets_no_closeup_and_a_note():
    rig = toy_rig()
    feet, far, ok = _estimates(rig, [(0.0, 0.3, 1.0), (0.0, 1.4, 30.0), (0.0, 1.4, 2.5)], target=(0.0, 1.2, 0.0))
    feet = BodyEstimate(feet.params, Camera.look_at((0.0, 0.3, 1.0), (0.0, 0.0, 0.0), width=PHOTO, height=PHOTO))
    rgb = np.full((PHOTO, PHOTO, 3), 128, np.uint8)
    assert "outside the photo" in head_closeup(rgb, None, feet, rig, SIDE)
    assert "px across" in head_closeup(rgb, None, far, rig, SIDE)
    assert "misplaced the head" in head_closeup(rgb, None, ok, rig, SIDE, head_trust=0.1)
    nobody = np.zeros((PHOTO, PHOTO), np.uint8)
    assert "person mask covers 0%" in head_closeup(rgb, nobody, ok, rig, SIDE)
    checks = [
        SimpleNamespace(usable=True, fit=None, image=rgb, mask=None, estimate=e, path=f"/photos/p{i}.png")
        for i, e in enumerate((ok, feet))
    ]
    refs = photo_references(checks, side=SIDE, head_rig=rig)
    assert refs.head_of == (0,) and refs.heads.names == ("p0.png (head)",)
    assert len(refs.head_notes) == 1 and refs.head_notes[0].startswith("p1.png: no head close-up: ")
    assert refs.select([1]).heads is None and refs.select([1, 0]).head_of == (1,)


def test_refine_with_closeups_fits_them_and_writes_face_scores(tmp_path):
    torch.manual_seed(0)
    rig = toy_rig()
    cfg = load_model_config("tiny", {"tokens": {"num_anchors": 32}, "heads": {"gaussians_per_anchor": 2}})
    model = LCAModel(cfg, rig).eval()
    ests = _estimates(rig, [(0.0, 1.4, 2.5), (0.9, 1.4, 2.3), (-0.9, 1.4, 2.3)])
    body, face = crop_inputs(list(torch.rand(3, 3, PHOTO, PHOTO)), ests, rig, cfg.encoder)
    avatar = Avatar.create(model, body_crops=body, face_crops=face)
    person = Avatar(model, avatar.state, strength=avatar.part_strength)
    person._set_canonical(albedo=(avatar.state.canonical.albedo * 0.3 + torch.tensor([0.7, 0.2, 0.1])).clamp(0, 1))
    checks = []
    for i, e in enumerate(ests):  # 'photos' of the person at full size, its silhouette as the mask
        colour, alpha = render_through(person, e)
        rgb = (colour.numpy() * 255).astype(np.uint8)
        mask = np.where(alpha.numpy() > 0.5, 255, 0).astype(np.uint8)
        checks.append(SimpleNamespace(usable=True, fit=None, image=rgb, mask=mask, estimate=e, path=f"p{i}.png"))
    refs = photo_references(checks, side=SIDE, head_rig=rig)
    assert refs.head_of == (0, 1, 2), refs.head_notes
    views = training_views(refs.select([0, 1]))
    assert views.names == ("p0.png", "p0.png (head)", "p1.png", "p1.png (head)"), "each close-up after its photo"
    seen: list[int] = []
    refined, report = refine_created(avatar, refs, 8, holdout=1, lr=0.05, progress=lambda s, loss: seen.append(s))
    assert seen == list(range(8)) and report.closeups == 2
    fm = report.face_means()
    assert all(v is not None for v in fm.values()), fm
    assert fm["fitted_after"] > fm["fitted_before"], fm
    assert any(line.startswith("face PSNR on 1 held-out head close-up(s)") for line in report.lines())
    out = tmp_path / "a.refine.json"
    write_json(out, report.to_json())
    js = __import__("json").loads(out.read_text())
    assert js["closeups"] == 2 and js["fitted"][0]["face_psnr_after"] > 0 and "mean_face_psnr" in js
    no_head = dataclasses.replace(report.fitted[0], face_psnr_before=math.nan, face_psnr_after=math.nan)
    js = dataclasses.replace(report, fitted=(no_head,)).to_json()
    assert js["fitted"][0]["face_psnr_before"] is None, "a photo without a close-up has no face score (JSON null)"
