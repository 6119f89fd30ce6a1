"""The Drive panel's controller without the GUI: source specs, a missing camera, a network stream through the
filter and calibration, and a channel recording replayed as a source."""

from __future__ import annotations

import time

import pytest

from core.tracking.drive_control import DriveController, parse_input_spec
from core.tracking.types import DrivingFrame


def _poll_until(controller: DriveController, until, timeout: float = 5.0):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        update = controller.poll()
        if update is not None and until(update.driving.channels):
            return update
        time.sleep(0.01)
    raise AssertionError(f"no matching update; error: {controller.error}")


def test_source_specs_name_cameras_files_recordings_and_network_ports() -> None:
    assert parse_input_spec(0) == ("camera", 0)
    assert parse_input_spec(" 2 ") == ("camera", 2)
    assert parse_input_spec("clip.mp4") == ("video", "clip.mp4")
    assert parse_input_spec("frames/") == ("video", "frames/")
    assert parse_input_spec("take.npz") == ("recording", "take.npz")
    assert parse_input_spec("network:9000") == ("network", 9000)
    assert parse_input_spec("network") == ("network", 39539)
    with pytest.raises(ValueError, match="port number"):
        parse_input_spec("network:abc")


def test_missing_camera_gives_a_message_and_the_controller_stays_usable(tmp_path) -> None:
    c = DriveController()
    assert not c.open(57)
    assert not c.running and "camera 57" in c.error
    assert not c.open(tmp_path / "nothing.mp4")
    assert c.error and c.poll() is None


def test_network_stream_drives_channels_and_the_recording_replays_them(tmp_path) -> None:
    from core.tracking.network import ChannelSender

    c = DriveController()
    assert c.open("network:0"), c.error
    port = c.input.receiver.port
    tx = ChannelSender("127.0.0.1", port, protocol="vmc")
    c.start_recording()
    tx.send({"expr.jawOpen": 0.1, "pose.head.y": 10.0})
    first = _poll_until(c, lambda ch: "expr.jawOpen" in ch).driving.channels["expr.jawOpen"]
    assert first == pytest.approx(0.1, abs=1e-6)  # the One-Euro filter starts at the first value
    deadline = time.perf_counter() + 5.0
    jaw = first
    while jaw < 0.6 and time.perf_counter() < deadline:  # the filter follows a held value within moments
        tx.send({"expr.jawOpen": 0.8, "pose.head.y": 10.0})
        time.sleep(0.02)
        update = c.poll()
        jaw = update.driving.channels["expr.jawOpen"] if update is not None else jaw
    assert jaw >= 0.6, f"jawOpen stayed at {jaw}"
    c.set_group("face", False)  # a disabled group's channels are dropped
    tx.send({"expr.jawOpen": 0.9})
    update = _poll_until(c, lambda ch: "expr.jawOpen" not in ch)
    assert "pose.head.y" not in update.driving.channels
    path = c.stop_recording(tmp_path / "take.npz")
    tx.close()
    assert "expr.jawOpen" in c.channel_names

    assert c.open(path, loop=False)
    assert c.input.name.startswith("recording")
    replayed = _poll_until(c, lambda ch: "expr.jawOpen" in ch)
    assert 0.0 <= replayed.driving.channels["expr.jawOpen"] <= 1.0
    c.shutdown()
    assert not c.running


def test_emit_preview_writes_the_video_at_the_output_rate(tmp_path) -> None:
    import numpy as np

    c = DriveController()
    c.start_video(tmp_path / "v.mp4", fps=10.0)
    img = np.zeros((24, 32, 4), np.float32)
    for t in (0.0, 0.1, 0.2, 0.3):
        c.emit_preview(img, t)
    assert c.stop_video() == tmp_path / "v.mp4"
    assert (tmp_path / "v.mp4").stat().st_size > 0


def test_pipeline_records_the_raw_channels_for_neutral_calibration() -> None:
    import numpy as np

    from core.tracking.calibration import Calibration
    from core.tracking.filters import ChannelFilter
    from core.tracking.pipeline import ChannelPipeline
    from core.tracking.types import Landmarks, VideoFrame

    pipeline = ChannelPipeline(lambda lm: {"expr.jawOpen": 0.3}, ChannelFilter(), Calibration())
    frame = VideoFrame(np.zeros((4, 4, 3), np.uint8), 0, time.perf_counter(), 0.0)
    out = pipeline(Landmarks(0, (4, 4)), frame)
    assert isinstance(out, DrivingFrame) and out.channels["expr.jawOpen"] == pytest.approx(0.3)
    assert pipeline.capture_neutral()
    later = pipeline(Landmarks(1, (4, 4)), VideoFrame(frame.image, 1, time.perf_counter(), 0.1))
    assert later.channels["expr.jawOpen"] == pytest.approx(0.0, abs=1e-6)  # the neutral face maps to 0
