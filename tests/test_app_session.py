"""Studio state without a window: undo/redo, presets, clips, camera paths, part edits, lighting, settings."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from app.camera_path import CameraPath
from app.history import History
from app.presets import load_clips, load_expression_presets, load_pose_presets, pose_from_rotations
from app.session import Session
from app.settings import Settings
from app.state import EditState, OrbitView
from core.raster.lighting import LightingEdit, build_lighting, load_environment_presets
from core.raster.parts import apply_part_edits
from core.raster.types import PART_NAMES, Gaussians
from render.scenes import avatar_like_scene


def test_history_merges_one_slider_drag_into_one_undo_step() -> None:
    clock = iter([0.0, 0.1, 0.2, 5.0]).__next__
    h: History[int] = History(clock=clock)
    h.record(0, "a")
    h.record(1, "a")  # same control within the merge window: no new step
    h.record(2, "a")
    h.record(3, "b")
    assert h.undo(4) == 3
    assert h.undo(3) == 0
    assert h.undo(0) is None
    assert h.redo(0) == 3


def test_session_undo_redo_restores_edits_and_failed_open_keeps_avatar(tmp_path) -> None:
    from app.avatar_source import example_figure

    s = Session(example_figure(500))
    before = s.avatar
    s.apply(s.edit.with_part("hair", visible=False), key="x")
    s.apply(replace(s.edit, view_mode="parts"))
    assert s.undo() and s.edit.view_mode == "full" and not s.edit.part("hair").visible
    assert s.undo() and s.edit.part("hair").visible
    assert s.redo() and not s.edit.part("hair").visible
    bad = tmp_path / "broken.ply"
    bad.write_bytes(b"not a ply at all")
    assert not s.open_avatar(bad)
    assert s.avatar is before
    assert "could not open avatar" in s.messages[-1].text


def test_part_edits_hide_and_recolour_only_the_chosen_part() -> None:
    g = avatar_like_scene(2000, sh_degree=0)
    edit = EditState().with_part("hair", visible=False).with_part("upper_garment", hue=0.33)
    out = apply_part_edits(g, edit.parts)
    hair = PART_NAMES.index("hair")
    top = PART_NAMES.index("upper_garment")
    assert int((out.parts == hair).sum()) == 0
    assert out.num == g.num - int((g.parts == hair).sum())
    keep = g.parts != hair
    same = out.parts != top
    torch.testing.assert_close(out.sh[same], g.sh[keep][same])
    assert (out.sh[~same] - g.sh[keep][~same]).abs().max() > 0.1


def test_presets_load_and_unknown_joints_are_dropped() -> None:
    exprs = load_expression_presets()
    assert {"neutral", "smile", "surprise", "anger", "sad", "blink"} <= set(exprs)
    assert any(k.startswith("viseme_") for k in exprs)
    poses = load_pose_presets()
    assert {"T", "A", "standing", "sitting", "waving", "walking", "fist", "point"} <= set(poses)
    pose = pose_from_rotations(poses["waving"], ("upperarm01.R", "lowerarm01.R"))
    assert {name for name, _ in pose.rotations} == {"upperarm01.R", "lowerarm01.R"}


def test_motion_clip_loops_and_interpolates_between_keys() -> None:
    wave = load_clips()["wave"]
    a = wave.sample(0.0)["lowerarm01.R"][2]
    mid = wave.sample(0.2)["lowerarm01.R"][2]
    b = wave.sample(0.4)["lowerarm01.R"][2]
    assert min(a, b) < mid < max(a, b)
    assert wave.sample(wave.duration)["lowerarm01.R"] == pytest.approx(wave.sample(0.0)["lowerarm01.R"])


def test_camera_path_holds_ends_and_takes_the_short_way_round() -> None:
    path = CameraPath().with_key(0.0, OrbitView(yaw_deg=350.0)).with_key(2.0, OrbitView(yaw_deg=10.0))
    assert path.sample(-1.0).yaw_deg == 350.0
    assert path.sample(5.0).yaw_deg == 10.0
    assert path.sample(1.0).yaw_deg % 360.0 == pytest.approx(0.0, abs=1e-6)
    assert len(path.frames(10)) == 21
    with pytest.raises(ValueError, match="no keys"):
        CameraPath().sample(0.0)


def test_lighting_intensity_and_temperature_change_the_environment() -> None:
    presets = load_environment_presets()
    assert {"studio", "outdoor_sun", "sunset", "indoor_warm", "night"} <= set(presets)
    base = build_lighting(presets["studio"].as_edit(), presets)
    bright = build_lighting(replace(presets["studio"].as_edit(), intensity=2.0), presets)
    warm = build_lighting(replace(presets["studio"].as_edit(), temperature_k=2500.0), presets)
    assert bright.env_sh[0].sum() == pytest.approx(2 * base.env_sh[0].sum())
    assert warm.env_sh[0][0] > warm.env_sh[0][2]  # redder than blue
    with pytest.raises(ValueError, match="unknown lighting preset"):
        build_lighting(LightingEdit(preset="moon"), presets)


def test_settings_round_trip_camera_and_lighting(tmp_path) -> None:
    from app.avatar_source import example_figure

    s = Session(example_figure(300))
    s.set_view(OrbitView(yaw_deg=42.0, distance=2.0))
    s.apply(replace(s.edit, lighting=LightingEdit(preset="sunset", intensity=1.5)))
    path = Settings().save_from(s, tmp_path / "settings.json")
    loaded = Settings.load(path)
    assert loaded.orbit_view().yaw_deg == 42.0
    assert loaded.lighting_edit().preset == "sunset"
    (tmp_path / "bad.json").write_text("{not json")
    assert Settings.load(tmp_path / "bad.json") == Settings()


def test_gaussians_are_decoded_only_when_the_edit_changes() -> None:
    from app.avatar_source import example_figure

    s = Session(example_figure(300))
    g1 = s.gaussians()
    assert s.gaussians() is g1
    s.apply(s.edit.with_part("skin", brightness=0.5))
    g2 = s.gaussians()
    assert g2 is not g1 and isinstance(g2, Gaussians)


@pytest.fixture(scope="module")
def tiny_avatar_file(tmp_path_factory):
    from app.model_avatar import untrained_model_avatar

    path = tmp_path_factory.mktemp("avatars") / "tiny.safetensors"
    untrained_model_avatar("tiny").save(path)
    return path


def test_the_default_prefers_a_saved_default_avatar_and_shows_its_description(tmp_path, monkeypatch) -> None:
    import app.model_avatar as ma

    path = tmp_path / "default_avatar.safetensors"
    ma.untrained_model_avatar("tiny").avatar.save(path, half=True, description="example refined on its capture")
    monkeypatch.setattr(ma, "DEFAULT_AVATAR_FILES", (path,))
    monkeypatch.setattr(ma, "example_avatar", lambda *a, **k: pytest.fail("the saved default avatar was passed over"))
    avatar = ma.default_model_avatar()
    assert avatar.name == "default_avatar" and avatar.description == "example refined on its capture"


def test_the_gallery_lists_the_default_avatar_first_and_opens_it(tmp_path, monkeypatch) -> None:
    import app.model_avatar as ma
    from app.gallery import bundled_examples

    monkeypatch.setattr(ma, "DEFAULT_AVATAR_FILES", (tmp_path / "missing.safetensors",))
    assert "default avatar" not in bundled_examples()
    path = tmp_path / "default_avatar.safetensors"
    ma.untrained_model_avatar("tiny").avatar.save(path, description="example refined on its capture")
    monkeypatch.setattr(ma, "DEFAULT_AVATAR_FILES", (path,))
    entries = bundled_examples()
    assert list(entries)[0] == "default avatar"  # the list's first pick is what the studio opened
    assert entries["default avatar"]().description == "example refined on its capture"


def test_model_avatar_file_opens_and_drives_with_every_control(tiny_avatar_file) -> None:
    s = Session(__import__("app.avatar_source", fromlist=["example_figure"]).example_figure(300))
    assert s.open_avatar(tiny_avatar_file)
    rig = s.avatar.controls
    assert "jawOpen" in rig.expression_names and "upperarm01.L" in rig.joint_names
    rest = s.gaussians().means.clone()
    s.apply(replace(s.edit, pose=s.edit.pose.with_rotation("upperarm01.L", (0.0, 0.0, 60.0))))
    assert (s.gaussians().means - rest).norm(dim=-1).max() > 0.05
    s.apply(s.edit.with_part("skin", visible=False))
    assert s.gaussians().num < rest.shape[0]


def test_shading_view_of_a_model_avatar_shows_the_lighting_not_the_albedo(tiny_avatar_file) -> None:
    s = Session(__import__("app.avatar_source", fromlist=["example_figure"]).example_figure(300))
    assert s.open_avatar(tiny_avatar_file)

    def colours(edit: EditState) -> torch.Tensor:
        s.apply(edit)
        return s.gaussians().sh[:, 0].clone()

    full = colours(EditState())
    shading = colours(replace(EditState(), view_mode="shading"))
    assert (full - shading).abs().max() > 0.05, "the shading view looks like the full view"
    other = replace(EditState().lighting, preset="sunset", rotation_deg=120.0, key_intensity=0.9)
    relit = colours(EditState(view_mode="shading", lighting=other))
    assert (relit - shading).abs().max() > 0.05, "the shading view does not follow the lighting"
    albedo = colours(EditState(view_mode="albedo"))
    assert torch.equal(albedo, colours(EditState(view_mode="albedo", lighting=other))), "albedo ignores lighting"


def test_wrong_version_or_corrupt_avatar_files_keep_the_current_avatar(tiny_avatar_file, tmp_path) -> None:
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from app.avatar_source import example_figure

    s = Session(example_figure(300))
    before = s.avatar
    with safe_open(str(tiny_avatar_file), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
        meta = f.metadata()
    key = next(k for k, v in meta.items() if v.startswith("{"))
    header = json.loads(meta[key])
    header["version"] = 99
    save_file(tensors, str(tmp_path / "future.safetensors"), metadata={**meta, key: json.dumps(header)})
    assert not s.open_avatar(tmp_path / "future.safetensors")
    assert "version" in s.messages[-1].text
    (tmp_path / "cut.safetensors").write_bytes(tiny_avatar_file.read_bytes()[:1000])
    assert not s.open_avatar(tmp_path / "cut.safetensors")
    assert s.avatar is before


def test_start_restores_the_last_avatar_camera_and_lighting(tmp_path) -> None:
    from app.startup import open_session

    settings = Settings(last_avatar="gallery:example figure")
    settings.view = {**settings.view, "yaw_deg": 33.0}
    settings.lighting = {**settings.lighting, "preset": "night"}
    s = open_session(None, None, settings)
    assert s.avatar.name.startswith("example figure")
    assert s.view.yaw_deg == 33.0 and s.edit.lighting.preset == "night"
    assert not s.history.can_undo


def test_session_decodes_fewer_gaussians_for_a_preview_detail_only_on_model_avatars(tiny_avatar_file) -> None:
    static = __import__("app.avatar_source", fromlist=["example_figure"]).example_figure(300)
    s = Session(static)
    assert s.gaussians(detail=1).num == 300  # a fixed set of splats has no levels of detail
    assert s.open_avatar(tiny_avatar_file)
    full = s.gaussians()
    K = s.avatar.avatar.gaussians_per_anchor
    preview = s.gaussians(detail=1)
    assert preview.num * K == full.num
    assert s.gaussians(detail=1) is preview  # cached while neither the edit nor the detail changes
    assert s.gaussians().num == full.num  # back to every Gaussian


def test_decode_threads_use_both_cores_of_a_small_machine_and_half_of_a_large_one() -> None:
    from app.session import decode_threads

    assert decode_threads(1) == 1 and decode_threads(2) == 2 and decode_threads(4) == 2
    assert decode_threads(8) == 4 and decode_threads(64) == 4
