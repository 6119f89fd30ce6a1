"""`main.py eval --real DIR --refine N`: the avatar refined on a clip's reference frames only, scored beside the
feed-forward one on the same held-out frames, with per-frame values; frames with a fitted head large enough also
give head close-ups; the flag needs --real."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data.shards import Sample
from core.model.config import load_model_config
from core.model.model import LCAModel
from core.model.rig import rig_from_body_asset, toy_rig
from core.raster.types import Camera
from core.train.evaluate import real_footage as load_footage
from core.train.evaluate_real import (
    ROLE_RECONSTRUCTION,
    evaluate_real,
    format_real,
    held_out_roles,
    real_identity,
    render_on_black,
)
from core.train.refine_frames import frame_views, personalise_views

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model() -> LCAModel:
    torch.manual_seed(0)
    return LCAModel(load_model_config("tiny"), rig_from_body_asset()).eval()


def _cutout(sample: Sample, f: int) -> torch.Tensor:
    """[3, H, W] frame f's person on black, as refinement sees it."""
    rgb = sample.rgb[f, 0] * (sample.mask[f, 0][..., None] > 127)
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0


def test_refined_scores_beside_the_feed_forward_ones_from_reference_frames_only(tiny_model, real_footage, monkeypatch):
    import core.model.personalise as personalise_module

    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    real_personalise = personalise_module.personalise

    def spy(avatar, images, estimates, **kw):
        seen.append((images.detach().cpu().clone(), kw["masks"].detach().cpu().clone()))
        return real_personalise(avatar, images, estimates, **kw)

    monkeypatch.setattr(personalise_module, "personalise", spy)
    footage = load_footage(real_footage)
    res, tiles = evaluate_real(
        tiny_model, footage, crop_size=64, face_size=32, progress=False, refine_steps=2, refine_lr=1e-2
    )
    clip, photo = res["sources"]
    roles = held_out_roles(footage[0])
    refs = [int(f) for f in np.nonzero((roles == 0) | (roles == ROLE_RECONSTRUCTION))[0]]
    assert refs == [0, 1] and clip["refinement"]["frames"] == refs
    scored = clip["per_frame"]["frame"]
    assert scored == [3, 4] and not set(scored) & set(clip["refinement"]["frames"])
    # what personalise was given: the reference frames' cut-outs, never a scored frame's
    images, masks = seen[0]
    assert len(seen) == 2 and len(images) == len(refs)  # 48 px frames: heads far below 40 px, no close-up
    for f, image, mask in zip(refs, images, masks, strict=True):
        torch.testing.assert_close(image, _cutout(footage[0], f))
        torch.testing.assert_close(mask, torch.from_numpy(footage[0].mask[f, 0]).float() / 255.0)
    for f in scored:
        assert all(not torch.allclose(image, _cutout(footage[0], f)) for image in images)
    for row in (clip, photo):
        for kind in ("avatar", "refined", "flat", "wrong_identity"):
            assert math.isfinite(row[kind]["psnr"]) and 0 <= row[kind]["iou"] <= 1, (row["source"], kind)
            assert len(row["per_frame"][kind]["psnr"]) == row["targets"]
        assert row["refinement"]["steps"] == 2 and math.isfinite(row["refinement"]["loss_last"])
    assert clip["protocol"] == "cross-frame" and photo["protocol"].startswith("reconstruction")
    assert res["summary"]["held_out"]["refined"]["psnr"] == clip["refined"]["psnr"]
    assert res["summary"]["reconstruction"]["refined"]["psnr"] == photo["refined"]["psnr"]
    assert clip["refined"]["psnr"] != clip["avatar"]["psnr"]  # the refined avatar is another avatar
    assert all("refined" in t for t in tiles)
    json.dumps(res, allow_nan=False)  # per-frame values that are not numbers are null
    text = format_real(res)
    assert "refined" in text.splitlines()[0] and "mean of 1 source(s)" in text
    plain, _ = evaluate_real(tiny_model, footage, crop_size=64, face_size=32, progress=False)
    assert "refined" not in plain["sources"][0] and "refined" not in format_real(plain)
    assert plain["sources"][0]["avatar"] == clip["avatar"]  # the feed-forward score is unchanged by refinement


def test_a_few_steps_lower_the_loss_on_the_reference_frames(tiny_model, real_footage):
    clip = load_footage(real_footage)[0]
    refs = np.array([0, 1])
    dev = torch.device("cpu")
    state = real_identity(tiny_model, clip, refs, crop_size=64, face_size=32, device=dev)
    views = frame_views(clip, refs)

    def loss(s) -> float:  # mean L1 of the render on black against the cut-out person, over the references
        return float(
            np.mean(
                [
                    np.abs(
                        render_on_black(tiny_model, s, clip, int(f), dev)[0] - views.images[k].permute(1, 2, 0).numpy()
                    ).mean()
                    for k, f in enumerate(refs)
                ]
            )  # fmt: skip
        )

    refined, losses, _ = personalise_views(tiny_model, state, views, steps=8, device=dev, lr=2e-2, acap_weight=0.0)
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
    before, after = loss(state), loss(refined)
    assert after < before - 1e-3, (before, after)


def test_frames_with_a_large_enough_head_are_followed_by_their_close_up():
    rig = toy_rig()
    size = 256  # the toy head is ~50 px across at 2.5 m (close-ups need >= 40)
    cams = [Camera.look_at(e, (0.0, 1.2, 0.0), width=size, height=size) for e in [(0.0, 1.4, 2.5), (0.0, 1.4, 30.0)]]
    p = rig.neutral_params(2)
    arrays = {
        "K": torch.stack([c.K for c in cams])[:, None].numpy(),
        "T_cam_world": torch.stack([c.T_cam_world for c in cams])[:, None].numpy(),
        "est_shape": p.shape[0].numpy(),
        "est_pose": p.rotations.numpy(),
        "est_expression": p.expression.numpy(),
        "est_gaze": p.gaze.numpy(),
        "est_translation": p.translation.numpy(),
        "valid_box": np.array([[[0, 0, size, size]], [[0, 0, size, size * 3 // 4]]], np.float32),  # frame 1 padded
    }
    rgb = np.full((2, 1, size, size, 3), 128, np.uint8)
    mask = np.full((2, 1, size, size), 255, np.uint8)
    sample = Sample(key="s", meta={"kind": "video"}, arrays=arrays, rgb=rgb, mask=mask)
    views = frame_views(sample, np.array([0, 1]), head_rig=rig)
    assert views.frames == (0, 0, 1) and views.closeups == 1 and views.images.shape == (3, 3, size, size)
    assert views.masks.shape == (3, size, size) and float(views.masks[:2].min()) == 1.0  # the person fills frame 0
    assert views.valid.shape == (3, size, size) and bool(views.valid[:2].all())  # frame 0 and its close-up
    assert bool(views.valid[2, : size * 3 // 4].all()) and not bool(views.valid[2, size * 3 // 4 :].any())
    assert "frame 1: no head close-up" in views.notes[0] and "px across" in views.notes[0]
    assert float(views.estimates[1].camera.K[1, 1]) > 2 * float(views.estimates[0].camera.K[1, 1])  # zoomed in
    assert len(frame_views(sample, np.array([0, 1]))) == 2  # without a rig: body views only


def _eval(checkpoint: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "main.py"), "eval", str(checkpoint), *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_refine_without_real_footage_is_a_message(tmp_path):
    res = _eval(ROOT / "assets" / "default_model.safetensors", "--refine", "3", "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and "--refine" in res.stderr and "--real" in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()


def test_eval_refine_end_to_end(tmp_path, real_footage, tiny_model):
    from core.config import to_dict
    from core.train.checkpoint import save_checkpoint

    config = {"model": to_dict(tiny_model.cfg), "train": {"data": {"crop_size": 64, "face_size": 32}}}
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", model=tiny_model, step=1, config=config)
    res = _eval(ckpt, "--real", str(real_footage), "--refine", "1", "--sets", "none", "--device", "cpu", "--out",
                str(tmp_path / "out"))  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert out["benchmarks"] == {} and out["real"]["refinement"]["steps"] == 1
    clip = out["real"]["sources"][0]
    assert math.isfinite(clip["refined"]["psnr"]) and clip["refinement"]["frames"] == [0, 1]
    assert "refined" in res.stdout and (tmp_path / "out" / "eval_sheet_real.png").stat().st_size > 1000
