"""The command line: every subcommand is listed, unbuilt ones say so plainly, `info` works."""

import json
import subprocess
import sys
from pathlib import Path

import main

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_subcommand():
    out = _run("--help")
    assert out.returncode == 0
    for name in main.COMMANDS:
        assert name in out.stdout


def test_unbuilt_subcommands_say_so_and_fail():
    unbuilt = [name for name, (_, target) in main.COMMANDS.items() if target is None]
    for name in unbuilt:
        rc = main.main([name])
        assert rc == 2


def test_info_reports_torch_and_backends():
    out = _run("info")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["torch"] and "gsplat" in info["optional"]
