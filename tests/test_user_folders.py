"""Nothing lands in the repository or the working directory unless asked: the user's data and cache folders."""

from core import paths
from core.capture.cli import default_avatar_path
from render.viewer import ViewState, screenshot_path


def test_user_folders_follow_the_platform_and_the_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("LCA_DATA_DIR", raising=False)
    monkeypatch.delenv("LCA_CACHE_DIR", raising=False)
    monkeypatch.setattr(paths.sys, "platform", "linux")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert paths.user_data_dir("x") == tmp_path / "home" / ".local" / "share" / "lca-studio" / "x"
    assert paths.user_cache_dir() == tmp_path / "home" / ".cache" / "lca-studio"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert paths.user_data_dir() == tmp_path / "xdg" / "lca-studio"
    monkeypatch.setenv("LCA_DATA_DIR", str(tmp_path / "mine"))
    assert paths.user_data_dir("shots").is_dir() and paths.user_data_dir("shots") == tmp_path / "mine" / "shots"


def test_viewer_screenshots_and_created_avatars_go_to_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LCA_DATA_DIR", str(tmp_path))
    assert ViewState().screenshot_dir is None
    shot = screenshot_path(None, 3)
    assert shot.parent == tmp_path / "screenshots" and shot.name.endswith("_3.png")
    assert screenshot_path(tmp_path / "given", 1).parent == tmp_path / "given"
    assert default_avatar_path(["photos/me.jpg"]) == tmp_path / "avatars" / "me.safetensors"


def test_studio_synthetic_data_is_not_generated_into_the_repository(tmp_path, monkeypatch):
    from core.train.runs import ROOT, SynthData

    monkeypatch.setenv("LCA_DATA_DIR", str(tmp_path))
    folder = SynthData(identities=2, frames=4).folder()
    assert folder.parent == tmp_path / "data" and ROOT not in folder.parents
