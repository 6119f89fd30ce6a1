"""`python main.py drive --headless`: a tiny clip drives an avatar into an mp4 and a channel recording; a missing
camera ends with a message and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _drive(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # headless whatever the test runner has
    env["LCA_STUDIO_HOME"] = env.get("LCA_STUDIO_HOME", "/tmp/lca_drive_cli_home")
    return subprocess.run(
        [sys.executable, "main.py", "drive", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_drive_headless_missing_camera_exits_2_with_a_message() -> None:
    res = _drive("--source", "57", "--headless", "--out", "/tmp/never.mp4")
    assert res.returncode == 2, res.stderr[-2000:]
    assert "camera 57 is not available" in res.stderr
    assert not Path("/tmp/never.mp4").exists()


def test_drive_headless_writes_the_driven_avatar_and_channels(tmp_path) -> None:
    import imageio_ffmpeg
    from skimage.data import astronaut

    from core.tracking.recording import load_recording
    from core.tracking.video_out import LiveVideoWriter

    clip = tmp_path / "clip.mp4"
    with LiveVideoWriter(clip, fps=10.0, realtime=False) as w:
        for dx in (0, 4, 8, 4):
            w.add(np.roll(astronaut()[::2, ::2], dx, axis=1))
    out, channels = tmp_path / "driven.mp4", tmp_path / "channels.npz"
    res = _drive("--source", str(clip), "--headless", "--out", str(out), "--record-channels", str(channels),
                 "--no-hands", "--example", "example figure", "--size", "160x120")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    reader = imageio_ffmpeg.read_frames(str(out))
    assert tuple(next(reader)["size"]) == (160, 120)
    assert sum(1 for _ in reader) == 4
    rec = load_recording(channels)
    assert len(rec.times) == 4 and any(n.startswith("expr.") for n in rec.names)
    assert rec.times[1] - rec.times[0] == pytest.approx(0.1)  # the clip's clock (10 FPS), not the render's

    replay = tmp_path / "replay.mp4"  # the recording drives the avatar again, every sample once
    res = _drive("--source", str(channels), "--headless", "--out", str(replay), "--example", "example figure",
                 "--size", "160x120")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    reader = imageio_ffmpeg.read_frames(str(replay))
    next(reader)
    assert sum(1 for _ in reader) == 4
