"""TrackingWorker: ordered offline processing, realtime pacing with dropped stale frames, errors, stop."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from test_tracking_runtime_sources import write_video

from core.tracking.sources import SourceError, open_source
from core.tracking.types import DrivingFrame, Landmarks, VideoFrame
from core.tracking.worker import TrackingWorker


class FakeTracker:
    """Reports the mean red value of the frame as a 'landmark'; optionally slow or failing."""

    def __init__(self, delay: float = 0.0, fail_at: int | None = None):
        self.delay, self.fail_at, self.thread_names = delay, fail_at, set()

    def track(self, image: np.ndarray, frame_index: int) -> Landmarks:
        self.thread_names.add(threading.current_thread().name)
        if self.fail_at is not None and frame_index >= self.fail_at:
            raise RuntimeError("model exploded")
        time.sleep(self.delay)
        face = np.full((478, 3), image[..., 0].mean() / 255.0, np.float32)
        return Landmarks(frame_index=frame_index, image_size=(image.shape[1], image.shape[0]), face=face)

    def close(self) -> None:
        pass


def record_process(seen: list):
    def process(lm: Landmarks, frame: VideoFrame) -> DrivingFrame:
        seen.append(frame.index)
        return DrivingFrame({"expr.jawOpen": float(lm.face[0, 0])})

    return process


class BrokenSource:
    name, live, fps = "broken", False, 30.0

    def __init__(self):
        self.closed = False

    def read(self):
        raise SourceError("camera 0 stopped sending frames (unplugged or used by another app?): plug it back in")

    def close(self):
        self.closed = True


def test_offline_worker_processes_every_frame_in_order_and_finishes(tmp_path):
    write_video(tmp_path / "c.mp4", n=8)
    seen: list[int] = []
    w = TrackingWorker(open_source(str(tmp_path / "c.mp4")), FakeTracker(), record_process(seen), realtime=False)
    w.start()
    assert w.wait(10.0)
    assert seen == list(range(8))
    assert w.finished and w.error is None and not w.running
    frame, lm, df = w.latest()
    assert frame.index == 7 and lm.frame_index == 7 and df.frame_index == 7
    assert set(df.timings_ms) >= {"capture", "tracking", "retarget"}
    assert all(v >= 0 for v in df.timings_ms.values())
    # the red channel grows with the frame number in write_video's frames
    assert df.channels["expr.jawOpen"] > 0.0


def test_realtime_worker_paces_a_file_at_its_fps(tmp_path):
    write_video(tmp_path / "c.mp4", n=10, fps=25.0)
    seen: list[int] = []
    t0 = time.perf_counter()
    w = TrackingWorker(open_source(str(tmp_path / "c.mp4")), FakeTracker(), record_process(seen), realtime=True)
    w.start()
    assert w.wait(10.0)
    elapsed = time.perf_counter() - t0
    assert elapsed >= 9 / 25.0 * 0.9, f"10 frames at 25 fps took only {elapsed:.3f} s"
    assert w.finished and seen == list(range(10))
    assert 5.0 < w.fps < 60.0


def test_slow_tracking_drops_stale_frames_instead_of_queueing(tmp_path):
    write_video(tmp_path / "c.mp4", n=30, fps=200.0)
    seen: list[int] = []
    tracker = FakeTracker(delay=0.03)
    w = TrackingWorker(open_source(str(tmp_path / "c.mp4")), tracker, record_process(seen), realtime=True)
    w.start()
    assert w.wait(10.0)
    assert w.finished
    assert len(seen) < 30 and w.frames_dropped > 0
    assert seen == sorted(seen), "frames are tracked in capture order"
    assert seen[-1] == 29, "the newest frame is always tracked"
    assert tracker.thread_names == {"tracking"}


def test_source_failure_sets_a_readable_error_and_closes_the_source():
    src = BrokenSource()
    w = TrackingWorker(src, FakeTracker(), record_process([]), realtime=True)
    w.start()
    assert w.wait(5.0)
    assert w.error is not None and w.error.startswith("camera 0 stopped sending frames")
    assert "Traceback" not in w.error
    assert not w.finished and src.closed


def test_tracker_failure_stops_cleanly_with_the_stage_named(tmp_path):
    write_video(tmp_path / "c.mp4", n=8)
    seen: list[int] = []
    w = TrackingWorker(
        open_source(str(tmp_path / "c.mp4")), FakeTracker(fail_at=3), record_process(seen), realtime=False
    )
    w.start()
    assert w.wait(5.0)
    assert seen == [0, 1, 2]
    assert w.error == "tracking failed: RuntimeError: model exploded"
    assert not w.finished and not w.running


def test_stop_joins_a_looping_source_quickly(tmp_path):
    write_video(tmp_path / "c.mp4", n=5, fps=100.0)
    w = TrackingWorker(open_source(str(tmp_path / "c.mp4"), loop=True), FakeTracker(), record_process([]))
    w.start()
    time.sleep(0.2)
    assert w.running
    t = time.perf_counter()
    w.stop(timeout=2.0)
    assert not w.running and time.perf_counter() - t < 2.0
    assert not w.finished and w.error is None
    with pytest.raises(RuntimeError, match="already started"):
        w.start()


def test_worker_with_the_real_tracker_finds_a_face_in_every_frame(tmp_path):
    from skimage import data

    from core.tracking.landmarks import Tracker

    face = cv2.cvtColor(cv2.resize(data.astronaut(), (256, 256)), cv2.COLOR_RGB2BGR)
    vw = cv2.VideoWriter(str(tmp_path / "a.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (256, 256))
    for dx in range(0, 12, 2):
        vw.write(np.roll(face, dx, axis=1))
    vw.release()
    got: list[Landmarks] = []

    def process(lm: Landmarks, frame: VideoFrame) -> DrivingFrame:
        got.append(lm)
        return DrivingFrame({})

    with Tracker(body=False, hands=False) as tracker:
        w = TrackingWorker(open_source(str(tmp_path / "a.mp4")), tracker, process, realtime=False)
        w.start()
        assert w.wait(30.0) and w.error is None
    assert len(got) == 6 and all(lm.face is not None and lm.face.shape == (478, 3) for lm in got)
    # the face moves right as the picture is rolled right
    assert got[-1].face[:, 0].mean() > got[0].face[:, 0].mean() + 0.02
