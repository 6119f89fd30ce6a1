"""Declared sizes checked from file headers before anything is materialised: recordings, shard samples, nested
JSON in headers, the network channel table, absurd but finite .ply values."""

from __future__ import annotations

import io
import json
import logging
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hardening_files import tiny_gaussians

from core.io import FileFormatError, save_tensors
from core.train.checkpoint import read_checkpoint_meta

ROOT = Path(__file__).resolve().parents[1]


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    """An .npy file that declares `shape` of `dtype` and carries only a few bytes of data (a crafted file)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64


def _npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(f"{name}.npy", data)
    return path


def _np_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _traced(fn) -> tuple[BaseException | None, int]:
    """Run `fn`, returning what it raised and the peak of traced allocations (numpy's included)."""
    tracemalloc.start()
    err = None
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - the caller checks the type
        err = e
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return err, peak


# 1. recordings ---------------------------------------------------------------------------------------------------
def _recording_members(names: bytes, times: bytes, values: bytes) -> dict[str, bytes]:
    return {
        "version": _np_bytes(np.int64(1)),
        "kind": _np_bytes(np.str_("lca-driving-channels")),
        "names": names,
        "times": times,
        "values": values,
    }


@pytest.mark.parametrize("case", ["4M names", "2^27 frames", "values of another shape", "names before values"])
def test_recording_npz_sizes_are_refused_from_headers_before_anything_is_unpacked(tmp_path, case):
    from core.tracking.recording import load_recording

    one = _np_bytes(np.array(["expr.jawOpen"]))
    n = 1 << 22
    members = {  # small files (zeros compress) whose arrays unpack to tens or hundreds of MiB
        "4M names": _recording_members(_np_bytes(np.full(n, "x")), _np_bytes(np.zeros(0)),
                                       _np_bytes(np.zeros((0, n), np.float32))),
        "2^27 frames": _recording_members(one, _npy_header((1 << 27,), "<f8"), _npy_header((1 << 27, 1), "<f4")),
        "values of another shape": _recording_members(one, _np_bytes(np.zeros(10)),
                                                      _np_bytes(np.zeros((n, 4), np.float32))),
        "names before values": _recording_members(_np_bytes(np.array(["made.up"])), _np_bytes(np.zeros(n)),
                                                  _np_bytes(np.zeros((n, 1), np.float32))),
    }[case]  # fmt: skip
    path = _npz(tmp_path / "take.npz", members)
    assert path.stat().st_size < 2 << 20
    err, peak = _traced(lambda: load_recording(path))
    assert isinstance(err, FileFormatError), repr(err)
    assert str(path) in str(err)
    assert peak < 32 << 20, f"{peak / 2**20:.0f} MiB traced while refusing {case}"


def test_recording_budgets_are_stated_in_the_reliability_document():
    from core.tracking import recording

    doc = (ROOT / "docs" / "RELIABILITY.md").read_text()
    for value in (recording.MAX_CHANNELS, recording.MAX_FRAMES, recording.MAX_VALUES):
        assert f"{value:,}" in doc, f"{value:,} is not stated in docs/RELIABILITY.md"


def test_a_recording_over_the_budget_is_refused_when_saved(tmp_path):
    from core.tracking.recording import MAX_CHANNELS, Recording, save_recording

    names = tuple(f"pose.j{i}.x" for i in range(MAX_CHANNELS + 1))
    rec = Recording(times=np.zeros(1), names=names, values=np.zeros((1, len(names)), np.float32))
    with pytest.raises(ValueError, match="more than a recording may hold"):
        save_recording(rec, tmp_path / "big.npz")


# 2. shards -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("declared", [(1 << 28,), (1 << 40,)], ids=["1 GiB", "8 TiB"])
def test_shard_sample_arrays_are_bounded_before_numpy_allocates(tmp_path, declared):
    from core.data.shards import ShardError, decode_sample

    npz = io.BytesIO()
    with zipfile.ZipFile(npz, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("K.npy", _npy_header(declared, "<f4"))
    meta = {"num_frames": 1, "num_cameras": 1, "height": 8, "width": 8}
    files = {"json": json.dumps(meta).encode(), "npz": npz.getvalue()}
    err, peak = _traced(lambda: decode_sample("s-000001", files))
    assert isinstance(err, ShardError), repr(err)
    assert "limit" in str(err)
    assert peak < 32 << 20


# 3. nested JSON --------------------------------------------------------------------------------------------------
def test_deeply_nested_json_in_a_file_header_is_refused_not_a_recursion_error(tmp_path):
    from core.data.shards import ShardError, decode_sample
    from core.model.avatar import Avatar

    deep = "[" * 100_000 + "]" * 100_000
    data = save_tensors(tmp_path / "a.safetensors", {"x": torch.zeros(1)}, {}, kind="lca-avatar").read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"]["lca_meta"] = deep
    for name in ("a.safetensors", "c.safetensors"):
        blob = json.dumps(header).encode()
        (tmp_path / name).write_bytes(len(blob).to_bytes(8, "little") + blob + data[8 + n :])
    with pytest.raises(FileFormatError, match="nested"):
        Avatar.load(tmp_path / "a.safetensors")
    with pytest.raises(FileFormatError, match="nested"):
        read_checkpoint_meta(tmp_path / "c.safetensors")
    files = {"json": deep.encode(), "npz": b""}
    with pytest.raises(ShardError, match="nested"):
        decode_sample("s-000001", files)


# 6. network channel table ----------------------------------------------------------------------------------------
def test_made_up_channel_names_cannot_fill_the_listener_table():
    from core.tracking.network import ARKIT_NAMES, MAX_CHANNELS, BlendshapeReceiver, rig_joints

    assert 3 * len(rig_joints()) + len(ARKIT_NAMES) + 2 + 3 <= MAX_CHANNELS  # every rig channel fits
    with BlendshapeReceiver("127.0.0.1", 0) as rx:
        for i in range(10_000):
            rx._on_other(f"/lca/pose.made{i}.x", 1.0)
        rx._on_other("/lca/pose.head.x", 12.0)  # a real channel never seen before
        assert rx.latest().channels == {"pose.head.x": 12.0}
        assert rx.rejected >= 10_000


def test_absurd_but_finite_ply_values_warn(tmp_path, caplog):
    from core.raster.ply import load_ply, save_ply

    g = tiny_gaussians()
    g = g.replace(
        means=torch.tensor([[1e30, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]),
        log_scales=torch.tensor([[80.0, 0, 0], [-3, -3, -3], [-3, -3, -3], [-3, -3, -3]]),
        quats=torch.tensor([[0.0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]]),
    )
    path = save_ply(tmp_path / "odd.ply", g)
    with caplog.at_level(logging.WARNING):
        load_ply(path)
    assert "1 positions beyond" in caplog.text and "1 log-scales" in caplog.text and "1 zero rotation" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_ply(save_ply(tmp_path / "fine.ply", tiny_gaussians()))
    assert caplog.text == ""
