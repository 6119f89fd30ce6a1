"""`main.py create` and `main.py export` on the command line."""

from __future__ import annotations

import argparse

import torch

from app.export_cli import add_export_cli
from core.capture.cli import add_create_cli


def _runner(add, argv):
    p = argparse.ArgumentParser()
    run = add(p)
    return run(p.parse_args(argv))


def test_create_refuses_photos_without_a_person_and_writes_nothing(tmp_path, caplog):
    bad = tmp_path / "not_a_photo.png"
    bad.write_bytes(b"not an image")
    blank = tmp_path / "blank.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(blank), np.full((240, 180, 3), 200, np.uint8))
    out = tmp_path / "a.safetensors"
    assert _runner(add_create_cli, [str(bad), str(blank), "--out", str(out)]) == 2
    assert not out.exists()
    assert "none of the photos shows a person" in caplog.text


def test_export_writes_a_ply_of_a_saved_avatar_and_refuses_a_corrupt_one(tmp_path, caplog):
    from core.raster.ply import load_ply

    path = _tiny_avatar(tmp_path / "tiny.safetensors")
    assert _runner(add_export_cli, [str(path)]) == 0
    g = load_ply(tmp_path / "tiny.ply")
    assert g.num > 0 and torch.isfinite(g.means).all()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    assert _runner(add_export_cli, [str(bad), "--out", str(tmp_path / "bad.ply")]) == 2
    assert not (tmp_path / "bad.ply").exists()


def test_create_imports_no_studio_code(tmp_path):
    """`main.py create` runs on core alone: neither the studio (app), the preview (render) nor Dear PyGui loads."""
    import subprocess
    import sys
    from pathlib import Path

    import cv2
    import numpy as np

    root = Path(__file__).resolve().parents[1]
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 90, 3), 200, np.uint8))
    code = (
        "import sys, main\n"
        f"rc = main.main(['create', {str(blank)!r}, '--out', {str(tmp_path / 'a.safetensors')!r}])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('app', 'render', 'dearpygui', 'moderngl'))\n"
        "print('LOADED', bad, rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert "LOADED [] 2" in out.stdout, out.stdout + out.stderr


def test_render_draws_an_avatar_file_as_create_writes_it_like_its_exported_ply(tmp_path, caplog):
    """`main.py render AVATAR`: the same picture as rendering the .ply `export` writes of it; other files refused."""
    import numpy as np
    from PIL import Image

    from app.export_cli import add_render_cli

    avatar = _tiny_avatar(tmp_path / "me.safetensors")
    assert _runner(add_export_cli, [str(avatar), "--out", str(tmp_path / "me.ply")]) == 0
    size = ["--width", "64", "--height", "64"]
    assert _runner(add_render_cli, [str(avatar), "--out", str(tmp_path / "a.png"), *size]) == 0
    assert _runner(add_render_cli, [str(tmp_path / "me.ply"), "--out", str(tmp_path / "p.png"), *size]) == 0
    a, p = (np.asarray(Image.open(tmp_path / f)) for f in ("a.png", "p.png"))
    assert a.shape[:2] == (64, 64) and (a != 255).any(), "the avatar is drawn on the white background"
    np.testing.assert_array_equal(a, p)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo)
    checkpoint = tmp_path / "model.safetensors"  # a safetensors file that is not an avatar
    from core.io import save_tensors

    save_tensors(checkpoint, {"w": torch.zeros(2)}, {}, kind="lca-checkpoint")
    for bad, said in (
        (photo, "cannot open photo.png: give a 3DGS .ply, an avatar file as `python main.py create` writes it"),
        (checkpoint, "expected a lca_avatar file"),
        (tmp_path / "missing.safetensors", "no such file"),
    ):
        caplog.clear()
        assert _runner(add_render_cli, [str(bad), "--out", str(tmp_path / "b.png"), *size]) == 2
        assert said in caplog.text and not (tmp_path / "b.png").exists()


def _tiny_avatar(path):
    """An avatar file of the tiny model made from random crops (seed 0), saved at `path`; returns its path."""
    from core.model.avatar import Avatar
    from core.model.config import load_model_config
    from core.model.model import LCAModel
    from core.model.rig import rig_from_body_asset

    torch.manual_seed(0)
    cfg = load_model_config("tiny")
    model = LCAModel(cfg, rig_from_body_asset()).eval()
    body, face = torch.rand(1, 3, *cfg.encoder.body_crop), torch.rand(1, 3, *cfg.encoder.face_crop)
    return Avatar.create(model, body_crops=body, face_crops=face).save(path)
