"""Real-footage ingestion on a photo that scikit-image ships, on frames with nobody in them, and its error
measure; mediapipe's graphs are built once for the file (about a second)."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.shards import Sample, iter_shard, write_shard

pytest.importorskip("mediapipe")
skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def ingestor():
    from core.data.video import Ingestor

    with Ingestor(size=128) as ing:
        yield ing


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(skdata.astronaut()[::2, ::2])  # 256x256, upper body


def test_data_video_fits_the_astronaut_photo_and_writes_a_shard(ingestor, astronaut, tmp_path):
    sample, report = ingestor.ingest([astronaut, astronaut], "astronaut.png")
    assert report.method == "mediapipe"
    assert report.frames_kept == 2 and not report.skipped, report.skipped
    assert sample is not None and sample.rgb.shape == (2, 1, 128, 128, 3)
    fg = sample.mask[0, 0] > 127
    assert 0.2 < fg.mean() < 0.8
    assert fg[30:50, 45:65].mean() > 0.9  # her face
    assert fg[100:125, 20:60].mean() > 0.8  # her suit below it
    assert fg[5:40, 100:125].mean() < 0.2  # the flag and sky behind her right shoulder
    x0, y0, x1, y1 = sample.arrays["head_box"][0, 0]
    assert 40 < (x0 + x1) / 2 < 75 and 20 < (y0 + y1) / 2 < 55
    T = sample.arrays["T_cam_world"][0, 0]
    assert 0.5 < T[2, 3] < 3.0  # the body is a sensible distance in front of the camera
    a = sample.arrays
    assert a["est_pose"].shape == (2, 104, 3) and np.abs(a["est_pose"]).max() > 0.05  # a posed body, not rest
    assert a["est_expression"].shape == (2, 52) and a["est_expression"].max() > 0.1  # she smiles
    assert np.isfinite(a["est_gaze"]).all() and a["est_gaze"].shape == (2, 2)
    assert max(report.reproj_px) < 0.08 * 256  # within the fit's own limit
    write_shard(tmp_path / "v.tar", [sample])
    back = next(iter(iter_shard(tmp_path / "v.tar")))
    np.testing.assert_array_equal(back.mask, sample.mask)
    np.testing.assert_allclose(back.arrays["est_pose"], a["est_pose"])
    assert back.meta["fit_method"] == "mediapipe"


def test_data_video_fitted_skeleton_lands_on_her_shoulders(ingestor, astronaut):
    from core.body.frame import BodyArrays
    from core.data.video_fit import landmarks_of_body, project_points
    from core.tracking.body_skeleton import default_skeleton

    sample, _ = ingestor.ingest([astronaut], "astronaut.png")
    a = sample.arrays
    body = BodyArrays(a["est_pose"][0], a["est_expression"][0], a["est_gaze"][0], a["est_translation"][0])
    uv = project_points(landmarks_of_body(default_skeleton(), body), a["K"][0, 0], a["T_cam_world"][0, 0])
    lm = ingestor._tracker.track(astronaut, 0).pose[:, :2] * 128  # mediapipe in the sample's pixels
    for i in (11, 12):  # shoulders
        assert np.linalg.norm(uv[i] - lm[i]) < 0.08 * 128


def test_data_video_keeps_the_trackers_landmarks_in_the_samples_pixels(ingestor, astronaut):
    from core.body.frame import BodyArrays
    from core.data.video_fit import landmarks_of_body, project_points
    from core.tracking.body_skeleton import default_skeleton

    wide = np.zeros((256, 320, 3), np.uint8)
    wide[:, 32:288] = astronaut  # a letterboxed frame: 320 wide -> 128, 256 high -> 102 rows and padding below
    sample, _ = ingestor.ingest([wide], "wide.png")
    got = sample.arrays["pose_landmarks"]
    assert got.shape == (1, 1, 33, 4) and got.dtype == np.float32
    a = sample.arrays
    body = BodyArrays(a["est_pose"][0], a["est_expression"][0], a["est_gaze"][0], a["est_translation"][0])
    uv = project_points(landmarks_of_body(default_skeleton(), body), a["K"][0, 0], a["T_cam_world"][0, 0])
    for i in (0, 11, 12):  # nose, shoulders: where the fitted body, seen through the sample's camera, puts them
        assert got[0, 0, i, 3] > 0.5 and np.linalg.norm(uv[i] - got[0, 0, i, :2] * 128) < 0.08 * 128


def test_data_video_reports_and_skips_frames_without_a_person(ingestor, astronaut):
    blank = np.full((96, 96, 3), 128, np.uint8)
    sample, report = ingestor.ingest([blank, blank], "blank")
    assert sample is None
    assert report.frames_kept == 0 and [i for i, _ in report.skipped] == [0, 1]
    assert "no person" in report.skipped[0][1]
    grey = np.full_like(astronaut, 128)
    sample, report = ingestor.ingest([astronaut, grey, astronaut], "mixed")
    assert report.kept == [0, 2] and [i for i, _ in report.skipped] == [1]
    assert sample.num_frames == 2 and sample.meta["skipped"] == report.skipped


def test_data_video_coarse_fallback_places_a_camera_facing_body(astronaut):
    from core.data.video import COARSE_FIT, ingest_frames

    sample, report = ingest_frames([astronaut], "astronaut.png", size=64, method="coarse")
    assert report.method == "coarse" and report.frames_kept == 1
    assert sample.meta["fit"] == COARSE_FIT
    T = sample.arrays["T_cam_world"][0, 0]
    np.testing.assert_allclose(np.linalg.det(T[:3, :3]), 1.0, atol=1e-5)  # a rotation
    assert T[2, 3] > 0.3
    assert np.all(sample.arrays["est_pose"] == 0)


def test_data_video_ingest_error_measures_mask_head_and_joint_offsets():
    from core.data.video_error import ingest_error

    F, H = 2, 64
    mask = np.zeros((F, 1, H, H), np.uint8)
    mask[..., 8:56, 20:44] = 255
    K = np.tile(np.array([[80.0, 0, 32], [0, 80.0, 32], [0, 0, 1]], np.float32), (F, 1, 1, 1))
    T = np.tile(np.diag([1.0, -1.0, -1.0, 1.0]).astype(np.float32), (F, 1, 1, 1))
    T[..., :3, 3] = [0.0, 1.0, 3.0]
    box = np.tile(np.array([26, 4, 38, 16], np.float32), (F, 1, 1))
    body = {
        "shape": np.full(6, 0.5, np.float32),
        "pose": np.zeros((F, 104, 3), np.float32),
        "translation": np.zeros((F, 3), np.float32),
        "expression": np.zeros((F, 52), np.float32),
        "gaze": np.zeros((F, 2), np.float32),
    }
    rgb = np.zeros((F, 1, H, H, 3), np.uint8)
    gt = Sample(
        "gt", {}, {"K": K, "T_cam_world": T, "head_box": box, **{f"gt_{k}": v for k, v in body.items()}}, rgb, mask
    )
    est_mask = mask[1:].copy()
    est_mask[..., 8:32, 20:44] = 0  # half the person missed
    est_T = T[1:].copy()
    est_T[..., 0, 3] += 0.3  # the body 0.3 m off sideways: 8 px at 3 m with f = 80
    est_arrays = {"K": K[1:], "T_cam_world": est_T, "head_box": box[1:] + np.array([3, 4, 3, 4], np.float32)}
    est_arrays |= {f"est_{k}": (v if k == "shape" else v[1:]) for k, v in body.items()}
    err = ingest_error(gt, Sample("est", {}, est_arrays, rgb[1:], est_mask), kept=[1])
    assert err["detection_rate"] == 0.5
    assert abs(err["mask_iou"] - 0.5) < 1e-6
    assert abs(err["head_centre_px"] - 5.0) < 1e-5
    assert err["joint_error_mm"] < 1.0  # same pose: root-aligned joints agree
    assert 7.0 < err["joint_reproj_px"] < 9.0  # 0.3 m * 80 / ~3 m
    assert err["head_depth_rel"] < 0.01
