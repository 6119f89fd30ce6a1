"""`python main.py studio`: open the studio (restoring the last session's avatar, camera and lighting)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def add_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    p.add_argument("avatar", nargs="?", default=None, help="avatar file (.safetensors or .ply); default: the last one")
    p.add_argument("--example", default=None, help="open a gallery example by name instead (e.g. 'example figure')")
    p.add_argument("--size", default="640x480", help="preview size WxH (keep it small on CPU), default 640x480")
    p.add_argument("--fresh", action="store_true", help="ignore the saved settings of the last session")
    p.add_argument("--frames", type=int, default=None, help="quit after this many frames (scripted runs)")
    p.add_argument("--screenshot", default=None, help="save a PNG of the window before quitting")

    def run(args: argparse.Namespace) -> int:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            p.error(f"--size must look like 640x480, got {args.size!r}")
        from app.splash import open_window

        screen = open_window((w, h))  # the window first: torch and the studio are imported after it is drawn
        from app.studio import start_studio

        log.info("starting the studio: loading the %s avatar", args.avatar or "last or default")
        return start_studio(
            avatar=args.avatar, example=args.example, preview=(w, h), fresh=args.fresh, frames=args.frames,
            screenshot=args.screenshot, window_open=True, screen=screen,
        )  # fmt: skip

    return run
