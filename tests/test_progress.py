"""Commands that take more than a few seconds show a progress bar with the time left in the terminal."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.drive_cli import source_length

ROOT = Path(__file__).resolve().parents[1]


def test_render_mp4_shows_frames_done_and_time_left(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    out = tmp_path / "turn.mp4"
    res = subprocess.run(
        [sys.executable, "main.py", "render", "demo", "--out", str(out), "--frames", "3", "--width", "48",
         "--height", "48"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "rendering turn.mp4" in res.stderr and "3/3" in res.stderr and "<00:00" in res.stderr, res.stderr[-2000:]
    assert out.stat().st_size > 0


def test_headless_drive_knows_how_many_frames_are_left():
    video = SimpleNamespace(frame_count=120, loop=False)
    assert source_length(video, None) == 120 and source_length(video, 60) == 60
    folder = SimpleNamespace(paths=[Path("a.png"), Path("b.png")], loop=False)
    assert source_length(folder, None) == 2 and source_length(folder, 9) == 2
    webcam = SimpleNamespace()
    assert source_length(webcam, None) is None and source_length(webcam, 30) == 30
    looping = SimpleNamespace(frame_count=10, loop=True)
    assert source_length(looping, None) is None and source_length(looping, 25) == 25


@pytest.mark.slow  # one benchmark identity takes 10-20 s to render on a CPU
def test_benchmark_generation_reports_progress(tmp_path, capsys):
    from core.data.benchmarks import write_benchmark
    from core.data.synth import SynthConfig

    cfg = SynthConfig(width=24, height=24, detail=0.05)
    paths = write_benchmark(tmp_path, "studio-test", 1, cfg, progress=True)
    assert paths[0].is_file() and "generating studio-test" in capsys.readouterr().err
    write_benchmark(tmp_path, "studio-test", 1, cfg, progress=True)  # nothing left to generate: no bar
    assert "generating" not in capsys.readouterr().err
