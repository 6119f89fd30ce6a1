"""Where the GUI tests save their screenshots: a temporary folder, so a test run changes no tracked file.

The reference screenshots in docs/screenshots/ are rewritten only when asked: `bench/update_screenshots.sh`
(or `python -m pytest --update-screenshots tests/test_app_gui.py ...` under a virtual screen).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

UPDATE_ENV = "LCA_UPDATE_SCREENSHOTS"
SCRATCH_ENV = "LCA_TEST_SCREENSHOTS"  # the session's folder (tests/conftest.py), shared with child processes
REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
_scratch: Path | None = None


def screenshot_dir() -> Path:
    """docs/screenshots/ when updating the references ($LCA_UPDATE_SCREENSHOTS=1), else one temporary folder."""
    global _scratch
    if os.environ.get(UPDATE_ENV) == "1":
        return REFERENCE
    if os.environ.get(SCRATCH_ENV):
        return Path(os.environ[SCRATCH_ENV])
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="lca-screenshots-"))
    return _scratch
