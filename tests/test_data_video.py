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
