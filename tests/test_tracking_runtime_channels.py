"""One-Euro channel filter, calibration (neutral, adjust, groups, mirror) and channel recording / replay."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.io import FileFormatError
from core.tracking.calibration import (
    Calibration,
    ChannelAdjust,
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    mirror_channels,
)
from core.tracking.filters import ChannelFilter
from core.tracking.recording import ChannelRecorder, Recording, load_recording
from core.tracking.types import DrivingFrame

FPS = 30.0


# ---- filters --------------------------------------------------------------------------------------------
def test_one_euro_reduces_jitter_on_a_noisy_constant_signal():
    rng = np.random.default_rng(0)
    f = ChannelFilter(min_cutoff=1.0, beta=0.05)
    raw = 0.4 + 0.02 * rng.standard_normal(300)
    out = np.array([f({"expr.jawOpen": x, "pose.head.y": 10 * x}, i / FPS)["expr.jawOpen"] for i, x in enumerate(raw)])
    assert np.std(out[60:]) < 0.4 * np.std(raw[60:])
    assert abs(out[60:].mean() - 0.4) < 0.02


def test_one_euro_with_high_beta_follows_a_step_quickly_and_low_beta_lags():
    def settle_frames(beta: float) -> int:
        f = ChannelFilter(min_cutoff=0.5, beta=beta)
        for i in range(30):
            f({"pose.head.y": 0.0}, i / FPS)
        for k in range(1, 200):
            if f({"pose.head.y": 30.0}, (30 + k) / FPS)["pose.head.y"] > 27.0:
                return k
        return 200

    fast, slow = settle_frames(beta=1.0), settle_frames(beta=0.0)
    assert fast <= 4, f"high beta took {fast} frames to reach 90% of a step"
    assert slow > 3 * fast


def test_filter_params_are_per_group_and_channels_come_and_go():
    f = ChannelFilter()
    f.set_params("body", min_cutoff=50.0)  # body nearly unfiltered, face smoothed
    f.set_params("face", beta=0.0)
    f({"expr.jawOpen": 0.0, "pose.spine01.x": 0.0}, 0.0)
    out = f({"expr.jawOpen": 1.0, "pose.spine01.x": 1.0}, 1 / FPS)
    assert out["pose.spine01.x"] > 0.9 and out["expr.jawOpen"] < 0.5
    assert f.params["face"].min_cutoff == 1.0 and f.params["body"].beta == 0.05 and f.params["hands"].min_cutoff == 1.0
    # a new channel passes through raw; a vanished one is simply absent
    out = f({"pose.finger1-1.L.x": 12.0}, 2 / FPS)
    assert out == {"pose.finger1-1.L.x": 12.0}
    # a channel back after a long gap restarts from its new value instead of gliding from the old one
    out = f({"expr.jawOpen": 0.0}, 5.0)
    assert out["expr.jawOpen"] == 0.0
    with pytest.raises(ValueError, match="unknown channel group"):
        f.set_params("legs", beta=1.0)
    with pytest.raises(ValueError, match="min_cutoff"):
        f.set_params(min_cutoff=0.0)


def test_filter_reset_forgets_history():
    f = ChannelFilter()
    f({"gaze.yaw": 0.0}, 0.0)
    f.reset()
    assert f({"gaze.yaw": 20.0}, 1 / FPS)["gaze.yaw"] == 20.0


# ---- calibration ---------------------------------------------------------------------------------------
def test_neutral_maps_to_zero_and_one_stays_one():
    c = Calibration()
    c.capture_neutral({"expr.mouthSmileLeft": 0.2, "expr.jawOpen": 0.0, "pose.spine01.x": 5.0})
    out = c({"expr.mouthSmileLeft": 0.2, "expr.jawOpen": 0.5})
    assert out["expr.mouthSmileLeft"] == pytest.approx(0.0)
    assert c({"expr.mouthSmileLeft": 1.0})["expr.mouthSmileLeft"] == pytest.approx(1.0)
    assert c({"expr.mouthSmileLeft": 0.6})["expr.mouthSmileLeft"] == pytest.approx(0.5)
    assert c({"expr.mouthSmileLeft": 0.1})["expr.mouthSmileLeft"] == 0.0  # clamped
    assert out["expr.jawOpen"] == pytest.approx(0.5)
    assert "pose.spine01.x" not in c.neutral, "body rotations are absolute, not neutral-relative"


def test_neutral_head_pose_and_gaze_count_as_forward():
    c = Calibration()
    neutral = {"pose.head.x": 12.0, "pose.head.y": -5.0, "pose.head.z": 2.0, "gaze.yaw": 3.0, "gaze.pitch": -4.0}
    c.capture_neutral(neutral)
    out = c(neutral)
    assert all(abs(v) < 1e-6 for v in out.values())
    # a 20 degree turn about world y from the neutral orientation comes out as that turn
    R = axis_angle_to_matrix(np.array([0.0, 20.0, 0.0])) @ axis_angle_to_matrix(np.array([12.0, -5.0, 2.0]))
    turned = dict(zip(("pose.head.x", "pose.head.y", "pose.head.z"), matrix_to_axis_angle(R), strict=True))
    out = c({**turned, "gaze.yaw": 13.0, "gaze.pitch": -4.0})
    assert [out["pose.head.x"], out["pose.head.y"], out["pose.head.z"]] == pytest.approx([0, 20, 0], abs=1e-6)
    assert out["gaze.yaw"] == pytest.approx(10.0)


def test_gain_offset_invert_and_groups():
    c = Calibration(adjust={"expr.jawOpen": ChannelAdjust(gain=2.0), "pose.head.y": ChannelAdjust(invert=True)})
    c.adjust["pose.spine01.x"] = ChannelAdjust(gain=0.5, offset=1.0)
    out = c({"expr.jawOpen": 0.3, "pose.head.y": 10.0, "pose.spine01.x": 4.0, "expr.eyeBlinkLeft": 0.7})
    assert out["expr.jawOpen"] == pytest.approx(0.6)
    assert out["pose.head.y"] == pytest.approx(-10.0)
    assert out["pose.spine01.x"] == pytest.approx(3.0)
    assert c({"expr.jawOpen": 0.8})["expr.jawOpen"] == 1.0  # clamped to [0, 1]
    c.set_enabled("body", False)
    out = c({"expr.jawOpen": 0.3, "pose.spine01.x": 4.0, "pose.finger1-1.L.x": 3.0, "root.x": 0.1})
    assert set(out) == {"expr.jawOpen", "pose.finger1-1.L.x"}


def test_mirror_swaps_sides_and_matches_a_reflection_of_the_world():
    rng = np.random.default_rng(1)
    w = rng.uniform(-40, 40, 3)
    ch = {
        "expr.eyeBlinkLeft": 0.9,
        "expr.jawLeft": 0.3,
        "expr.jawOpen": 0.5,
        "pose.upperarm01.L.x": w[0],
        "pose.upperarm01.L.y": w[1],
        "pose.upperarm01.L.z": w[2],
        "gaze.yaw": 10.0,
        "gaze.pitch": 5.0,
        "root.x": 0.2,
        "root.y": 0.1,
    }
    m = mirror_channels(ch)
    assert m["expr.eyeBlinkRight"] == 0.9 and m["expr.jawRight"] == 0.3 and m["expr.jawOpen"] == 0.5
    assert "expr.eyeBlinkLeft" not in m
    assert m["gaze.yaw"] == -10.0 and m["gaze.pitch"] == 5.0 and m["root.x"] == -0.2 and m["root.y"] == 0.1
    # the mirrored rotation must equal M R M for the reflection M: x -> -x
    M = np.diag([-1.0, 1.0, 1.0])
    expected = matrix_to_axis_angle(M @ axis_angle_to_matrix(w) @ M)
    got = [m[f"pose.upperarm01.R.{a}"] for a in "xyz"]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # mirroring twice is the identity
    assert mirror_channels(m) == pytest.approx(ch)
    c = Calibration(mirror=True)
    assert c({"pose.wrist.L.z": 7.0}) == {"pose.wrist.R.z": -7.0}


def test_calibration_round_trips_through_json_and_rejects_bad_files(tmp_path):
    c = Calibration(adjust={"expr.jawOpen": ChannelAdjust(1.5, 0.1, True)}, mirror=True)
    c.capture_neutral({"expr.jawOpen": 0.1, "gaze.yaw": 2.0})
    c.set_enabled("hands", False)
    path = c.save(tmp_path / "cal.json")
    back = Calibration.load(path)
    assert back == c
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(FileFormatError, match="not a JSON"):
        Calibration.load(tmp_path / "bad.json")
    (tmp_path / "foreign.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(FileFormatError, match="not a driving calibration"):
        Calibration.load(tmp_path / "foreign.json")
    d = c.to_dict()
    d["version"] = 99
    (tmp_path / "new.json").write_text(json.dumps(d))
    with pytest.raises(FileFormatError, match="version 99"):
        Calibration.load(tmp_path / "new.json")
    d = c.to_dict()
    d["enabled"] = ["face", "legs"]
    (tmp_path / "groups.json").write_text(json.dumps(d))
    with pytest.raises(FileFormatError, match="legs"):
        Calibration.load(tmp_path / "groups.json")


# ---- recording -------------------------------------------------------------------------------------------
def _recorded() -> ChannelRecorder:
    r = ChannelRecorder()
    r.add(DrivingFrame({"expr.jawOpen": 0.0, "pose.head.y": 10.0}), 100.0)
    r.add(DrivingFrame({"expr.jawOpen": 1.0, "pose.head.y": 20.0, "gaze.yaw": 4.0}), 100.1)
    r.add(DrivingFrame({"expr.jawOpen": 0.5}), 100.2)
    return r


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_recording_round_trips_and_interpolates(tmp_path, suffix):
    path = _recorded().save(tmp_path / f"rec{suffix}")
    rec = load_recording(path)
    assert isinstance(rec, Recording) and len(rec) == 3
    assert rec.names == ("expr.jawOpen", "pose.head.y", "gaze.yaw")
    np.testing.assert_allclose(rec.times, [0.0, 0.1, 0.2], atol=1e-6)
    mid = rec.at(0.05)
    assert mid["expr.jawOpen"] == pytest.approx(0.5) and mid["pose.head.y"] == pytest.approx(15.0)
    assert mid["gaze.yaw"] == pytest.approx(4.0)  # absent at the earlier frame: the later value
    assert rec.at(0.15)["pose.head.y"] == pytest.approx(20.0)
    assert rec.at(-1.0)["expr.jawOpen"] == 0.0 and rec.at(9.0) == {"expr.jawOpen": 0.5}
    if suffix == ".json":
        doc = json.loads(path.read_text())
        assert set(doc) >= {"version", "names", "times", "values"} and doc["values"][0][2] is None


def test_corrupt_or_foreign_recordings_raise_value_errors_that_say_why(tmp_path):
    (tmp_path / "a.json").write_text('{"version": 1, "kind": "lca-driving-channels", "names": ["expr.x"],')
    (tmp_path / "b.json").write_text(json.dumps({"version": 1, "names": ["a"], "times": [], "values": []}))
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04garbage")
    np.savez(tmp_path / "d.npz", weights=np.zeros(3))
    doc = {"version": 1, "kind": "lca-driving-channels", "names": ["expr.jawOpen"], "times": [0, 1], "values": [[1]]}
    (tmp_path / "e.json").write_text(json.dumps(doc))
    (tmp_path / "f.txt").write_text("x")
    expect = {"a.json": "not a JSON", "b.json": "not a driving", "c.npz": "not a readable NPZ", "d.npz": "arrays"}
    expect |= {"e.json": "malformed", "f.txt": ".json or .npz"}
    for name, why in expect.items():
        with pytest.raises(ValueError, match=why):
            load_recording(tmp_path / name)
    with pytest.raises(ValueError, match=".json or .npz"):
        _recorded().save(tmp_path / "rec.csv")


def test_recorder_memory_is_one_small_row_per_frame():
    r = ChannelRecorder()
    ch = {f"expr.c{i}": 0.5 for i in range(50)}
    for i in range(2000):
        r.add(DrivingFrame(ch), i / FPS)
    rec = r.recording()
    assert rec.values.shape == (2000, 50) and rec.values.dtype == np.float32
    assert sum(row.nbytes for row in r._rows) == 2000 * 50 * 4
