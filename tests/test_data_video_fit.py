"""The body-fit maths of real-footage ingestion: channel conversion, camera translation by least squares,
fit failures, and a rendered clip with known truth (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from core.body.frame import body_arrays, body_arrays_from_channels
from core.data.video_fit import (
    FIT_POINTS,
    R_CAM_WORLD,
    FitConfig,
    FitFailed,
    assumed_intrinsics,
    fit_camera,
    landmarks_of_body,
    project_points,
    solve_translation,
)


def test_body_arrays_from_channels_converts_degrees_by_name():
    joints, exprs = ("root", "head", "wrist.L"), ("jawOpen", "eyeBlinkLeft")
    ch = {"pose.head.x": 30.0, "pose.wrist.L.z": -90.0, "pose.nosuch.y": 5.0, "expr.jawOpen": 0.4}
    ch |= {"gaze.yaw": 10.0, "root.y": -0.1}
    b = body_arrays_from_channels(ch, joints, exprs)
    np.testing.assert_allclose(b.pose, np.radians([[0, 0, 0], [30, 0, 0], [0, 0, -90]]))
    np.testing.assert_allclose(b.expression, [0.4, 0.0])
    np.testing.assert_allclose(b.gaze, np.radians([10.0, 0.0]))
    np.testing.assert_allclose(b.translation, [0.0, -0.1, 0.0])
    same = body_arrays(
        {"head": (30, 0, 0), "wrist.L": (0, 0, -90)}, {"jawOpen": 0.4}, (10, 0), (0, -0.1, 0), joints, exprs
    )
    np.testing.assert_allclose(same.pose, b.pose)


def test_skeleton_landmarks_match_the_body_model_joints():
    import torch

    from core.body import BodyModel
    from core.tracking.body_landmarks import FOOT_INDEX, POSE_BONES
    from core.tracking.body_skeleton import default_skeleton

    body = BodyModel("baked")
    rng = np.random.default_rng(0)
    pose = np.zeros((body.num_bones, 3))
    for name in ("root", "spine03", "upperarm01.L", "lowerarm01.R", "upperleg01.L", "lowerleg01.R"):
        pose[body.bone_names.index(name)] = rng.normal(0, 0.4, 3)
    b = body_arrays_from_channels({}, body.bone_names, body.expression_names)
    b = type(b)(pose, b.expression, b.gaze, np.array([0.1, -0.05, 0.2]))
    pts = landmarks_of_body(default_skeleton(), b)
    p = body.neutral_params(1)
    p = p.with_(
        rotations=torch.as_tensor(pose[None], dtype=p.shape.dtype), translation=torch.tensor([[0.1, -0.05, 0.2]])
    )
    joints = body(p).joints[0].double().numpy()
    for i, bone in POSE_BONES.items():
        if i in FOOT_INDEX.values():
            continue  # the toe tip, past its bone's head
        np.testing.assert_allclose(pts[i], joints[body.bone_names.index(bone)], atol=2e-4)


def test_solve_translation_recovers_a_known_camera():
    rng = np.random.default_rng(1)
    X = rng.uniform([-0.3, 0.0, -0.1], [0.3, 1.7, 0.1], (12, 3))
    K = assumed_intrinsics((320, 240), 1.2)
    t_true = np.array([0.1, 0.9, 3.5])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R_CAM_WORLD, t_true
    uv = project_points(X, K, T)
    t = solve_translation(X @ R_CAM_WORLD.T, uv + rng.normal(0, 0.3, uv.shape), np.ones(12), K)
    np.testing.assert_allclose(t, t_true, atol=0.05)


def _pose_from_world(points: np.ndarray, K: np.ndarray, T: np.ndarray, size) -> np.ndarray:
    uv = project_points(points, K, T) / np.array(size)
    return np.concatenate([uv, np.zeros((33, 1)), np.ones((33, 1))], 1)


def test_fit_camera_accepts_a_consistent_body_and_rejects_a_bad_or_hidden_one():
    from core.tracking.body_skeleton import default_skeleton

    joints = body_arrays_from_channels({}, default_skeleton().names, ())
    pts = landmarks_of_body(default_skeleton(), joints)
    size, K = (256, 256), assumed_intrinsics((256, 256), 1.2)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R_CAM_WORLD, [0.0, 0.9, 3.0]
    pose = _pose_from_world(pts, K, T, size)
    T_fit, used, rms, _ = fit_camera(pts, pose, size, K, FitConfig())
    assert rms < 0.5 and used.sum() == len(FIT_POINTS)
    np.testing.assert_allclose(T_fit, T, atol=1e-4)
    bent = pose.copy()
    bent[[13, 15, 25, 27], 0] += 0.2  # an elbow, wrist, knee and ankle 50 px away from where the body can reach
    with pytest.raises(FitFailed, match="reprojection error"):
        fit_camera(pts, bent, size, K, FitConfig())
    hidden = pose.copy()
    hidden[11:, 3] = 0.1  # only the face points are seen
    with pytest.raises(FitFailed, match="usable pose landmarks"):
        fit_camera(pts, hidden, size, K, FitConfig())


@pytest.mark.slow
def test_data_video_fits_a_rendered_clip_close_to_its_truth():
    pytest.importorskip("mediapipe")
    from core.data.video import Ingestor
    from core.data.video_bench import frontal_clip
    from core.data.video_error import ingest_error

    gt = frontal_clip(0, frames=2, size=192, detail=0.15, motion="wave")
    with Ingestor(size=192) as ing:
        est, report = ing.ingest([gt.rgb[f, 0] for f in range(2)], gt.key, fps=15)
    assert est is not None, report.skipped
    err = ingest_error(gt, est, report.kept)
    assert err["mask_iou"] > 0.6
    assert err["joint_reproj_px"] < 0.1 * 192
    assert err["joint_error_mm"] < 250
