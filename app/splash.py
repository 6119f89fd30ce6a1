"""The studio's window before anything heavy is imported: `open_window` draws it with a line saying what loads.

Importing torch and the studio's panels takes seconds on a small CPU (most of the time to the window), so
`python main.py studio` opens the window from here first (Dear PyGui and the window layout only, no torch), and
`app.studio.Studio(window_open=True)` then builds its widgets into that same window. `process_age()` times the
start from the process's own start.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import dearpygui.dearpygui as dpg

from app.layout import ScreenArea, fit_window, screen_area

log = logging.getLogger(__name__)

SPLASH = "lca-splash"  # the splash window's tag (deleted by the studio once its own widgets are built)
_IMPORTED = time.perf_counter()
shown_at: float | None = None  # process_age() when the splash was first drawn


def process_age() -> float:
    """Seconds since this process started (from /proc on Linux; elsewhere since this module was imported)."""
    try:
        start_ticks = float(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter() - _IMPORTED


def open_window(preview: tuple[int, int], title: str = "LCA Studio") -> ScreenArea | None:
    """Create the Dear PyGui context and the studio's window (sized as the studio will be) and draw a line saying
    the studio is loading; returns the screen area it measured (for `Studio(screen=...)`)."""
    global shown_at
    screen = screen_area()
    lay = fit_window(screen, preview)
    dpg.create_context()
    dpg.configure_app(manual_callback_management=True)
    dpg.create_viewport(title=title, width=lay.width, height=lay.height, x_pos=lay.x, y_pos=lay.y)
    dpg.setup_dearpygui()
    with dpg.window(tag=SPLASH, no_title_bar=True, no_move=True, no_resize=True):
        dpg.add_text("LCA Studio", color=(235, 235, 240))
        dpg.add_text(
            f"Loading the studio ({process_age():.0f} s since start)...\n"
            "importing torch and the panels (a few seconds); the avatar loads next, in this window",
            color=(180, 200, 220),
        )
    dpg.set_primary_window(SPLASH, True)
    dpg.show_viewport()
    for _ in range(2):  # the first frame sizes the window, the second draws it
        dpg.render_dearpygui_frame()
    shown_at = process_age()
    log.info("studio window shown %.1f s after start", shown_at)
    return screen


def close_splash() -> None:
    """Remove the splash's widgets (the studio's own window takes its place)."""
    if dpg.does_item_exist(SPLASH):
        dpg.delete_item(SPLASH)
