"""The body fit of a clip's frames with silhouettes (core.capture.clip_fit): synthetic clips of a known body whose
landmark fit starts off (an arm the tracker does not see, the camera shifted) move onto the person's silhouette; a
letterbox's edge is no outline (the body is not pulled up to it); the corrections of consecutive frames are held
alike; a sample without landmarks is left as it is."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from core.capture.clip_fit import fit_clip, frame_quality, refit_sample
from core.capture.photo_fit import body_silhouette
from core.capture.shape_fit import PhotoTarget, ShapeFitConfig, _mask_term, _Problem, landmarks_uv
from core.data.shards import Sample
from core.model.crops import BodyEstimate
from core.raster.types import Camera

S = 96  # side of the synthetic frames
FAST = ShapeFitConfig(rounds=2, pose_steps=10, steps=8, temporal=1.0)
ARM = "upperarm01.L"
WRIST = 15  # the left wrist's pose landmark (unseen by the tracker here)
TORSO = (11, 12, 23, 24, 25, 26, 27, 28, 0)  # landmarks the tracker sees: shoulders, hips, knees, ankles, nose


@pytest.fixture(scope="module")
def rig():
    from core.model.rig import rig_from_body_asset

    return rig_from_body_asset()


def _estimate(rig, pose: np.ndarray, cam_x: float) -> BodyEstimate:
    from core.data.video_fit import R_CAM_WORLD, assumed_intrinsics

    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R_CAM_WORLD, [cam_x, 0.9, 3.0]
    params = rig.neutral_params(1).with_(rotations=torch.tensor(pose[None]).float())
    K = assumed_intrinsics((S, S), 1.2)
    return BodyEstimate(params, Camera(torch.tensor(K).float(), torch.tensor(T).float(), S, S))


def _clip(rig, frames: int = 3, *, arm_off: float = 0.7, cam_off: float = 0.08, cut: int | None = None) -> tuple:
    """(sample whose est_* and cameras are the start, true estimates): the true body lifts its left arm a little more
    in each frame; the start has that arm down by `arm_off` radians (unseen by the tracker) and the camera `cam_off`
    metres aside; `cut`: the source shows rows above it only (a letterbox below)."""
    names = list(rig.phenotype.bone_names)
    J, E = len(names), rig.expression_basis.shape[0]
    truth, start, masks, marks = [], [], [], []
    for f in range(frames):
        pose = np.zeros((J, 3))
        pose[names.index(ARM), 2] = 0.9 + 0.1 * f  # the arm raised sideways
        true = _estimate(rig, pose, 0.0)
        off = pose.copy()
        off[names.index(ARM), 2] -= arm_off
        truth.append(true)
        start.append(_estimate(rig, off, cam_off))
        masks.append(body_silhouette(rig, true, (S, S)))
        lm = np.zeros((33, 4))
        uv = landmarks_uv(rig, true)
        lm[list(TORSO), :2] = uv[list(TORSO)] / S
        lm[list(TORSO), 3] = 1.0
        marks.append(lm)
    valid = np.array([0, 0, S, S if cut is None else cut], np.float32)
    mask = np.stack(masks)
    if cut is not None:
        mask[:, cut:] = 0
    arrays = {
        "K": np.stack([e.camera.K.numpy() for e in start])[:, None],
        "T_cam_world": np.stack([e.camera.T_cam_world.numpy() for e in start])[:, None],
        "valid_box": np.repeat(valid[None, None], frames, 0),
        "est_shape": rig.default_shape.numpy().astype(np.float32),
        "est_pose": np.stack([e.params.rotations[0].numpy() for e in start]),
        "est_translation": np.zeros((frames, 3), np.float32),
        "est_expression": np.zeros((frames, E), np.float32),
        "est_gaze": np.zeros((frames, 2), np.float32),
        "pose_landmarks": np.stack(marks)[:, None].astype(np.float32),
    }
    sample = Sample("clip", {"source": "synthetic", "frames": list(range(frames))}, arrays,
                    np.zeros((frames, 1, S, S, 3), np.uint8), mask[:, None])  # fmt: skip
    return sample, truth


def test_clip_fit_moves_an_unseen_arm_and_a_shifted_camera_onto_the_silhouette(rig):
    sample, truth = _clip(rig)
    fit = fit_clip(sample, rig, dataclasses.replace(FAST, garment=0.0))
    from core.train.refine_frames import frame_estimates

    start, end = (frame_estimates(s, np.arange(3)) for s in (sample, fit.sample))
    for f, (b, a) in enumerate(zip(fit.before, fit.after, strict=True)):
        assert b.iou < 0.85 and a.iou > 0.9 and a.iou > b.iou + 0.08, (f, b.iou, a.iou)
        assert a.reproj_rel < 0.03, "the landmarks the tracker saw stay where it saw them"
        want = landmarks_uv(rig, truth[f])[WRIST]
        was, now = (float(np.linalg.norm(landmarks_uv(rig, e[f])[WRIST] - want)) for e in (start, end))
        assert now < 0.4 * was, (f, was, now)  # the wrist, seen only in the silhouette, came most of the way back
    dx = fit.sample.arrays["T_cam_world"][:, 0, 0, 3]
    assert np.abs(dx).max() < 0.03, dx  # the camera came back from 8 cm aside
    q = fit.sample.meta["fit_quality"]
    assert len(q["silhouette_fit"]["iou"]) == 3 and q["ms_per_frame"] > 0
    assert "silhouettes" in fit.sample.meta["fit"] and fit.sample.arrays["est_shape"].shape == (rig.num_shape,)
    assert "3 frames" in fit.summary()


def test_clip_fit_is_not_pulled_to_a_letterbox_edge(rig):
    sample, truth = _clip(rig, frames=2, arm_off=0.0, cam_off=0.0, cut=60)  # the legs below row 60 are not shown
    fit = fit_clip(sample, rig, dataclasses.replace(FAST, garment=0.0))
    for f, e in enumerate(fit.sample.arrays["T_cam_world"][:, 0]):
        np.testing.assert_allclose(e[:3, 3], truth[f].camera.T_cam_world[:3, 3].numpy(), atol=0.03)
    valid = np.zeros((S, S), bool)
    valid[:60] = True
    q = frame_quality(rig, truth[0], sample.arrays["pose_landmarks"][0, 0], sample.mask[0, 0], valid)
    assert q.iou > 0.97 and fit.after[0].iou > 0.9  # the truth scores itself within the shown pixels only


def test_mask_term_leaves_the_pixels_beyond_the_source_free():
    mask = np.zeros((80, 80), np.uint8)
    mask[20:60, 30:50] = 255
    valid = np.zeros((80, 80), bool)
    valid[:50] = True  # the person runs on below the shown rows
    term = _mask_term(mask, 40.0, ShapeFitConfig(), valid)
    assert term.outline[:, 1].max() < 48, "the edge of the shown pixels is no outline of the person"
    assert float(term.outside[60:, :].abs().max()) == 0.0 and float(term.outside[10, 10]) > 5
    full = _mask_term(mask, 40.0, ShapeFitConfig())
    assert full.outline[:, 1].max() >= 58


def test_temporal_term_holds_consecutive_corrections_alike(rig):
    sample, _ = _clip(rig, frames=3, arm_off=0.0, cam_off=0.0)
    from core.train.refine_frames import frame_estimates

    ests = frame_estimates(sample, np.arange(3))
    targets = [PhotoTarget(e, sample.arrays["pose_landmarks"][f, 0], None, 60.0) for f, e in enumerate(ests)]
    prob = _Problem(rig, targets, FAST)
    z, g = torch.zeros(rig.num_shape), torch.zeros(6)
    same = torch.full((3, len(prob.movable), 3), 0.1)
    jump = same.clone()
    jump[1] += 0.2
    cam = torch.zeros(3, 3)
    assert float(prob.terms(z, same, cam, g, [None] * 3)["temporal"]) == pytest.approx(0.0, abs=1e-9)
    assert float(prob.terms(z, jump, cam, g, [None] * 3)["temporal"]) > 0.1
    photos = _Problem(rig, targets, dataclasses.replace(FAST, temporal=0.0))
    assert "temporal" not in photos.terms(z, jump, cam, g, [None] * 3)


def test_refit_sample_leaves_a_sample_without_landmarks_as_it_is(rig):
    sample, _ = _clip(rig, frames=1)
    del sample.arrays["pose_landmarks"]
    assert refit_sample(sample, "coarse.png") is sample
    with pytest.raises(ValueError, match="no pose landmarks"):
        fit_clip(sample, rig)
