"""The real studio under a display (run with xvfb-run): widgets are driven through their own callbacks.

Each test checks that the preview changed as a user would expect and saves a screenshot of its panel (in a
temporary folder; `--update-screenshots` rewrites the references in docs/screenshots/). The preview is drawn
by a worker thread: `image()` runs frames until it caught up.
"""

from __future__ import annotations

import inspect
import logging
import os

import numpy as np
import pytest
import torch
from gui_studio import open_studio
from reference_shots import screenshot_dir

pytestmark = pytest.mark.skipif(
    not os.environ.get("DISPLAY"), reason="needs a display: run under xvfb-run -a -s '-screen 0 1600x900x24'"
)

SHOTS = screenshot_dir()  # a temporary folder unless the references are being updated


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    s = open_studio(tmp_path_factory, preview=(480, 360), interactive_scale=1.0)
    yield s
    s.close()


def trigger(item, value=None) -> None:
    """Call an item's callback the way Dear PyGui does when a user changes it."""
    import dearpygui.dearpygui as dpg

    if value is not None:
        dpg.set_value(item, value)
    cb = dpg.get_item_callback(item)
    args = (item, dpg.get_value(item), dpg.get_item_user_data(item))
    n = len(inspect.signature(cb).parameters)
    cb(*args[:n])


def image(studio) -> np.ndarray:
    assert studio.settle(), "the preview did not catch up with the edits"
    return studio.preview_image[..., :3].copy()


def fresh(studio) -> np.ndarray:
    """The next picture the worker finishes (while something plays, the preview never settles)."""
    import time

    n = studio.worker.decoded
    end = time.perf_counter() + 60.0
    while studio.worker.decoded <= n + 1:  # one that was asked for after this call
        assert time.perf_counter() < end, "no new picture"
        studio.step()
    studio.step()
    return studio.preview_image[..., :3].copy()


def shot(studio, name: str) -> None:
    assert studio.settle()  # show the latest edits before capturing
    studio.screenshot(SHOTS / f"{name}.png")


def changed_share(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels whose colour moved by more than 0.05."""
    return float((np.abs(a - b).max(-1) > 0.05).mean())


def find_button(parent, label: str):
    import dearpygui.dearpygui as dpg

    stack = [parent]
    while stack:
        item = stack.pop()
        if dpg.get_item_type(item).endswith("mvButton") and dpg.get_item_label(item) == label:
            return item
        for slot in dpg.get_item_children(item).values():
            stack.extend(slot)
    raise LookupError(f"no button labelled {label!r}")


def test_studio_starts_with_a_visible_avatar_and_status(studio) -> None:
    import dearpygui.dearpygui as dpg

    img = image(studio)
    assert img.std() > 0.05, "the preview shows nothing"
    status = dpg.get_value(studio.status)
    assert studio.session.avatar.name in status and "Gaussians" in status and "FPS" in status
    shot(studio, "avatar_panel")


def test_orbit_presets_and_zoom_change_the_view(studio) -> None:
    front = image(studio)
    studio.session.camera_preset("side")
    side = image(studio)
    assert np.abs(front - side).mean() > 0.01
    studio._wheel = 3.0
    closer = image(studio)
    assert (closer.std(axis=2) > 0.02).mean() > (side.std(axis=2) > 0.02).mean() * 0.9
    studio.session.camera_preset("front")


def test_expression_slider_moves_the_face_and_undo_restores_it(studio) -> None:
    import dearpygui.dearpygui as dpg

    panel = studio.panels[1]
    if not panel.sliders:
        pytest.skip("the default avatar has no expression controls")
    studio.show_panel("Expression")
    studio.session.camera_preset("face")
    before = image(studio)
    trigger(panel.sliders["jawOpen"], 1.0)
    after = image(studio)
    assert changed_share(after, before) > 0.002, "opening the jaw changed no pixels of the face close-up"
    shot(studio, "expression_panel")
    assert studio.session.undo()
    restored = image(studio)
    np.testing.assert_allclose(restored, before, atol=1e-4)
    trigger(panel.sliders["eyeBlinkLeft"], 0.7)  # the symmetry lock moves the right eye too
    assert studio.session.edit.expression_of("eyeBlinkRight") == pytest.approx(0.7)
    assert dpg.get_value(panel.sliders["eyeBlinkRight"]) == pytest.approx(0.7)
    trigger(find_button(panel.root, "smile"))
    image(studio)
    assert studio.session.edit.expression_of("mouthSmileLeft") > 0.5
    assert studio.session.edit.expression_of("eyeBlinkLeft") == 0.0  # a preset replaces the whole expression
    assert dpg.get_value(panel.sliders["mouthSmileRight"]) > 0.5
    trigger(panel.gaze_yaw, 20.0)
    assert studio.session.edit.gaze_deg[0] == 20.0
    trigger(find_button(panel.root, "Reset"))
    assert studio.session.edit.expression == () and studio.session.edit.gaze_deg == (0.0, 0.0)
    studio.session.camera_preset("front")


def test_pose_preset_and_clip_move_the_body(studio) -> None:
    panel = studio.panels[2]
    if not panel._tree_items:
        pytest.skip("the default avatar has no skeleton")
    studio.show_panel("Pose")
    before = image(studio)
    trigger(find_button(panel.root, "waving"))
    waving = image(studio)
    assert np.abs(waving - before).mean() > 0.005
    panel.select("upperarm01.L")
    trigger(panel.rot_sliders[2], 40.0)
    assert studio.session.edit.pose.rotation_of("upperarm01.L")[2] == 40.0
    shot(studio, "pose_panel")
    assert "body: dance" in panel.clips, "no clips generated from the body model"
    trigger(panel.clip_combo, "body: dance")
    a = fresh(studio)
    assert panel.clip_time > 0.0 and np.abs(fresh(studio) - a).mean() > 0.0
    panel.playing = False
    trigger(find_button(panel.root, "T"))


def test_part_edits_hide_recolour_and_swap_parts(studio) -> None:
    import dearpygui.dearpygui as dpg

    panel = studio.panels[3]
    studio.show_panel("Hair & garments")
    before = image(studio)
    trigger(panel.rows["upper_garment"]["hue"], 0.4)
    recoloured = image(studio)
    assert np.abs(recoloured - before).mean() > 0.002
    trigger(panel.rows["upper_garment"]["visible"], False)
    hidden = image(studio)
    assert np.abs(hidden - recoloured).mean() > 0.005
    trigger(panel.label_view, True)
    labels = image(studio)
    shot(studio, "parts_panel")
    assert np.abs(labels - hidden).mean() > 0.005
    trigger(panel.label_view, False)
    trigger(find_button(panel.root, "Reset all parts"))
    plain = image(studio)
    donor = next(n for n in dpg.get_item_configuration(panel.rows["hair"]["swap_from"])["items"] if "#2" in n)
    trigger(panel.rows["hair"]["swap_from"], donor)
    swapped = image(studio)
    assert studio.session.edit.part("hair").swap_from == donor
    assert changed_share(swapped, plain) > 0.002, "taking another person's hair changed nothing"
    studio.session.camera_preset("face")
    image(studio)
    shot(studio, "parts_swap_hair")
    studio.session.camera_preset("front")
    trigger(find_button(panel.root, "Reset all parts"))
    assert studio.session.edit.part("upper_garment").visible


def test_lighting_preset_and_views_recolour_the_preview(studio) -> None:
    import dearpygui.dearpygui as dpg

    panel = studio.panels[4]
    studio.show_panel("Lighting")
    studio_img = image(studio)
    trigger(panel.items["preset"], "sunset")
    sunset = image(studio)
    fg = studio_img.std(axis=2) + sunset.std(axis=2) > 0.0
    assert (sunset[..., 0] - sunset[..., 2])[fg].mean() > (studio_img[..., 0] - studio_img[..., 2])[fg].mean()
    trigger(panel.items["intensity"], 0.3)
    dim = image(studio)
    assert dim.mean() < sunset.mean()
    shot(studio, "lighting_panel")
    assert dpg.get_value(panel.items["key_color"])[0] > 200  # the warm key light shows as a 0-255 colour
    trigger(panel.items["key_color"], [0.0, 0.0, 255.0, 255.0])
    assert studio.session.edit.lighting.key_color == (0.0, 0.0, 1.0)
    trigger(panel.items["view_mode"], "albedo")
    albedo = image(studio)
    assert np.abs(albedo - dim).mean() > 0.005
    trigger(panel.items["view_mode"], "full")
    trigger(panel.items["preset"], "studio")


def test_camera_keys_play_a_path(studio, tmp_path) -> None:
    panel = studio.panels[5]
    studio.show_panel("Camera path")
    trigger(panel.timeline, 0.0)
    studio.session.camera_preset("front")
    panel.add_key()
    trigger(panel.timeline, 2.0)
    studio.session.camera_preset("side")
    panel.add_key()
    trigger(panel.timeline, 1.0)
    assert 0.0 < studio.session.view.yaw_deg < 90.0
    image(studio)
    shot(studio, "camera_path_panel")
    panel.toggle_play()
    studio.run(max_frames=studio.frames + 3)
    assert panel.time > 1.0 or not panel.playing


def test_bad_files_show_a_message_and_keep_the_avatar(studio, tmp_path) -> None:
    import dearpygui.dearpygui as dpg

    before = studio.session.avatar
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00garbage")
    assert not studio.wait(studio.open_file(str(corrupt)))
    assert not studio.wait(studio.open_file(str(tmp_path / "missing.ply")))
    assert studio.session.avatar is before
    studio.show_panel("Avatar")
    image(studio)
    logging.getLogger("core.somewhere").warning("a warning from a lower layer")
    image(studio)
    texts = [dpg.get_value(t) for t in dpg.get_item_children(studio.console, 1)]
    assert any("could not open avatar" in t for t in texts)
    assert any("a warning from a lower layer" in t for t in texts)
    shot(studio, "bad_file_message")


def test_exports_write_ply_png_and_mp4(studio, tmp_path) -> None:
    from core.raster.ply import load_ply

    assert studio.wait(studio.export_ply(str(tmp_path / "a.ply")))
    assert load_ply(tmp_path / "a.ply").num == studio.shown.num
    assert studio.wait(studio.snapshot(str(tmp_path / "a.png")))
    assert (tmp_path / "a.png").stat().st_size > 1000
    assert studio.wait(studio.turntable(str(tmp_path / "t.mp4"), num_frames=4))
    assert (tmp_path / "t.mp4").stat().st_size > 1000
    from app.camera_path import CameraPath
    from app.state import OrbitView

    path = CameraPath().with_key(0.0, OrbitView()).with_key(0.1, OrbitView(yaw_deg=30.0))
    assert studio.wait(studio.render_camera_path(path, str(tmp_path / "path.mp4")))
    assert (tmp_path / "path.mp4").stat().st_size > 1000
    assert "wrote camera path video" in studio.session.messages[-1].text


def next_picture(studio):
    """The request the studio makes now and the picture the worker draws for it."""
    request = studio.request_preview()
    assert request is not None, "the change asked for no new picture"
    assert studio.worker.wait_idle()
    assert studio.show_preview()
    assert studio.shown.request is request
    return studio.shown


def test_dragging_draws_a_fast_low_resolution_preview_then_the_full_one(studio) -> None:
    import time

    studio.settle()
    studio.interactive_scale = 0.5
    try:
        studio.session.apply(studio.session.edit.with_part("skin", brightness=0.8), key="drag")
        assert next_picture(studio).request.scale == 0.5
        time.sleep(0.3)
        assert next_picture(studio).request.scale == 1.0
    finally:
        studio.interactive_scale = 1.0
        studio.session.undo()


def test_dragging_decodes_a_level_of_detail_then_the_full_avatar(studio) -> None:
    import time

    from app.model_avatar import untrained_model_avatar
    from app.session import PREVIEW_DETAIL

    before = studio.session.avatar
    studio.session.set_avatar(untrained_model_avatar("tiny"))
    studio.interactive_detail = 1
    try:
        studio.settle()
        full = studio.shown.num
        studio.session.apply(studio.session.edit.with_expression({"jawOpen": 0.6}), key="drag")
        draft = next_picture(studio)
        assert draft.request.detail == 1 and draft.num * 4 == full  # 1 of the tiny model's 4 per anchor
        time.sleep(0.3)
        settled = next_picture(studio)  # same scale (1.0) but full detail is drawn again
        assert settled.request.detail is None and settled.num == full
    finally:
        studio.interactive_detail = PREVIEW_DETAIL
        studio.session.set_avatar(before)
        studio.settle()


def test_capture_assistant_checks_photos_and_creates_an_avatar(studio, tmp_path) -> None:
    import cv2
    import dearpygui.dearpygui as dpg
    import skimage.data

    panel = next(p for p in studio.panels if p.title == "Create")
    studio.show_panel("Create")
    good, blurred, empty, junk = (tmp_path / n for n in ("person.png", "blurred.png", "empty.png", "junk.jpg"))
    rgb = skimage.data.astronaut()
    cv2.imwrite(str(good), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(blurred), cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (31, 31), 10))
    cv2.imwrite(str(empty), np.full((240, 160, 3), 128, np.uint8))
    junk.write_bytes(b"not an image")
    panel.add_photos([str(good), str(blurred), str(empty), str(junk)])
    checks = panel.assistant.checks
    assert [c.usable for c in checks] == [True, True, False]
    assert any("blurred" in p for p in checks[1].problems)
    assert any("could not be read" in m.text for m in studio.session.messages)
    summary = dpg.get_value(panel.summary)
    assert "2 usable" in summary and "back of the head" in summary
    panel.set_view(1, "back")
    assert "back of the head" not in dpg.get_value(panel.summary)
    image(studio)
    shot(studio, "create_panel")
    before = studio.session.avatar
    assert studio.wait(panel.create())
    assert studio.session.avatar is not before and studio.session.avatar.name == "from 2 photos"
    assert image(studio).std() > 0.02
    gallery_panel = studio.panels[0]
    gallery_panel.save_to_gallery("astronaut")
    assert studio.settle()
    assert "mine: astronaut.safetensors" in dpg.get_item_configuration(gallery_panel.list)["items"]
    assert studio.wait(studio.open_gallery("mine: astronaut.safetensors"))
    assert studio.session.avatar.name == "astronaut"


def test_default_avatar_is_the_shipped_trained_models_avatar_of_the_example():
    from app.avatar_source import default_avatar
    from app.model_avatar import DEFAULT_AVATAR_FILES, DEFAULT_MODEL_FILE, example_files

    if not DEFAULT_MODEL_FILE.is_file() or not example_files():
        pytest.skip("no trained model or examples installed")
    avatar = default_avatar()
    g = avatar.canonical()
    if DEFAULT_AVATAR_FILES[0].is_file():  # an example refined on its capture (bench/default_avatar_refine.py)
        from core.model.examples import load_example

        names = [load_example(f).name for f in example_files()]  # "studio-test #2", ...
        assert any(avatar.description.startswith(f"{n}:") for n in names), (avatar.description, names)
        assert "refined on its synthetic capture" in avatar.description
    else:
        assert "decoded by the trained base" in avatar.description  # base or base-pixel
    assert g.num == 131_072 and torch.isfinite(g.means).all()
    # standing person-sized: about 1.2-2.1 m tall
    height = float(g.means[:, 1].quantile(0.999) - g.means[:, 1].quantile(0.001))
    assert 1.2 < height < 2.1
