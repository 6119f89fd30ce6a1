"""Faults: a writer killed with SIGKILL mid-write, a training run killed with SIGKILL, a full disk while saving,
and a webcam that disappears mid-stream. The last good file survives, the run resumes, errors say what happened.

Kill tests fork the test process: the child saves the same file over and over, the parent kills it with SIGKILL
after a random delay (a few write durations), then checks that the file still loads."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hardening_fuzz import Tally

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "train" / "smoke-tiny.yaml"
KILLS = 6


def _tiny_model():
    from core.model.config import load_model_config
    from core.model.model import LCAModel
    from core.model.rig import toy_rig

    torch.manual_seed(0)
    return LCAModel(load_model_config("tiny", {"tokens": {"num_anchors": 64}}), toy_rig()).eval()


@pytest.fixture(scope="module")
def writers(shards):
    """kind -> (save(path, version), check(path) -> version or raise): the project's own savers and loaders."""
    from core.data.shards import iter_shard, list_shards, write_shard
    from core.model.avatar import Avatar
    from core.train.checkpoint import load_checkpoint, save_checkpoint

    model = _tiny_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    avatar = Avatar.create(
        model,
        body_crops=torch.rand(1, 3, *cfg.encoder.body_crop, generator=g),
        face_crops=torch.rand(1, 3, *cfg.encoder.face_crop, generator=g),
    )
    samples = list(iter_shard(list_shards(shards)[0]))

    def save_ckpt(p, v):
        save_checkpoint(p, model=model, step=v, config={}, optimizer=opt)

    def check_ckpt(p):
        return load_checkpoint(p, model=_tiny_model.cached, optimizer=None).step

    _tiny_model.cached = _tiny_model()

    def check_avatar(p):
        Avatar.load(p)
        return 0

    def check_shard(p):
        got = list(iter_shard(p))
        assert [s.key for s in got] == [s.key for s in samples]
        return 0

    return {
        "checkpoint": (save_ckpt, check_ckpt),
        "avatar": (lambda p, v: avatar.save(p), check_avatar),
        "shard": (lambda p, v: write_shard(p, samples), check_shard),
    }


def _fork_writer(save, path: Path) -> int:
    pid = os.fork()
    if pid == 0:  # the child: save forever until killed
        try:
            torch.set_num_threads(1)
            v = 1
            while True:
                save(path, v)
                v += 1
        finally:
            os._exit(1)
    return pid


@pytest.mark.parametrize("kind", ["checkpoint", "avatar", "shard"])
def test_kill_9_mid_write_leaves_the_last_good_file(tmp_path, writers, kind):
    save, check = writers[kind]
    path = tmp_path / f"file.{kind}"
    save(path, 0)
    t0 = time.perf_counter()
    save(path, 0)
    write_s = time.perf_counter() - t0
    what = f"{kind} write ({'write_shard' if kind == 'shard' else 'atomic_write'})"
    tally = Tally(what, "SIGKILL at random delays (0.5-4 writes); survived = the file still loads", section="faults")
    rng = np.random.default_rng(len(kind))
    mid_write = 0
    for i in range(KILLS):
        pid = _fork_writer(save, path)
        time.sleep(float(rng.uniform(0.5, 4.0)) * write_s)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        leftovers = [p for p in tmp_path.iterdir() if p != path]
        mid_write += bool(leftovers)  # a temporary left behind: the kill landed inside a write
        for p in leftovers:
            p.unlink()
        tally.cases += 1
        t1 = time.perf_counter()
        try:
            check(path)
        except Exception as e:  # noqa: BLE001 - any failure to load is the finding
            tally.failures.append(f"kill {i}: the file no longer loads: {type(e).__name__}: {e}"[:300])
        else:
            tally.loaded += 1
        tally.max_seconds = max(tally.max_seconds, round(time.perf_counter() - t1, 3))
    tally.errors = {"kills that landed inside a write (temporary left behind)": mid_write}
    tally.record()
    assert not tally.failures, tally.failures
    assert tally.loaded == KILLS


def test_training_killed_with_sigkill_resumes_from_its_last_checkpoint(tmp_path, shards):
    from core.train.checkpoint import read_checkpoint_meta
    from core.train.metrics import read_metrics

    out = tmp_path / "runs"
    args = [f"out_dir={out}", f"data.root={shards}", "data.render_size=32", "name=killed", "ckpt_every=1"]
    cmd = [sys.executable, str(ROOT / "main.py"), "train", str(SMOKE), "--no-progress", "--set", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = out / "killed"
    kill_after = int(np.random.default_rng().integers(2, 5))  # a random step, as a hard kill would land
    proc = subprocess.Popen([*cmd, "steps=1000"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        rows = [r for r in read_metrics(run / "metrics.jsonl") if r.get("kind") == "train"]
        if len(rows) >= kill_after:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    step = read_checkpoint_meta(run / "last.safetensors")["step"]
    assert 1 <= step < 1000
    target = step + 2
    res = subprocess.run([*cmd, f"steps={target}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    assert read_checkpoint_meta(run / "last.safetensors")["step"] == target
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r.get("kind") == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == target - 1, steps  # no fork in the curve
    t = Tally("training run (main.py train)", "SIGKILL at a random step, then the same command", section="faults")
    t.cases, t.loaded, t.errors = 1, 1, {f"last checkpoint at step {step}, resumed and finished step": target}
    t.record()


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture(scope="module")
def disk_full_tally():
    t = Tally(
        "disk full while saving",
        "OSError(ENOSPC) at fsync: checkpoint, avatar, shard, recording, calibration",
        section="faults",
    )
    yield t
    t.record()


@pytest.mark.parametrize("kind", ["checkpoint", "avatar", "shard", "recording", "calibration"])
def test_disk_full_while_saving_reports_it_and_keeps_the_old_file(tmp_path, writers, monkeypatch, kind,
                                                                   disk_full_tally):  # fmt: skip
    from core.tracking.calibration import Calibration
    from core.tracking.recording import Recording, load_recording, save_recording

    if kind == "recording":
        rec = Recording(np.arange(3.0), ("expr.jawOpen",), np.full((3, 1), 0.5, np.float32))
        save, check = (lambda p, v: save_recording(rec, p)), (lambda p: len(load_recording(p)))
    elif kind == "calibration":
        save, check = (lambda p, v: Calibration(mirror=True).save(p)), (lambda p: Calibration.load(p).mirror)
    else:
        save, check = writers[kind]
    path = tmp_path / f"file.{'json' if kind in ('recording', 'calibration') else kind}"
    save(path, 7)
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", _enospc)
    disk_full_tally.cases += 1
    with pytest.raises(OSError) as info:
        save(path, 8)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    if kind != "shard":  # write_shard keeps the system's message; atomic_write adds what happened to the file
        assert "disk is full" in str(info.value) and "previous file is unchanged" in str(info.value)
        assert path.name in str(info.value)
    assert path.read_bytes() == before
    assert check(path) in (7, 0, 3, True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], "a temporary file was left on the full disk"
    disk_full_tally.loaded += 1
    key = "OSError naming the file, old file unchanged, no temporary left"
    disk_full_tally.errors[key] = disk_full_tally.errors.get(key, 0) + 1


class _VanishingCapture:
    """cv2.VideoCapture stand-in: a camera that delivers `frames` pictures, then is unplugged."""

    def __init__(self, index, frames: int = 5):
        self.left = frames

    def isOpened(self):
        return True

    def set(self, *a):
        return True

    def get(self, prop):
        return 30.0

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        time.sleep(0.01)
        return True, np.full((48, 64, 3), 90, np.uint8)

    def release(self):
        pass


def test_webcam_unplugged_mid_stream_stops_driving_with_a_message_and_the_controller_goes_on(monkeypatch, tmp_path):
    from core.tracking import sources
    from core.tracking.drive_control import DriveController, TrackingInput
    from core.tracking.recording import Recording, save_recording
    from core.tracking.types import DrivingFrame, Landmarks

    monkeypatch.setattr(sources.cv2, "VideoCapture", _VanishingCapture)
    monkeypatch.setattr(sources, "CAMERA_RETRY_S", 0.2)

    class Tracker:
        def track(self, image, index):
            return Landmarks(frame_index=index, image_size=(64, 48))

        def close(self):
            pass

    c = DriveController()
    c.pipeline.retarget = lambda lm: {"expr.jawOpen": 0.5}
    c.input = TrackingInput(sources.open_source(0), Tracker(), c.pipeline)
    deadline = time.perf_counter() + 10.0
    updates = 0
    while c.running and time.perf_counter() < deadline:
        updates += c.poll() is not None
        time.sleep(0.005)
    assert not c.running, "the controller kept a dead camera open"
    assert updates >= 1, "no frame was driven before the camera vanished"
    assert c.error and "camera 0 stopped sending frames" in c.error and "plug it back in" in c.error
    path = save_recording(Recording(np.arange(2.0), ("expr.jawOpen",), np.full((2, 1), 0.3, np.float32)),
                          tmp_path / "take.json")  # fmt: skip
    assert c.open(path), c.error  # the controller is still usable: drive from something else
    assert isinstance(c.input.latest()[2], DrivingFrame)
    c.shutdown()
