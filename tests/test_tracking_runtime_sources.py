"""Frame sources: webcam errors, video files, image folders."""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np
import pytest

from core.tracking.sources import FrameSource, SourceError, fit_size, open_source


def _coloured(i: int, w: int, h: int) -> np.ndarray:
    """[H, W, 3] BGR frame whose left half is blue-ish with a brightness that encodes i."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 40, min(255, 10 + 8 * i))  # B, G, R
    return img


def write_video(path, n: int = 6, w: int = 160, h: int = 120, fps: float = 25.0) -> None:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert vw.isOpened()
    for i in range(n):
        vw.write(_coloured(i, w, h))
    vw.release()


def test_absent_camera_raises_source_error_quickly():
    t = time.perf_counter()
    with pytest.raises(SourceError, match="camera 7 is not available"):
        open_source(7)
    with pytest.raises(SourceError, match="camera 7"):
        open_source("7")
    assert time.perf_counter() - t < 5.0


def test_missing_path_raises_source_error_that_says_what_to_give(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder.*webcam index"):
        open_source(str(tmp_path / "nope.mp4"))


def test_video_file_source_reads_rgb_frames_with_timestamps_and_ends(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, n=6, fps=25.0)
    with open_source(str(path)) as src:
        assert isinstance(src, FrameSource)
        assert not src.live and src.fps == pytest.approx(25.0)
        frames = []
        while (f := src.read()) is not None:
            frames.append(f)
    assert [f.index for f in frames] == list(range(6))
    assert [f.source_time for f in frames] == pytest.approx([i / 25.0 for i in range(6)])
    img = frames[0].image
    assert img.shape == (120, 160, 3) and img.dtype == np.uint8
    r, g, b = img[60, 20].astype(int)
    assert b > 150 and r < 60, "the frame must be RGB (blue stays in the last channel)"


def test_video_file_loop_restarts_and_time_keeps_rising(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, n=4, fps=20.0)
    src = open_source(str(path), loop=True)
    frames = [src.read() for _ in range(10)]
    src.close()
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == list(range(10))
    times = [f.source_time for f in frames]
    assert np.all(np.diff(times) > 0)
    assert times[4] == pytest.approx(4 / 20.0)
    # the 5th frame is the first frame again
    np.testing.assert_allclose(frames[4].image.astype(int), frames[0].image.astype(int), atol=3)


def test_large_frames_shrink_to_fit_keeping_aspect(tmp_path):
    path = tmp_path / "wide.mp4"
    write_video(path, n=2, w=320, h=120)
    with open_source(str(path), width=160, height=120) as src:
        assert src.read().image.shape == (60, 160, 3)
    assert fit_size(100, 50, 640, 480) == (100, 50)  # never enlarged
    assert fit_size(1280, 720, 640, 480) == (640, 360)


def test_image_folder_reads_sorted_and_skips_unreadable_files(tmp_path, caplog):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"f{i:02d}.png"), _coloured(i, 40, 30))
    (tmp_path / "f01b.jpg").write_bytes(b"not a picture")
    (tmp_path / "notes.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING), open_source(str(tmp_path)) as src:
        frames = []
        while (f := src.read()) is not None:
            frames.append(f)
    assert len(frames) == 3
    reds = [int(f.image[10, 5, 0]) for f in frames]
    assert reds == sorted(reds), "images come in name order"
    assert any("f01b.jpg" in r.message for r in caplog.records)


def test_empty_image_folder_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path))


def test_single_image_file_is_a_one_frame_source_that_can_loop(tmp_path):
    path = tmp_path / "one.png"
    cv2.imwrite(str(path), _coloured(1, 40, 30))
    with open_source(str(path), loop=True) as src:
        assert src.read() is not None and src.read() is not None
    with open_source(str(path)) as src:
        assert src.read() is not None and src.read() is None
