"""The studio window fits the screen it opens on, and the preview shrinks rather than pushing panels off it."""

from __future__ import annotations

from app.layout import MIN_PANEL_WIDTH, NAV_WIDTH, ScreenArea, fit_window


def test_a_large_screen_gets_a_1280x720_window_centred() -> None:
    lay = fit_window(ScreenArea(0, 0, 1920, 1080), (640, 480))
    assert (lay.width, lay.height, lay.x, lay.y) == (1280, 720, 320, 180)
    assert lay.preview == (640, 480)


def test_a_1280x800_screen_fits_the_whole_window() -> None:
    lay = fit_window(ScreenArea(0, 0, 1280, 800), (640, 480))
    assert (lay.width, lay.height, lay.x, lay.y) == (1280, 720, 0, 40)
    assert lay.preview[0] + NAV_WIDTH + lay.panel_width <= lay.width


def test_a_small_screen_shrinks_the_window_and_the_preview() -> None:
    screen = ScreenArea(0, 24, 1024, 576)  # a work area below a top bar
    lay = fit_window(screen, (640, 480))
    assert lay.width <= 1024 and lay.height <= 576 and lay.y >= 24
    pw, ph = lay.preview
    assert ph <= 576 - 200 and abs(pw / ph - 640 / 480) < 0.02, "the preview keeps its aspect ratio"
    assert lay.panel_width >= MIN_PANEL_WIDTH and pw + NAV_WIDTH + MIN_PANEL_WIDTH <= lay.width


def test_no_screen_information_falls_back_to_the_default_window() -> None:
    lay = fit_window(None, (480, 360))
    assert (lay.width, lay.height) == (1280, 720) and lay.preview == (480, 360)
