"""The studio window's size and place on the screen it opens on, and the sizes of its columns.

Pure arithmetic (`fit_window`) plus one query of the monitor's work area through glfw (`screen_area`), so the
window never opens larger than the screen (the default is at most 1280x720, centred in the work area).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_WINDOW = (1280, 720)
NAV_WIDTH = 136  # the side list of panels
MIN_PANEL_WIDTH = 440  # the panels' widgets are laid out for this width
PREVIEW_CHROME_H = 200  # menu bar, buttons, status lines and a small console below the preview
MIN_PREVIEW = (320, 240)
PADDING = 32  # window padding and spacing between the columns


@dataclass(frozen=True)
class ScreenArea:
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class WindowLayout:
    x: int
    y: int
    width: int
    height: int
    preview: tuple[int, int]  # (width, height) of the preview image
    panel_width: int  # the panel column right of the side list


def screen_area() -> ScreenArea | None:
    """The primary monitor's work area (without task bars), or None when it cannot be asked (no display)."""
    try:
        import glfw
    except ImportError:
        return None
    try:
        if not glfw.init():
            return None
    except Exception as e:  # noqa: BLE001 - glfw raises its own error types when there is no display
        log.debug("no monitor size from glfw: %s", e)
        return None
    try:
        monitor = glfw.get_primary_monitor()
        if not monitor:
            return None
        x, y, w, h = glfw.get_monitor_workarea(monitor)
        if w <= 0 or h <= 0:
            mode = glfw.get_video_mode(monitor)
            x, y, w, h = 0, 0, mode.size.width, mode.size.height
        return ScreenArea(int(x), int(y), int(w), int(h))
    finally:
        glfw.terminate()


def fit_window(
    screen: ScreenArea | None,
    preview: tuple[int, int] = (640, 480),
    *,
    window: tuple[int, int] = DEFAULT_WINDOW,
) -> WindowLayout:
    """The window (at most `window`, never larger than the screen, centred on it) and the preview size in it.

    The preview keeps its aspect ratio and shrinks when the requested size leaves too little room for the panels
    or for the status bar and console under it.
    """
    sw, sh = (screen.width, screen.height) if screen is not None else window
    sx, sy = (screen.x, screen.y) if screen is not None else (0, 0)
    w, h = min(window[0], sw), min(window[1], sh)
    pw, ph = preview
    room_w = max(MIN_PREVIEW[0], w - NAV_WIDTH - MIN_PANEL_WIDTH - PADDING)
    room_h = max(MIN_PREVIEW[1], h - PREVIEW_CHROME_H)
    s = min(1.0, room_w / pw, room_h / ph)
    if s < 1.0:
        log.info("preview %dx%d does not fit a %dx%d window; drawing it at %.0f%%", pw, ph, w, h, 100 * s)
        pw, ph = max(16, int(pw * s) // 2 * 2), max(16, int(ph * s) // 2 * 2)
    panel_width = max(MIN_PANEL_WIDTH, w - pw - NAV_WIDTH - PADDING)
    return WindowLayout(sx + (sw - w) // 2, sy + (sh - h) // 2, w, h, (pw, ph), panel_width)
