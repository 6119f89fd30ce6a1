"""Studio additions: numeric editing of camera keys, the per-photo face check, the box-fitted body estimate and
the Personalise button (worker thread, progress, result replaces the avatar, Revert brings the old one back).
Screenshots: docs/screenshots/camera_key_edit.png, create_personalised.png."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from child_pytest import run_in_child
from gui_studio import open_studio
from reference_shots import screenshot_dir

from app.camera_path import CameraPath
from app.state import OrbitView

ROOT = Path(__file__).resolve().parents[1]
SHOTS = screenshot_dir()  # a temporary folder unless the references are being updated
CHILD = "LCA_PERSONALISE_GUI_CHILD"
needs_display = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (xvfb-run)")
in_child = pytest.mark.skipif(
    not os.environ.get(CHILD), reason="runs inside test_studio_additions_in_their_own_process"
)


def test_editing_a_camera_key_moves_it_and_keeps_the_keys_sorted():
    path = CameraPath().with_key(0.0, OrbitView()).with_key(2.0, OrbitView(yaw_deg=90.0))
    moved = path.edited(0, 3.0, OrbitView(yaw_deg=45.0, distance=2.0, target=(0.1, 1.2, 0.0)))
    assert [k.time for k in moved.keys] == [2.0, 3.0]
    assert moved.keys[1].view.distance == 2.0 and moved.keys[1].view.target == (0.1, 1.2, 0.0)
    assert moved.sample(3.0).yaw_deg == 45.0
    with pytest.raises(ValueError, match="distance"):
        path.edited(0, 1.0, OrbitView(distance=0.0))
    with pytest.raises(ValueError, match="time"):
        path.edited(0, float("nan"), OrbitView())
    with pytest.raises(IndexError):
        path.edited(5, 1.0, OrbitView())


def test_box_estimate_projects_the_body_onto_the_person_box():
    from core.capture.photo_fit import box_estimate
    from core.model.crops import project
    from core.model.rig import toy_rig

    rig = toy_rig()
    box = (40.0, 20.0, 90.0, 150.0)
    for view in ("front", "side", "back"):
        est = box_estimate(rig, box, (160, 120), view)
        uv, depth = project(rig.vertices.float(), est.camera)
        assert (depth > 0).all()
        assert float(uv[:, 1].min()) == pytest.approx(20.0, abs=1.0) and float(uv[:, 1].max()) == pytest.approx(
            150.0, abs=1.0
        )
        assert float(uv[:, 0].mean()) == pytest.approx(65.0, abs=8.0)
    front, back = box_estimate(rig, box, (160, 120), "front"), box_estimate(rig, box, (160, 120), "back")
    assert not torch.allclose(front.camera.T_cam_world, back.camera.T_cam_world), "the view turns the camera"
    with pytest.raises(ValueError, match="box"):
        box_estimate(rig, (10, 10, 5, 50), (160, 120))


# The studio end to end ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    s = open_studio(tmp_path_factory, frames=2, preview=(400, 400))
    yield s
    s.close()


def _panel(studio, title):
    return next(p for p in studio.panels if p.title == title)


@needs_display
@in_child
def test_camera_key_fields_edit_the_selected_key(studio):
    import dearpygui.dearpygui as dpg

    from tests.test_app_gui import trigger

    panel = _panel(studio, "Camera path")
    studio.show_panel("Camera path")
    studio.session.camera_preset("front")
    panel.add_key()
    front = studio.session.view
    # the new key is selected and its values fill the fields (they used to stay at 0, distance 0.000)
    assert dpg.get_value(panel.key_list) == panel._labels()[0]
    assert dpg.get_value(panel.key_distance) == pytest.approx(front.distance, abs=1e-5) and front.distance > 0.5
    assert dpg.get_value(panel.key_target)[:3] == pytest.approx(list(front.target), abs=1e-5)
    panel.time = 2.0
    studio.session.camera_preset("side")
    panel.add_key()
    assert dpg.get_value(panel.key_time) == pytest.approx(2.0) and dpg.get_value(panel.key_yaw) == pytest.approx(90.0)
    trigger(panel.key_list, panel._labels()[1])  # pick key #1: its values fill the fields
    assert dpg.get_value(panel.key_time) == pytest.approx(2.0) and dpg.get_value(panel.key_yaw) == pytest.approx(90.0)
    dpg.set_value(panel.key_time, 4.0)
    dpg.set_value(panel.key_yaw, 135.0)
    dpg.set_value(panel.key_distance, 2.5)
    dpg.set_value(panel.key_target, [0.0, 1.3, 0.0, 0.0])
    assert panel.apply_fields()
    key = panel.path.keys[1]
    assert (key.time, key.view.yaw_deg, key.view.distance) == (4.0, 135.0, 2.5) and key.view.target == (0.0, 1.3, 0.0)
    assert studio.session.view == key.view, "the preview jumps to the edited key"
    assert "t= 4.00s" in dpg.get_item_configuration(panel.key_list)["items"][1]
    assert studio.settle()
    studio.screenshot(SHOTS / "camera_key_edit.png")


@needs_display
@in_child
def test_personalise_refines_a_photo_avatar_in_the_background_and_reverts(studio, tmp_path):
    import cv2
    import dearpygui.dearpygui as dpg
    import skimage.data

    panel = _panel(studio, "Create")
    studio.show_panel("Create")
    assert not panel.personalise(2), "the synthetic person was not made from photos"
    assert "not made from photos" in studio.session.messages[-1].text
    photo = tmp_path / "person.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    panel.add_photos([str(photo)])
    assert panel.assistant.checks[0].face_status().startswith("face visible")
    assert studio.wait(panel.create())
    made = studio.session.avatar
    before = made.avatar.state.canonical.albedo.clone()
    assert panel.personalise(2)
    end = time.time() + 900
    while panel.job is not None and time.time() < end:
        studio.run(max_frames=studio.frames + 1)  # the GUI keeps drawing while the worker refines
        time.sleep(0.05)
    assert panel.job is None, "personalisation did not finish"
    now = studio.session.avatar
    assert now is not made and "(personalised)" in now.name
    assert not torch.equal(now.avatar.state.canonical.albedo, before), "the refinement changed the colours"
    assert torch.equal(made.avatar.state.canonical.albedo, before), "the original avatar is left as it was"
    assert dpg.get_value(panel.personalise_progress) == pytest.approx(1.0)
    assert studio.settle()
    studio.screenshot(SHOTS / "create_personalised.png")
    assert panel.revert() and studio.session.avatar is made
    assert np.isfinite(now.avatar.state.canonical.albedo.numpy()).all()


@needs_display
@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get(CHILD)), reason="already the child")
def test_studio_additions_in_their_own_process():
    res = run_in_child(__file__, "camera_key_fields or personalise_refines", CHILD, timeout=1500)
    assert "\n2 passed" in res.stdout, res.stdout[-2000:]
