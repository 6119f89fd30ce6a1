"""Driving recordings (JSON and NPZ) and calibration files from strangers: bit flips, truncations and hostile
values (NaN, infinities, huge declared arrays, wrong shapes, unknown channels) end in a FileFormatError naming
the file, in bounded time and memory, without unpickling anything."""

from __future__ import annotations

import io
import json
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hardening_fuzz import Tally, assert_clean, fuzz_file, run_case, wall_limit

from core.io import FileFormatError
from core.tracking.calibration import Calibration, ChannelAdjust
from core.tracking.recording import Recording, load_recording, save_recording

NAMES = ("expr.jawOpen", "expr.eyeBlinkLeft", "gaze.yaw", "pose.head.y", "pose.upperarm01.L.z", "root.x")


def _recording(frames: int = 24) -> Recording:
    t = np.arange(frames) / 30.0
    values = np.stack([0.5 + 0.4 * np.sin(t * (k + 1)) for k in range(len(NAMES))], 1).astype(np.float32)
    values[3:6, 1] = np.nan  # a channel absent for a moment
    return Recording(times=t, names=NAMES, values=values)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("recordings")
    rec = _recording()
    out = {s: save_recording(rec, d / f"take.{s}") for s in ("json", "npz")}
    cal = Calibration(neutral={"expr.jawOpen": 0.1, "pose.head.y": 3.0}, adjust={"gaze.yaw": ChannelAdjust(1.5, 2.0)})
    out["calibration"] = cal.save(d / "calibration.json")
    return out


@pytest.mark.parametrize("suffix", ["json", "npz"])
def test_bit_flipped_and_truncated_recordings_are_refused_or_load(tmp_path, saved, suffix):
    rec = load_recording(saved[suffix])
    assert rec.names == NAMES and len(rec) == 24
    tallies = fuzz_file(
        saved[suffix], tmp_path / "cases", load_recording, (FileFormatError,),
        input_kind=f"driving recording .{suffix} (load_recording)", seed=71 + len(suffix), flips=40, truncations=20,
        header_bytes=200,
    )  # fmt: skip
    assert_clean(tallies)


def test_bit_flipped_and_truncated_calibrations_are_refused_or_load(tmp_path, saved):
    assert Calibration.load(saved["calibration"]).adjust["gaze.yaw"].gain == 1.5
    tallies = fuzz_file(
        saved["calibration"], tmp_path / "cases", Calibration.load, (FileFormatError,),
        input_kind="driving calibration .json (Calibration.load)", seed=79, flips=30, truncations=15,
    )  # fmt: skip
    assert_clean(tallies)


def _doc(**over) -> str:
    d = {"version": 1, "kind": "lca-driving-channels", "names": ["expr.jawOpen", "pose.head.y"],
         "times": [0.0, 0.1], "values": [[0.1, 2.0], [0.2, None]]}  # fmt: skip
    d.update(over)
    return json.dumps(d)


def _npy(shape: tuple, dtype: str = "<f4", payload: bytes = b"\0" * 64) -> bytes:
    """A .npy member whose header declares `shape` but holds only `payload`."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload


def _npz(**arrays) -> bytes:
    """An NPZ with the good recording's arrays, some replaced: bytes are taken as raw .npy members."""
    good = {"version": np.int64(1), "kind": np.str_("lca-driving-channels"), "names": np.array(["expr.jawOpen"]),
            "times": np.array([0.0, 0.1]), "values": np.array([[0.1], [0.2]], np.float32)}  # fmt: skip
    good.update(arrays)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, a in good.items():
            if a is None:
                continue
            if isinstance(a, bytes):
                zf.writestr(f"{name}.npy", a)
            else:
                member = io.BytesIO()
                np.save(member, a, allow_pickle=True)
                zf.writestr(f"{name}.npy", member.getvalue())
    return buf.getvalue()


HOSTILE_JSON = {
    "nan_time": _doc(times=[0.0, float("nan")]).replace("NaN", "NaN"),
    "infinite_value": _doc(values=[[0.1, 2.0], [float("inf"), 1.0]]),
    "overflowing_number": _doc(values=[[0.1, 1e999], [0.2, 1.0]]).replace("Infinity", "1e999"),
    "huge_integer_time": _doc()
    .replace('"times":[0.0,0.1]', '"times":[0.0,' + "9" * 400 + "]")
    .replace('"times": [0.0, 0.1]', '"times": [0.0, ' + "9" * 400 + "]"),
    "absurd_value": _doc(values=[[0.1, 2.0], [0.2, 1e12]]),
    "ragged_rows": _doc(values=[[0.1, 2.0], [0.2]]),
    "values_for_three_names": _doc(values=[[0.1, 2.0, 3.0], [0.2, 1.0, 3.0]]),
    "values_not_a_list": _doc(values="many"),
    "values_an_object": _doc(values={"a": 1}),
    "string_value": _doc(values=[[0.1, "2.0"], [0.2, 1.0]]),
    "unknown_channel": _doc(names=["expr.jawOpen", "bogus.channel"]),
    "repeated_channel": _doc(names=["expr.jawOpen", "expr.jawOpen"]),
    "names_a_number": _doc(names=7),
    "times_going_back": _doc(times=[0.5, 0.1]),
    "wrong_kind": _doc(kind="something-else"),
    "future_version": _doc(version=99),
    "top_level_list": "[1, 2, 3]",
    "deep_nesting": "[" * 100000 + "]" * 100000,
    "not_utf8": None,
}


@pytest.fixture(scope="module")
def hostile():
    t = Tally("driving recording (load_recording)", "hand-made hostile values, shapes and sizes")
    yield t
    t.record()


def _refused(hostile: Tally, p: Path, name: str, *, budget_mib: int = 32) -> FileFormatError:
    tracemalloc.start()
    t0 = time.perf_counter()
    err = run_case(hostile, p, load_recording, (FileFormatError,), time_limit=2.0, what=name)
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert not hostile.failures, hostile.failures
    assert isinstance(err, FileFormatError), f"{name} loaded"
    assert p.name in str(err) and len(str(err)) < 1000, str(err)[:2000]
    assert peak < budget_mib << 20, f"{name}: {peak / 2**20:.0f} MiB traced while refusing"
    assert dt < wall_limit(2.0)  # the CPU-time bound is checked by run_case
    return err


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
def test_hostile_json_recordings_are_refused(tmp_path, hostile, name):
    p = tmp_path / f"{name}.json"
    if name == "not_utf8":
        p.write_bytes(b'{"version": 1, "kind": "\xff\xfe"}')
    else:
        p.write_text(HOSTILE_JSON[name])
    _refused(hostile, p, name)


HOSTILE_NPZ = {
    "declares_a_terabyte": dict(values=_npy((1_000_000, 250_000))),
    "declares_huge_text": dict(names=_npy((4,), "<U1000000000")),
    "pickled_objects": dict(names=np.array(["expr.jawOpen", None], dtype=object)),
    "version_not_a_scalar": dict(version=np.array([1, 1, 1])),
    "kind_a_number": dict(kind=np.float64(3.0)),
    "values_wrong_shape": dict(values=np.zeros((5, 3), np.float32)),
    "values_as_text": dict(values=np.array([["0.1"], ["0.2"]])),
    "values_three_dims": dict(values=np.zeros((2, 1, 1), np.float32)),
    "infinite_value": dict(values=np.array([[0.1], [np.inf]], np.float32)),
    "nan_time": dict(times=np.array([0.0, np.nan])),
    "names_two_dims": dict(names=np.array([["expr.jawOpen"]])),
    "missing_values": dict(values=None),
    "header_cut_short": dict(values=b"\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', "),
    "not_npy_member": dict(values=b"plain text, not an array"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_NPZ))
def test_hostile_npz_recordings_are_refused_without_allocating(tmp_path, hostile, name):
    p = tmp_path / f"{name}.npz"
    p.write_bytes(_npz(**HOSTILE_NPZ[name]))
    _refused(hostile, p, name)


@pytest.mark.parametrize("suffix", ["json", "npz"])
def test_enormous_recording_files_are_refused_by_size_before_reading(tmp_path, hostile, suffix):
    p = tmp_path / f"enormous.{suffix}"
    with open(p, "wb") as f:  # sparse: no disk is used
        f.truncate((1 << 30) + 1)
    err = _refused(hostile, p, f"enormous .{suffix}")
    assert "too large" in str(err)


def test_recordings_round_trip_and_keep_absent_values(saved):
    for suffix in ("json", "npz"):
        rec = load_recording(saved[suffix])
        assert np.isnan(rec.values[3:6, 1]).all() and np.isfinite(rec.values[:3]).all()
        np.testing.assert_allclose(rec.values[7], _recording().values[7], atol=1e-5)


CAL = {"version": 1, "kind": "lca-drive-calibration", "neutral": {}, "adjust": {}, "enabled": ["face"]}
HOSTILE_CALIBRATION = {
    "nan_neutral": {**CAL, "neutral": {"gaze.yaw": float("nan")}},
    "infinite_gain": {**CAL, "adjust": {"gaze.yaw": {"gain": float("inf"), "offset": 0.0, "invert": False}}},
    "huge_offset": {**CAL, "adjust": {"gaze.yaw": {"gain": 1.0, "offset": 1e30, "invert": False}}},
    "string_gain": {**CAL, "adjust": {"gaze.yaw": {"gain": "2", "offset": 0.0, "invert": False}}},
    "invert_not_bool": {**CAL, "adjust": {"gaze.yaw": {"gain": 1.0, "offset": 0.0, "invert": "yes"}}},
    "missing_gain": {**CAL, "adjust": {"gaze.yaw": {"offset": 0.0, "invert": False}}},
    "unknown_channel": {**CAL, "neutral": {"bogus": 0.1}},
    "unknown_group": {**CAL, "enabled": ["face", "tail"]},
    "mirror_not_bool": {**CAL, "mirror": "no"},
    "neutral_a_list": {**CAL, "neutral": [1, 2]},
    "wrong_kind": {**CAL, "kind": "lca-something"},
    "deep_nesting": None,
}


@pytest.fixture(scope="module")
def hostile_cal():
    t = Tally("driving calibration (Calibration.load)", "hand-made hostile values")
    yield t
    t.record()


@pytest.mark.parametrize("name", sorted(HOSTILE_CALIBRATION))
def test_hostile_calibrations_are_refused(tmp_path, hostile_cal, name):
    p = tmp_path / f"{name}.json"
    doc = HOSTILE_CALIBRATION[name]
    p.write_text("[" * 100000 + "]" * 100000 if doc is None else json.dumps(doc))
    err = run_case(hostile_cal, p, Calibration.load, (FileFormatError,), time_limit=2.0, what=name)
    assert not hostile_cal.failures, hostile_cal.failures
    assert isinstance(err, FileFormatError) and p.name in str(err), f"{name}: {err!r}"
    assert len(str(err)) < 1000


def test_enormous_calibration_file_is_refused_by_size(tmp_path):
    p = tmp_path / "calibration.json"
    with open(p, "wb") as f:
        f.truncate(64 << 20)
    with pytest.raises(FileFormatError, match="too large"):
        Calibration.load(p)
