"""Second round of hardening: declared sizes checked from headers before anything is materialised, stored configs
that cannot point elsewhere or ask for too much, outputs written atomically with the user's umask, stale
temporaries removed, checkpoint writes ordered, tracebacks turned into messages (issue 24's list)."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import stat
import struct
import sys
import threading
import time
import tracemalloc
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from core.config import ConfigError, load_config, to_dict
from core.io import FileFormatError, atomic_write_bytes, save_image_bgr, save_tensors
from core.model.config import ModelConfig, load_model_config
from core.train.checkpoint import read_checkpoint_meta, save_checkpoint

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


# 4. stored configs -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    from core.model.model import LCAModel
    from core.model.rig import rig_from_body_asset

    torch.manual_seed(0)
    cfg = load_model_config("tiny", {"tokens": {"num_anchors": 64}})
    model = LCAModel(cfg, rig_from_body_asset())
    config = {"model": to_dict(cfg), "train": {"data": {"crop_size": 64, "face_size": 32}}}
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors", model=model, step=1, config=config)
    return path, config


def _with_config(src: Path, dst: Path, config: dict) -> Path:
    """A copy of checkpoint `src` whose header carries `config` (the tensors unchanged)."""
    data = src.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["lca_meta"])
    meta["config"] = config
    header["__metadata__"]["lca_meta"] = json.dumps(meta)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    dst.write_bytes(len(blob).to_bytes(8, "little") + blob + data[8 + n :])
    return dst


def test_a_checkpoint_cannot_point_the_program_at_another_file(tmp_path, tiny_checkpoint, monkeypatch):
    from core.model import encoder
    from core.train.export import model_from_checkpoint

    src, config = tiny_checkpoint
    opened = []
    monkeypatch.setattr(encoder, "load_vit_weights", lambda module, path, fmt: opened.append(path))
    secret = tmp_path / "elsewhere.safetensors"
    secret.write_bytes(b"not for the model")
    model_cfg = dict(config["model"], encoder=dict(config["model"]["encoder"], weights=str(secret), freeze=True))
    path = _with_config(src, tmp_path / "pointing.safetensors", dict(config, model=model_cfg))
    model, _ = model_from_checkpoint(path)
    assert opened == [], "the checkpoint's encoder.weights path was opened"
    assert model.cfg.encoder.weights is None


@pytest.mark.parametrize(
    ("section", "change", "message"),
    [
        ("train", {"crop_size": 60000}, "crop_size"),
        ("train", {"face_size": 0}, "face_size"),
        ("model", {"transformer": {"width": 65536, "heads": 4}}, "transformer.width"),
    ],
)
def test_sizes_in_a_stored_config_are_checked_before_anything_is_built(tmp_path, tiny_checkpoint, section, change,
                                                                       message, monkeypatch):  # fmt: skip
    from core.train import export

    src, config = tiny_checkpoint
    if section == "train":
        config = dict(config, train={"data": dict(config["train"]["data"], **change)})
    else:
        config = dict(config, model=dict(config["model"], **change))
    path = _with_config(src, tmp_path / "sized.safetensors", config)
    monkeypatch.setattr(export, "LCAModel", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(FileFormatError, match=message):
        export.stored_crop_sizes(read_checkpoint_meta(path), path) if section == "train" else export.model_config_of(
            path
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data:\n  crop_size: -64\n", "data.crop_size"),
        ("data:\n  face_size: 0\n", "data.face_size"),
        ("data:\n  crop_size: 30000\n", "data.crop_size"),
    ],
)
def test_yaml_training_configs_refuse_impossible_crop_sizes(tmp_path, text, message):
    from core.train.config import TrainConfig

    (tmp_path / "t.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, tmp_path / "t.yaml")


def test_yaml_model_configs_refuse_widths_no_machine_holds(tmp_path):
    (tmp_path / "m.yaml").write_text("encoder:\n  width: 65536\n")
    with pytest.raises(ConfigError, match="encoder.width"):
        load_config(ModelConfig, tmp_path / "m.yaml")
    (tmp_path / "m.yaml").write_text("encoder:\n  width: 4096\n  depth: 64\n  heads: 64\n")
    with pytest.raises(ConfigError, match="billion parameters"):
        load_config(ModelConfig, tmp_path / "m.yaml")
    for preset in ("tiny", "base", "large"):
        load_model_config(preset)


# 5. one top-level handler, outputs -------------------------------------------------------------------------------
def _main_module():
    sys.path.insert(0, str(ROOT))
    import main

    return main


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (OSError(28, "No space left on device", "out.png"), "out.png: no space left on device"),
        (MemoryError(), "out of memory"),
        (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
        (FileFormatError("x.npz: not a driving recording"), "x.npz: not a driving recording"),
    ],
)
def test_the_command_line_turns_input_errors_into_one_line_and_exit_2(caplog, error, text):
    main = _main_module()

    def runner(args):
        raise error

    with caplog.at_level(logging.ERROR):
        assert main.run_reporting_errors(runner, argparse.Namespace(verbose=False)) == 2
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [text] or text in caplog.text
    assert "Traceback" not in caplog.text


def test_programming_errors_still_raise():
    main = _main_module()

    def runner(args):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        main.run_reporting_errors(runner, argparse.Namespace(verbose=False))


def test_output_paths_are_checked_before_any_work(tmp_path):
    from core.io import check_output_path

    (tmp_path / "a_file").write_text("x")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_output_path(tmp_path)
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        check_output_path(tmp_path / "a_file" / "out.png")
    assert check_output_path(tmp_path / "new" / "deeper" / "out.png") == tmp_path / "new" / "deeper" / "out.png"


def test_a_failed_png_save_keeps_the_previous_png(tmp_path, monkeypatch):
    from PIL import Image

    from render.video import save_png

    out = save_png(tmp_path / "r.png", np.zeros((8, 8, 3), np.uint8))
    before = out.read_bytes()
    real_save = Image.Image.save

    def torn(self, fp, *a, **k):
        real_save(self, fp, *a, **k)
        with open(fp, "r+b") as f:
            f.truncate(20)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", torn)
    with pytest.raises(OSError, match="disk is full"):
        save_png(out, np.ones((8, 8, 3), np.uint8))
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png"]


# 8. umask --------------------------------------------------------------------------------------------------------
@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _tiny_gaussians():
    from core.raster.types import Gaussians

    n = 4
    return Gaussians(
        means=torch.zeros(n, 3), quats=torch.tensor([[1.0, 0, 0, 0]] * n), log_scales=torch.full((n, 3), -3.0),
        opacity_logits=torch.zeros(n), sh=torch.zeros(n, 1, 3),
    )  # fmt: skip


def test_saved_files_get_the_umask_mode_not_0600(tmp_path, umask_022):
    from core.config import save_config
    from core.raster.ply import save_ply
    from render.video import save_png

    outs = [
        save_ply(tmp_path / "a.ply", _tiny_gaussians()),
        save_png(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8)),
        atomic_write_bytes(tmp_path / "a.bin", b"x"),
        save_image_bgr(tmp_path / "sheet.png", np.zeros((8, 8, 3), np.uint8)),
    ]
    save_config(ModelConfig(), tmp_path / "config.yaml")
    outs.append(tmp_path / "config.yaml")
    for p in outs:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, f"{p.name}: {oct(p.stat().st_mode)}"
    os.umask(0o027)
    assert stat.S_IMODE(atomic_write_bytes(tmp_path / "b.bin", b"x").stat().st_mode) == 0o640
    os.chmod(outs[0], 0o664)  # overwriting keeps the file's own mode
    assert stat.S_IMODE(save_ply(outs[0], _tiny_gaussians()).stat().st_mode) == 0o664


def test_mp4_outputs_are_written_atomically_with_the_umask(tmp_path, umask_022):
    from core.tracking.video_out import LiveVideoWriter
    from render.video import write_mp4

    out = write_mp4(tmp_path / "o.mp4", (np.zeros((16, 16, 3), np.uint8) for _ in range(3)), fps=10)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644 and out.stat().st_size > 0
    before = out.read_bytes()

    def failing():
        yield np.ones((16, 16, 3), np.uint8)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_mp4(out, failing(), fps=10)
    assert out.read_bytes() == before, "a failed encode replaced the previous video"
    w = LiveVideoWriter(out, fps=10, realtime=False)
    w.add(np.ones((16, 16, 3), np.uint8))
    time.sleep(0.5)
    assert out.read_bytes() == before, "the live video is written in place"
    w.close()
    assert out.read_bytes() != before and stat.S_IMODE(out.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]


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


# 7. tracebacks that become messages ------------------------------------------------------------------------------
def test_reading_a_checkpoint_from_a_folder_or_a_named_pipe_is_refused_at_once(tmp_path):
    from core.train.export import model_from_checkpoint

    with pytest.raises(FileFormatError, match="is a folder"):
        model_from_checkpoint(tmp_path)
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    result: list[BaseException | None] = []

    def read():
        try:
            read_checkpoint_meta(fifo)
            result.append(None)
        except BaseException as e:  # noqa: BLE001
            result.append(e)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(10.0)
    if t.is_alive():  # unblock the reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a named pipe blocked")
    assert isinstance(result[0], FileFormatError) and "named pipe" in str(result[0])


@pytest.mark.parametrize("value", ["1" * 5000, "2024-13-45"])
def test_yaml_values_python_cannot_convert_are_config_errors(tmp_path, value):
    from core.train.cli import parse_overrides
    from core.train.config import TrainConfig

    (tmp_path / "t.yaml").write_text(f"name: {value}\n")
    with pytest.raises(ConfigError, match="t.yaml"):
        load_config(TrainConfig, tmp_path / "t.yaml")
    with pytest.raises(ConfigError, match="--set name="):
        parse_overrides([f"name={value}"])


def test_drive_from_a_recording_with_a_bad_avatar_file_exits_2(tmp_path, caplog):
    from app.drive_cli import EXIT_SOURCE, _drive_headless_channels
    from core.tracking.recording import Recording, save_recording

    take = save_recording(
        Recording(times=np.arange(3) / 30.0, names=("expr.jawOpen",), values=np.zeros((3, 1), np.float32)),
        tmp_path / "take.npz",
    )
    bad = tmp_path / "nan.ply"
    from core.raster.ply import save_ply

    save_ply(bad, _tiny_gaussians())
    data = bytearray(bad.read_bytes())
    end = data.index(b"end_header\n") + len(b"end_header\n")
    data[end : end + 4] = struct.pack("<f", float("nan"))
    bad.write_bytes(bytes(data))
    for avatar in (bad, tmp_path / "missing.safetensors", tmp_path):
        args = argparse.Namespace(source=str(take), avatar=str(avatar), example=None, fps=None, frames=None,
                                  mirror=False, view="front", out=None, record_channels=None, osc=None, vmc=False)  # fmt: skip
        with caplog.at_level(logging.ERROR):
            assert _drive_headless_channels(args, (64, 64)) == EXIT_SOURCE
    assert "NaN" in caplog.text


# 9. temporaries, TensorBoard, checkpoint order -------------------------------------------------------------------
def test_stale_temporaries_of_the_same_target_are_removed_by_the_next_save(tmp_path):
    target = tmp_path / "last.safetensors"
    dead = tmp_path / ".last.safetensors.999999999.abcd1234.tmp"  # no such process
    old = tmp_path / ".last.safetensors.abcd1234.tmp"  # the earlier naming, no pid: removed once old
    mine = tmp_path / f".last.safetensors.{os.getpid()}.live1234.tmp"  # a save still running
    other = tmp_path / ".other.safetensors.999999999.abcd1234.tmp"
    for p in (dead, old, mine, other):
        p.write_bytes(b"\0" * 1000)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    atomic_write_bytes(target, b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, mine.name, other.name])


def test_resume_purges_tensorboard_events_past_the_checkpoint(tmp_path, monkeypatch):
    from core.train.metrics import MetricsLog

    opened = []

    class Writer:
        def __init__(self, log_dir, purge_step=None):
            opened.append(purge_step)

        def add_scalar(self, *a):
            pass

        def close(self):
            pass

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = Writer
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    log = MetricsLog(tmp_path)
    for s in range(5):
        log.write(s, loss=1.0)
    log.truncate_after(3)
    assert opened == [None, 3]


def test_a_kill_between_checkpoint_writes_never_loses_a_step_file(tmp_path, monkeypatch):
    from core.train import loop

    written = []

    def fake_save(path, **kw):
        if Path(path).name == loop.LAST:
            raise KeyboardInterrupt  # killed after the first write
        written.append(Path(path).name)
        Path(path).write_bytes(b"x")

    monkeypatch.setattr(loop, "save_checkpoint", fake_save)
    monkeypatch.setattr(loop, "full_model_state", lambda m: {})
    monkeypatch.setattr(loop, "full_optimizer_state", lambda m, o: ({}, []))
    cfg = types.SimpleNamespace()
    monkeypatch.setattr(loop, "to_dict", lambda c: {})
    step_mod = types.SimpleNamespace(model=types.SimpleNamespace(cfg=None))
    ema = types.SimpleNamespace(state_dict=lambda: {})
    dist = types.SimpleNamespace(is_main=True, world_size=1)
    with pytest.raises(KeyboardInterrupt):
        loop._save(cfg, tmp_path, step_mod, None, ema, 7, 0, 0, dist)
    # `last` still names the previous checkpoint: the resumed run redoes step 7 and rewrites its file
    assert written == ["step0000007.safetensors"]


# 10. files validated before building; absurd .ply values ---------------------------------------------------------
def test_a_truncated_checkpoint_is_refused_before_the_model_is_built(tmp_path, tiny_checkpoint, monkeypatch):
    from core.train import export

    src, _ = tiny_checkpoint
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size - 1000])
    monkeypatch.setattr(export, "LCAModel", lambda *a, **k: pytest.fail("a model was built for a truncated file"))
    with pytest.raises(FileFormatError, match="truncated"):
        export.model_from_checkpoint(cut)


def test_absurd_but_finite_ply_values_warn(tmp_path, caplog):
    from core.raster.ply import load_ply, save_ply

    g = _tiny_gaussians()
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
        load_ply(save_ply(tmp_path / "fine.ply", _tiny_gaussians()))
    assert caplog.text == ""


def test_configs_and_recordings_that_are_folders_or_pipes_are_refused_without_reading(tmp_path):
    from core.tracking.recording import load_recording
    from core.train.config import TrainConfig

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(TrainConfig, fifo)
    os.mkfifo(tmp_path / "take.npz")
    with pytest.raises(FileFormatError, match="named pipe"):
        load_recording(tmp_path / "take.npz")
    (tmp_path / "take.json").mkdir()
    with pytest.raises(FileFormatError, match="is a folder"):
        load_recording(tmp_path / "take.json")
