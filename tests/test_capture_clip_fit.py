"""The body fit of a clip's frames with silhouettes (core.capture.clip_fit): synthetic clips of a known body whose
landmark fit starts off (an arm the tracker does not see, the camera shifted) move onto the person's silhouette; a
letterbox's edge is no outline (the body is not pulled up to it); the corrections of consecutive frames are held
alike; a head-and-shoulders clip whose shoulder landmarks lie wider than the body's shoulder joints keeps its head's
size; a sample without landmarks is left as it is."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from core.capture.clip_fit import fit_clip, frame_quality, is_bust, refit_sample
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


def _estimate(rig, pose: np.ndarray, cam_x: float, cam_yz: tuple[float, float] = (0.9, 3.0)) -> BodyEstimate:
    from core.data.video_fit import R_CAM_WORLD, assumed_intrinsics

    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R_CAM_WORLD, [cam_x, *cam_yz]
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
    assert fit.bust == (False,) * 3 and q["bust_frames"] == []  # the hips are seen: whole-body frames


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


def _bust_clip(rig, frames: int = 2, widen: float = 1.22) -> Sample:
    """A head-and-shoulders clip of the template body, camera 1 m before its face (the hips below the frame): the
    face's landmarks where the body has them, the shoulders' `widen` times further apart (the tracker places them on
    the outside of the shoulders, 2.6-2.7 ear spans apart where the body's joints are 2.2), the start the truth."""
    E = rig.expression_basis.shape[0]
    true = _estimate(rig, np.zeros((len(rig.phenotype.bone_names), 3)), 0.0, (1.45, 1.0))
    uv = landmarks_uv(rig, true)
    lm = np.zeros((33, 4))
    lm[[0, 2, 5, 7, 8], :2] = uv[[0, 2, 5, 7, 8]] / S
    mid = (uv[11] + uv[12]) / 2
    lm[[11, 12], :2] = (mid + widen * (uv[[11, 12]] - mid)) / S
    lm[[0, 2, 5, 7, 8, 11, 12], 3] = 1.0
    lm[[23, 24], :2], lm[[23, 24], 3] = uv[[23, 24]] / S, 1.0  # the hips: seen, but below the frame
    assert lm[23, 1] > 1.02 and is_bust(lm)
    arrays = {
        "K": np.repeat(true.camera.K.numpy()[None, None], frames, 0),
        "T_cam_world": np.repeat(true.camera.T_cam_world.numpy()[None, None], frames, 0),
        "est_shape": rig.default_shape.numpy().astype(np.float32),
        "est_pose": np.repeat(true.params.rotations.numpy(), frames, 0),
        "est_translation": np.zeros((frames, 3), np.float32),
        "est_expression": np.zeros((frames, E), np.float32),
        "est_gaze": np.zeros((frames, 2), np.float32),
        "pose_landmarks": np.repeat(lm[None, None], frames, 0).astype(np.float32),
    }
    mask = body_silhouette(rig, true, (S, S))
    chest = int(mid[1]) - 4  # below it the person is wider than the template (clothes, broader shoulders)
    mask[chest:] = cv2.dilate(mask, np.ones((1, 9), np.uint8))[chest:]
    mask = np.repeat(mask[None, None], frames, 0)
    return Sample("bust", {"source": "synthetic", "frames": list(range(frames))}, arrays,
                  np.zeros((frames, 1, S, S, 3), np.uint8), mask)  # fmt: skip


def test_a_head_and_shoulders_clip_keeps_its_head_size(rig):
    from core.train.refine_frames import frame_estimates

    sample = _bust_clip(rig)
    lm = sample.arrays["pose_landmarks"][0, 0]

    def ear_px(fit) -> float:
        est = frame_estimates(fit.sample, np.arange(1))[0]
        return float(np.linalg.norm(landmarks_uv(rig, est)[[7, 8]] - lm[[7, 8], :2] * S, axis=-1).mean())

    fit = fit_clip(sample, rig)
    assert fit.bust == (True, True) and fit.sample.meta["fit_quality"]["bust_frames"] == [0, 1]
    whole = fit_clip(sample, rig, bust=False)  # fitted as a whole-body frame: shoulders and silhouette
    assert whole.bust == (False, False)
    # the clip's fit (CLIP_FIT): ears 0.15 px off as a bust, 0.58 px fitted whole (the head scaled up)
    assert ear_px(fit) < 0.4 and ear_px(whole) > 2.5 * ear_px(fit), (ear_px(fit), ear_px(whole))


def test_refit_sample_leaves_a_sample_without_landmarks_as_it_is(rig):
    sample, _ = _clip(rig, frames=1)
    del sample.arrays["pose_landmarks"]
    assert refit_sample(sample, "coarse.png") is sample
    with pytest.raises(ValueError, match="no pose landmarks"):
        fit_clip(sample, rig)
