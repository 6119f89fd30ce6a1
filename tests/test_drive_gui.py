"""The Drive panel in the real studio under a display (xvfb-run): a video file drives the avatar, a rendered face
that opens its mouth opens the avatar's mouth, a missing camera shows a message while the studio keeps running,
channels record and replay. Screenshot: docs/screenshots/drive_panel.png.

A second Dear PyGui studio in one process can crash in its first frame, so these tests run in a fresh interpreter
started by the last test of this file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from child_pytest import run_in_child
from gui_studio import open_studio
from reference_shots import screenshot_dir

SHOTS = screenshot_dir()  # a temporary folder unless the references are being updated
CHILD = "LCA_DRIVE_GUI_CHILD"
needs_display = pytest.mark.skipif(
    not os.environ.get("DISPLAY"), reason="needs a display: run under xvfb-run -a -s '-screen 0 1600x900x24'"
)
in_child = pytest.mark.skipif(not os.environ.get(CHILD), reason="runs inside test_drive_panel_in_its_own_process")


FACES = Path(__file__).resolve().parent / "assets" / "drive_face"  # SyntheticFaceCamera renders, see make_faces()


def make_faces() -> None:
    """Re-render the two face pictures of the test clip (a held-out synthetic identity, 192 px)."""
    from PIL import Image

    from core.data.seeds import identity_seed
    from core.eval.face_renders import SyntheticFaceCamera

    cam = SyntheticFaceCamera(identity_seed(0, "wild-test", 0), size=192)
    Image.fromarray(cam.render()).save(FACES / "closed.png")
    Image.fromarray(cam.render({"jawOpen": 0.9}, head_deg=(0.0, 12.0, 0.0))).save(FACES / "open_turned.png")


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> Path:
    """An image folder: the face with its mouth closed for 4 frames, then open (jawOpen 0.9) and turned 12 degrees
    to the side for 8."""
    import shutil

    folder = tmp_path_factory.mktemp("face_clip")
    for i, name in enumerate(["closed"] * 4 + ["open_turned"] * 8):
        shutil.copy(FACES / f"{name}.png", folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    s = open_studio(tmp_path_factory, preview=(480, 360), interactive_scale=1.0)
    yield s
    s.close()


def _panel(studio):
    return next(p for p in studio.panels if p.title == "Drive")


def _run_until(studio, done, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while not done():
        assert time.perf_counter() < deadline, "timed out waiting for the studio"
        studio.run(max_frames=studio.frames + 1)
        time.sleep(0.01)


@needs_display
@in_child
def test_drive_panel_missing_camera_shows_a_message_and_the_studio_keeps_running(studio) -> None:
    import dearpygui.dearpygui as dpg

    panel = _panel(studio)
    studio.show_panel("Drive")
    assert not panel.start(57)
    frames = studio.frames
    studio.run(max_frames=frames + 3)
    assert studio.frames == frames + 3
    text = dpg.get_value(panel.state_text)
    assert "camera 57" in text and "stopped" in text
    assert any("camera 57" in m.text for m in studio.session.messages)
    assert dpg.get_item_label(panel.start_button) == "Start"


@needs_display
@in_child
def test_drive_panel_video_drives_the_avatar_mouth_and_records_channels(studio, face_clip, tmp_path) -> None:
    import dearpygui.dearpygui as dpg

    from core.tracking.recording import load_recording

    panel = _panel(studio)
    studio.show_panel("Drive")
    studio.session.camera_preset("face")
    assert studio.settle()
    before = studio.preview_image[..., :3].copy()
    history = len(studio.session.history._undo)
    dpg.set_value(panel.loop_box, False)
    dpg.set_value(panel.rec_path, str(tmp_path / "take.json"))
    dpg.set_value(panel.rec_box, True)
    panel._on_record(panel.rec_box, True)
    assert panel.start(str(face_clip), realtime=False)  # every frame tracked, none dropped
    jaw = []

    def finished() -> bool:
        jaw.append(studio.session.edit.expression_of("jawOpen"))
        return panel.controller.finished

    _run_until(studio, finished)
    assert studio.settle()  # the last result is applied and drawn
    after = studio.preview_image[..., :3].copy()
    edit = studio.session.edit
    assert panel.frames_applied >= 1
    assert edit.expression_of("jawOpen") > 0.3, f"the avatar's mouth did not open (jawOpen over time: {jaw})"
    assert edit.pose.rotation_of("head")[1] > 4.0, f"the head did not turn: {edit.pose.rotation_of('head')}"
    assert float((np.abs(after - before).max(-1) > 0.05).mean()) > 0.002, "driving changed no preview pixels"
    assert len(studio.session.history._undo) == history, "live driving must not add undo steps"
    assert panel.latency_ms.get("total", 0.0) > 0.0 and "frame->preview" in dpg.get_value(panel.latency_text)
    assert panel.controller.channel_names and dpg.get_value(panel.series[0][0])[0], "no curve was drawn"
    assert panel.camera_preview[..., :3].std() > 0.05, "the camera preview is blank"
    green = (panel.camera_preview[..., 1] > 0.85) & (panel.camera_preview[..., 0] < 0.45)
    assert green.sum() > 50, "no face landmarks drawn on the camera preview"
    studio.screenshot(SHOTS / "drive_panel.png")

    dpg.set_value(panel.rec_box, False)
    panel._on_record(panel.rec_box, False)
    rec = load_recording(tmp_path / "take.json")
    assert len(rec.times) >= 2 and "expr.jawOpen" in rec.names

    panel.stop()
    studio.session.apply_live(studio.session.edit.with_expression({"jawOpen": 0.0}))
    assert panel.replay()
    _run_until(studio, lambda: studio.session.edit.expression_of("jawOpen") > 0.0, timeout=10.0)
    panel.stop()
    assert not panel.controller.running


@needs_display
@pytest.mark.skipif(bool(os.environ.get(CHILD)), reason="already the child")
def test_drive_panel_in_its_own_process() -> None:
    res = run_in_child(__file__, "drive_panel_ and not own_process", CHILD, timeout=280)
    assert "\n2 passed" in res.stdout, res.stdout[-2000:]
