"""Real-footage ingestion on a photo that scikit-image ships, and on frames with nobody in them."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.shards import iter_shard, write_shard
from core.data.video import ingest_frames


def test_data_video_ingests_the_astronaut_photo_into_a_clip(tmp_path):
    skdata = pytest.importorskip("skimage.data")
    img = np.ascontiguousarray(skdata.astronaut()[::2, ::2])  # 256x256
    sample, report = ingest_frames([img, img], "astronaut.png", size=64)
    assert report.frames_kept == 2 and not report.skipped
    assert sample is not None and sample.rgb.shape == (2, 1, 64, 64, 3)
    fg = sample.mask[0, 0] > 127
    assert 0.05 < fg.mean() < 0.9
    x0, y0, x1, y1 = sample.arrays["head_box"][0, 0]
    assert 10 < (x0 + x1) / 2 < 40 and y1 < 40  # her face is in the upper left half
    assert sample.arrays["T_cam_world"][0, 0, 2, 3] > 0.3  # the person is in front of the camera
    write_shard(tmp_path / "v.tar", [sample])
    back = next(iter(iter_shard(tmp_path / "v.tar")))
    np.testing.assert_array_equal(back.mask, sample.mask)


def test_data_video_reports_and_skips_frames_without_a_person():
    blank = np.full((96, 96, 3), 128, np.uint8)
    sample, report = ingest_frames([blank, blank], "blank", size=32)
    assert sample is None
    assert report.frames_kept == 0 and [i for i, _ in report.skipped] == [0, 1]
    assert "no person" in report.skipped[0][1]


def test_data_video_ingest_error_measures_mask_and_head_offsets():
    from core.data.shards import Sample
    from core.data.video import ingest_error

    F, H = 2, 32
    mask = np.zeros((F, 1, H, H), np.uint8)
    mask[..., 8:24, 10:20] = 255
    K = np.tile(np.array([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]], np.float32), (F, 1, 1, 1))
    T = np.tile(np.eye(4, dtype=np.float32), (F, 1, 1, 1))
    T[..., 2, 3] = 2.0
    box = np.tile(np.array([10, 4, 20, 14], np.float32), (F, 1, 1))
    gt_arrays = {
        "K": K,
        "T_cam_world": T,
        "head_box": box,
        "gt_shape": np.full(6, 0.5, np.float32),
        "gt_pose": np.zeros((F, 104, 3), np.float32),
        "gt_translation": np.zeros((F, 3), np.float32),
        "gt_expression": np.zeros((F, 52), np.float32),
        "gt_gaze": np.zeros((F, 2), np.float32),
    }
    rgb = np.zeros((F, 1, H, H, 3), np.uint8)
    gt = Sample("gt", {}, gt_arrays, rgb, mask)
    est_mask = mask[1:].copy()
    est_mask[..., 8:16, 10:20] = 0  # half the person missed
    est = Sample(
        "est",
        {},
        {"K": K[1:], "T_cam_world": T[1:], "head_box": box[1:] + np.array([3, 4, 3, 4], np.float32)},
        rgb[1:],
        est_mask,
    )
    err = ingest_error(gt, est, kept=[1])
    assert err["detection_rate"] == 0.5
    assert abs(err["mask_iou"] - 0.5) < 1e-6
    assert abs(err["head_centre_px"] - 5.0) < 1e-5
    assert np.isfinite(err["head_depth_rel"])
