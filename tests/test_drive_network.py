"""Network driving (VMC / OSC out, ARKit-style blendshapes in) over loopback, the live mp4 writer and the
virtual camera's message when none is installed."""

from __future__ import annotations

import numpy as np
import pytest
from network_wait import wait_for_frame

from core.tracking.network import (
    BlendshapeReceiver,
    ChannelSender,
    axis_angle_deg_from_quat,
    parse_host_port,
    quat_from_axis_angle_deg,
    vmc_bone_quats,
)


def test_parse_host_port_accepts_host_port_and_rejects_garbage() -> None:
    assert parse_host_port("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_host_port("localhost") == ("localhost", 39539)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_host_port("host:notaport")


def test_axis_angle_and_quaternion_round_trip() -> None:
    for v in ([0.0, 0.0, 0.0], [30.0, 0.0, 0.0], [10.0, -20.0, 45.0]):
        np.testing.assert_allclose(axis_angle_deg_from_quat(quat_from_axis_angle_deg(v)), v, atol=1e-9)


def test_vmc_head_rotation_is_mirrored_into_unity_frame() -> None:
    q = vmc_bone_quats({"pose.head.y": 30.0})["Head"]  # turn about +y in our frame
    assert q[1] == pytest.approx(-np.sin(np.radians(15.0)))  # about -y in Unity's left-handed frame
    eyes = vmc_bone_quats({"gaze.yaw": 20.0})
    assert set(eyes) == {"LeftEye", "RightEye"}


def test_vmc_blendshapes_and_head_round_trip_over_loopback() -> None:
    with BlendshapeReceiver("127.0.0.1", 0) as rx:
        tx = ChannelSender("127.0.0.1", rx.port, protocol="vmc")
        tx.send({"expr.jawOpen": 0.6, "expr.eyeBlinkLeft": 0.25, "pose.head.y": 20.0, "pose.head.x": -5.0})
        frame = wait_for_frame(rx, lambda c: "expr.jawOpen" in c and "pose.head.y" in c)
        tx.close()
    assert frame.channels["expr.jawOpen"] == pytest.approx(0.6, abs=1e-6)
    assert frame.channels["expr.eyeBlinkLeft"] == pytest.approx(0.25, abs=1e-6)
    assert frame.channels["pose.head.y"] == pytest.approx(20.0, abs=1e-3)
    assert frame.channels["pose.head.x"] == pytest.approx(-5.0, abs=1e-3)
    assert frame.t_capture > 0 and rx.messages >= 4


def test_plain_osc_and_arkit_addresses_are_received() -> None:
    from pythonosc.udp_client import SimpleUDPClient

    with BlendshapeReceiver("127.0.0.1", 0) as rx:
        ChannelSender("127.0.0.1", rx.port, protocol="osc").send({"gaze.yaw": -12.5})
        client = SimpleUDPClient("127.0.0.1", rx.port)
        client.send_message("/ARKit/mouthSmileLeft", 0.4)
        client.send_message("/EyeBlinkRight", 1.7)  # Live Link style capitalised name, clamped to [0, 1]
        frame = wait_for_frame(rx, lambda c: {"gaze.yaw", "expr.mouthSmileLeft", "expr.eyeBlinkRight"} <= set(c))
    assert frame.channels["gaze.yaw"] == pytest.approx(-12.5)
    assert frame.channels["expr.mouthSmileLeft"] == pytest.approx(0.4)
    assert frame.channels["expr.eyeBlinkRight"] == 1.0


def test_receiver_on_a_busy_port_says_to_pick_another() -> None:
    with BlendshapeReceiver("127.0.0.1", 0) as rx:
        with pytest.raises(OSError, match="pick another"):
            BlendshapeReceiver("127.0.0.1", rx.port)


def test_live_video_writer_holds_a_constant_rate(tmp_path) -> None:
    import imageio_ffmpeg

    from core.tracking.video_out import LiveVideoWriter

    path = tmp_path / "out.mp4"
    w = LiveVideoWriter(path, fps=10.0)
    frame = np.zeros((31, 41, 3), np.uint8)
    for t in (0.0, 0.05, 0.31, 0.33, 0.52):  # uneven arrivals over half a second
        w.add(frame, t)
    w.close()
    assert w.frames_written == 6  # ticks at 0.0 .. 0.5 s
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    assert tuple(meta["size"]) == (40, 30)
    assert sum(1 for _ in reader) == 6


def test_virtual_camera_without_pyvirtualcam_says_what_to_install(monkeypatch) -> None:
    import core.tracking.virtualcam as vc

    monkeypatch.setattr(vc, "virtual_camera_available", lambda: False)
    with pytest.raises(vc.VirtualCameraUnavailable, match="v4l2loopback"):
        vc.open_virtual_camera(64, 48)
