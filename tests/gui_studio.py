"""Shared by the GUI tests: a Studio on the ground-truth synthetic person (every part and expression is present,
whatever model ships), with its settings in a temporary home."""

from __future__ import annotations

import os


def open_studio(tmp_path_factory, *, frames: int = 3, **studio_kwargs):
    """A Studio on synthetic person #1 after `frames` frames; `studio_kwargs` go to `Studio` (preview size, ...)."""
    os.environ["LCA_STUDIO_HOME"] = str(tmp_path_factory.mktemp("home"))
    from app.session import Session
    from app.studio import Studio
    from core.data.avatar import synthetic_avatar

    s = Studio(Session(synthetic_avatar(1)), **studio_kwargs)
    s.run(max_frames=frames)
    return s
