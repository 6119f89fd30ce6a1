"""The studio's window comes first, the avatar after it (run with xvfb-run): while the avatar loads on the preview
worker the window draws frames, a line over the preview and the status bar say what is loading, and the preview
fills once the avatar is there. A failed load still leaves a working studio.

A second Dear PyGui studio in one process can crash in its first frame, so the GUI test runs in a fresh
interpreter started by `test_startup_in_its_own_process`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from child_pytest import run_in_child
from reference_shots import screenshot_dir

ROOT = Path(__file__).resolve().parents[1]
CHILD = "LCA_STARTUP_GUI_CHILD"
needs_display = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display: run under xvfb-run")
in_child = pytest.mark.skipif(not os.environ.get(CHILD), reason="runs inside test_startup_in_its_own_process")


def test_choose_avatar_falls_back_to_the_default_with_the_reason(tmp_path, monkeypatch) -> None:
    import app.startup as startup
    from app.avatar_source import example_figure

    default = example_figure(200)
    monkeypatch.setattr(startup, "default_avatar", lambda progress=None: default)
    heard: list[str] = []
    start = startup.choose_avatar(str(tmp_path / "missing.safetensors"), None, None, lambda f, t: heard.append(t))
    assert start.avatar is default and start.path is None and "no avatar file" in start.problem
    assert heard and "missing.safetensors" in heard[0]
    start = startup.choose_avatar(None, None, "gallery:example figure")
    assert start.avatar.name.startswith("example figure") and start.problem is None
    start = startup.choose_avatar(None, "no such example", None)
    assert start.avatar is default and "no such example" in start.problem
    assert startup.choose_avatar(None, None, None).avatar is default


def test_progress_overlays_are_cut_to_their_bar() -> None:
    from app.studio_tasks import fit_text

    assert fit_text("opening x: 40%", 400) == "opening x: 40%"
    cut = fit_text("loading the avatar: 30%, 2 s left (decoding studio-test #0 from 8 photos)", 260)
    assert cut.startswith("loading the avatar: 30%") and cut.endswith("...") and len(cut) <= (260 - 8) // 7


def test_the_loading_placeholder_is_never_drawn_nor_remembered(tmp_path) -> None:
    from app.session import Session
    from app.settings import Settings
    from app.splash import process_age
    from app.startup import LoadingAvatar, is_loading

    session = Session(LoadingAvatar())
    assert is_loading(session.avatar) and session.avatar.controls.expression_names == ()
    settings = Settings(last_avatar="gallery:example figure")
    settings.save_from(session, tmp_path / "settings.json")
    assert settings.last_avatar == "gallery:example figure"  # closing while loading keeps the last avatar
    assert 0.0 < process_age() < 24 * 3600


@needs_display
@in_child
def test_window_first_then_the_avatar(tmp_path_factory) -> None:
    import dearpygui.dearpygui as dpg

    from app import splash
    from app.session import Session
    from app.splash import open_window
    from app.startup import LoadingAvatar, StartAvatar
    from app.studio import LOADING_GREY, Studio
    from core.data.avatar import synthetic_avatar

    os.environ["LCA_STUDIO_HOME"] = str(tmp_path_factory.mktemp("home"))
    release = threading.Event()

    def slow_load(progress) -> StartAvatar:  # a first start's decode, held until the test lets it finish
        progress(0.3, "decoding the example from 8 photos (first start only; kept in the cache)")
        assert release.wait(60.0)
        return StartAvatar(synthetic_avatar(1))

    screen = open_window((480, 360))  # as `main.py studio`: the window before torch and the panels
    assert splash.shown_at is not None and dpg.does_item_exist(splash.SPLASH)
    studio = Studio(
        Session(LoadingAvatar()), preview=(480, 360), interactive_scale=1.0, window_open=True, screen=screen
    )
    try:
        assert not dpg.does_item_exist(splash.SPLASH)  # the studio's widgets took its place
        studio.step()
        assert studio.window_shown_s == splash.shown_at and studio.avatar_shown_s is None
        studio.load_start_avatar(slow_load)
        end = time.perf_counter() + 30.0
        while "decoding" not in dpg.get_value(studio.loading_line) and time.perf_counter() < end:
            studio.step()
        frame_s = []
        for _ in range(20):  # the window keeps answering while the avatar loads
            t0 = time.perf_counter()
            studio.step()
            frame_s.append(time.perf_counter() - t0)
        assert max(frame_s) < 2.0, f"a GUI frame waited for the load: {max(frame_s):.2f} s"
        line, status = dpg.get_value(studio.loading_line), dpg.get_value(studio.status)
        assert dpg.is_item_shown(studio.loading_line) and "Loading the avatar" in line and "decoding" in line
        assert "loading the avatar: decoding the example" in status
        assert studio.shown is None and np.allclose(studio.preview_image, LOADING_GREY)  # nothing drawn yet
        studio.show_panel("Lighting")  # panels and camera presets work before the avatar is there
        studio.session.camera_preset("side")
        studio.show_panel("Avatar")
        studio.session.camera_preset("front")
        studio.screenshot(screenshot_dir() / "startup_loading.png")
        release.set()
        assert studio.settle(timeout=120.0), "the avatar never appeared"
        assert studio.session.avatar.name.startswith("synthetic person")
        assert studio.avatar_shown_s is not None and studio.avatar_shown_s >= studio.window_shown_s
        assert studio.preview_image.std() > 0.05 and not dpg.is_item_shown(studio.loading_line)
        assert "Gaussians" in dpg.get_value(studio.status)

        def broken(progress) -> StartAvatar:
            raise RuntimeError("the model file is damaged")

        studio.session.set_avatar(LoadingAvatar())
        studio.load_start_avatar(broken)
        assert studio.settle(timeout=120.0)
        assert studio.session.avatar.name.startswith("example figure")  # the studio still works
        errors = [m.text for m in studio.session.messages if m.level >= logging.ERROR]
        assert any("could not load the avatar" in t and "damaged" in t for t in errors), errors
    finally:
        studio.close()


@needs_display
@pytest.mark.skipif(bool(os.environ.get(CHILD)), reason="already the child")
def test_startup_in_its_own_process() -> None:
    res = run_in_child(__file__, "window_first", CHILD, timeout=280)
    assert "\n1 passed" in res.stdout, res.stdout[-2000:]


@needs_display
@pytest.mark.slow
def test_main_shows_the_window_before_it_loads_the_default_avatar(tmp_path) -> None:
    """`python main.py studio` on the real default avatar: the window is drawn before the avatar is opened."""
    env = {**os.environ, "LCA_STUDIO_HOME": str(tmp_path / "home"), "LCA_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "main.py", "studio", "--fresh", "--frames", "1", "--screenshot", str(tmp_path / "s.png")]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    window, opened = out.find("studio window shown"), out.find("opened avatar")
    assert 0 <= window < opened, out[-3000:]
    assert "studio showed" in out and (tmp_path / "s.png").is_file()
