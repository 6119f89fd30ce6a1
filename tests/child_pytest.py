"""Run some of a test file's tests in a fresh pytest process (a second Dear PyGui studio in one process can crash)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_in_child(test_file: str, selector: str, child_env: str, *, timeout: float) -> subprocess.CompletedProcess:
    """`pytest test_file -k selector` with `child_env` set (so the file's parent test skips itself there); fails
    with the child's output unless it exits 0."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider", str(test_file),
           "-k", selector]  # fmt: skip
    res = subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, child_env: "1"}, capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, f"the tests failed in their own process:\n{res.stdout[-6000:]}\n{res.stderr[-3000:]}"
    return res
