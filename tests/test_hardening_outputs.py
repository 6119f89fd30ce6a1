"""Outputs written atomically with the user's umask, output paths checked before any work, stale temporaries
removed, TensorBoard events purged on resume, checkpoint writes ordered."""

from __future__ import annotations

import os
import stat
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from hardening_files import tiny_gaussians

from core.io import atomic_write_bytes, save_image_bgr
from core.model.config import ModelConfig


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


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_saved_files_get_the_umask_mode_not_0600(tmp_path, umask_022):
    from core.config import save_config
    from core.raster.ply import save_ply
    from render.video import save_png

    outs = [
        save_ply(tmp_path / "a.ply", tiny_gaussians()),
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
    assert stat.S_IMODE(save_ply(outs[0], tiny_gaussians()).stat().st_mode) == 0o664


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
