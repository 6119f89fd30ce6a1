"""Shared by the training-panel GUI tests: a studio opened on the Training tab, the panel, and waiting on frames."""

from __future__ import annotations

import time

from gui_studio import open_studio


def open_training_studio(tmp_path_factory):
    """A Studio on a synthetic avatar with its runs in a temporary folder, the Training tab shown."""
    s = open_studio(tmp_path_factory, frames=2, preview=(400, 540), runs_root=tmp_path_factory.mktemp("runs"))
    s.show_panel("Training")
    return s


def training_panel(studio):
    from app.panels.training import TrainingPanel

    return next(p for p in studio.panels if isinstance(p, TrainingPanel))


def frames_until(studio, cond, timeout: float, what: str, *, poll_s: float = 0.05) -> None:
    """Run the studio a frame at a time until `cond()`; on timeout fail with the selected run's log tail."""
    end = time.time() + timeout
    while time.time() < end:
        studio.run(max_frames=studio.frames + 1)
        if cond():
            return
        time.sleep(poll_s)
    panel = training_panel(studio)
    log = panel.selected.log_tail(40) if panel.selected else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; log:\n{log}")
