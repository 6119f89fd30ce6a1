"""The studio stays responsive whatever a decode costs (run with xvfb-run): a slow avatar decodes on the preview
worker while the GUI keeps drawing frames, slider values land at once, and the last value dragged to is drawn.

A second Dear PyGui studio in one process can crash in its first frame, so the test runs in a fresh interpreter
started by the last test of this file."""

from __future__ import annotations

import os
import time

import pytest
from child_pytest import run_in_child
from gui_studio import open_studio

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display: run under xvfb-run")
CHILD = "LCA_RESPONSIVE_GUI_CHILD"
in_child = pytest.mark.skipif(not os.environ.get(CHILD), reason="runs inside test_responsiveness_in_its_own_process")

DECODE_S = 1.5


class SlowAvatar:
    """The synthetic person with a decode that takes DECODE_S seconds (like a big model on a small CPU)."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.name = f"slow {inner.name}"
        self.decodes = 0

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def drive(self, frame):
        time.sleep(DECODE_S)
        self.decodes += 1
        return self._inner.drive(frame)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    s = open_studio(tmp_path_factory, frames=1, preview=(320, 240), interactive_scale=1.0)
    yield s
    s.close()


@in_child
def test_a_slow_decode_never_blocks_the_gui_and_the_last_slider_value_wins(studio) -> None:
    from test_app_gui import trigger

    from core.data.avatar import synthetic_avatar

    studio.session.set_avatar(SlowAvatar(synthetic_avatar(1)))
    assert studio.settle(timeout=60.0)
    avatar = studio.session.avatar
    panel = next(p for p in studio.panels if p.title == "Expression")
    studio.show_panel("Expression")
    decodes_before = avatar.decodes
    frame_s, values = [], [round(0.1 * i, 1) for i in range(1, 11)]
    t_end = time.perf_counter() + 2.5 * DECODE_S
    i = 0
    while time.perf_counter() < t_end:  # a slider dragged across its width while decodes run
        if i < len(values):
            trigger(panel.sliders["jawOpen"], values[i])
            # the value is in the edit at once, not after the decode in flight
            assert studio.session.edit.expression_of("jawOpen") == pytest.approx(values[i])
            i += 1
        t0 = time.perf_counter()
        studio.step()
        frame_s.append(time.perf_counter() - t0)
        time.sleep(0.05)
    assert i == len(values)
    assert max(frame_s) < DECODE_S / 3, f"a GUI frame waited for the decode: {max(frame_s):.2f} s"
    assert len(frame_s) >= 20, "the GUI drew too few frames while the avatar decoded"
    assert studio.settle(timeout=60.0)
    assert studio.shown.request.edit.expression_of("jawOpen") == pytest.approx(1.0), "the last value was not drawn"
    decoded = avatar.decodes - decodes_before
    assert decoded <= 4, f"{decoded} decodes for 10 slider values: stale values were queued, not dropped"
    assert studio.worker.dropped >= len(values) - decoded
    import dearpygui.dearpygui as dpg

    status = dpg.get_value(studio.status)
    assert "frames/s" in status and "last decode" in status and "GUI" in status and "FPS" in status


@pytest.mark.skipif(bool(os.environ.get(CHILD)), reason="already the child")
def test_responsiveness_in_its_own_process() -> None:
    res = run_in_child(__file__, "slow_decode", CHILD, timeout=280)
    assert "\n1 passed" in res.stdout, res.stdout[-2000:]
