"""The studio's start: the window first, the avatar after it.

Opening the default avatar takes seconds (the trained model, its anchors and, on the first start, a decode of
the example from its photos), so the studio opens on `LoadingAvatar`, a placeholder that nothing is drawn for,
and the preview worker loads the real one (`choose_avatar`) while the window already answers and its status
line says what is loading. `app.splash.process_age()` times both moments from the process's own start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from app.avatar_source import AvatarLoadError, StudioAvatar, default_avatar, example_figure, load_avatar
from app.session import Session
from app.settings import Settings
from core.body.frame import Controls, DriveFrame
from core.raster.types import Gaussians

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]  # (fraction done, what is loading)


class LoadingAvatar:
    """Stands in for the avatar while it loads: no controls, one invisible splat, never drawn (`loading`)."""

    loading = True
    name = ""  # an empty name is never remembered as the last avatar (app.settings)
    description = "loading... (the window opens first; the preview fills when it is ready)"
    controls = Controls()

    def __init__(self) -> None:
        z = torch.zeros(1, 3)
        self._g = Gaussians(z, torch.tensor([[1.0, 0, 0, 0]]), z - 10.0, torch.full((1,), -20.0), z[:, None])

    def canonical(self) -> Gaussians:
        return self._g

    def face_target(self) -> tuple[float, float, float]:
        return (0.0, 1.6, 0.0)

    def drive(self, frame: DriveFrame) -> Gaussians:
        return self._g


def is_loading(avatar: StudioAvatar) -> bool:
    return bool(getattr(avatar, "loading", False))


@dataclass(frozen=True)
class StartAvatar:
    """What the start opened: the avatar, the file it came from (None for examples), a problem to report."""

    avatar: StudioAvatar
    path: Path | None = None
    problem: str | None = None


def choose_avatar(
    avatar: str | None, example: str | None, last: str | None, progress: Progress | None = None
) -> StartAvatar:
    """The requested avatar (a file, or `example` from the gallery), else the `last` session's, else the default.

    A file or example that cannot be opened falls back to the default, with the reason in `problem`. Runs on
    the preview worker (it may take seconds); `progress(fraction, text)` hears each step.
    """
    say = progress or (lambda fraction, text: None)
    wanted = example and f"gallery:{example}" or avatar or last
    problem = None
    if wanted and wanted.startswith("gallery:"):
        from app.gallery import gallery

        name = wanted.split(":", 1)[1]
        entries = gallery()
        if name in entries:
            say(0.1, f"opening {name}")
            try:
                return StartAvatar(entries[name]())
            except AvatarLoadError as e:
                problem = f"could not open {name}: {e}"
        else:
            problem = f"no gallery avatar named {name!r}; opening the default"
    elif wanted:
        say(0.1, f"reading {Path(wanted).name}")
        try:
            return StartAvatar(load_avatar(wanted), Path(wanted))
        except AvatarLoadError as e:
            problem = f"could not open avatar: {e}"
    try:
        return StartAvatar(default_avatar(progress), None, problem)
    except (AvatarLoadError, RuntimeError, OSError, ValueError) as e:  # the studio still opens on something
        log.warning("the default avatar could not be opened: %s", e)
        return StartAvatar(example_figure(), None, f"the default avatar could not be opened: {e}")


def apply_settings(session, settings) -> None:
    """Start the session from the last one's camera and lighting (not an undo step)."""
    session.set_view(settings.orbit_view())
    session.apply(replace(session.edit, lighting=settings.lighting_edit()), external=True)
    session.history.clear()


def open_session(avatar: str | None, example: str | None, settings: Settings) -> Session:
    """A session on the requested avatar, else the last session's, else the default; bad files keep the default.

    Loads the avatar on the calling thread (scripts, tests); the studio itself opens its window first and loads
    the avatar on the preview worker (`start_studio`).
    """
    start = choose_avatar(avatar, example, settings.last_avatar)
    session = Session(start.avatar)
    session.avatar_path = start.path
    if start.problem:
        session.say(start.problem, logging.ERROR)
    apply_settings(session, settings)
    return session
