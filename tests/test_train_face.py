"""The face loss: the targets' posed Gaussians rendered again through their head close-up cameras (one batched
call), scored like the body targets; it reaches the model, falls when trained, equals the per-target reference, is
off for data without close-ups, and the evaluations report a face PSNR only where close-ups exist."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from core.data.generate import plan_generation, run_generation
from core.data.loader import LoaderConfig, ShardDataset, collate, to_float_images
from core.data.synth import SynthConfig
from core.model.config import load_model_config
from core.model.model import LCAModel
from core.model.rig import rig_from_body_asset
from core.train.config import LossConfig, TrainConfig, load_train_config
from core.train.loop import train
from core.train.metrics import read_metrics
from core.train.step import TrainStep

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "train" / "smoke-tiny.yaml"
N = 24  # close-up side in the shards


@pytest.fixture(scope="module")
def face_shards(tmp_path_factory):
    """One wild clip and one studio capture (32 px frames) with 24 px head close-ups."""
    out = tmp_path_factory.mktemp("face-shards")
    cfg = SynthConfig(
        width=32, height=32, wild_frames=3, studio_poses=1, studio_cameras=(4, 4), studio_lights=0, detail=0.08,
        closeup_size=N,
    )  # fmt: skip
    plan = plan_generation(out, {"train": {"wild": 1, "studio": 1}}, world_seed=0, per_shard=1, config=cfg)
    run_generation(plan, workers=1, progress=False)
    return out


def _model() -> LCAModel:
    torch.manual_seed(0)
    return LCAModel(load_model_config("tiny"), rig_from_body_asset())


def _batch(root, closeup_size: int = N) -> dict:
    """A wild clip (exact supervision: its close-ups count) and a studio capture, two targets each."""
    cfg = LoaderConfig(num_refs=2, num_targets=2, crop_size=32, face_size=16, closeup_size=closeup_size)
    cfg = replace(cfg, wild_supervision="exact")
    wild = next(iter(ShardDataset(root, kind="wild", cfg=cfg, shuffle=False)))
    studio = next(iter(ShardDataset(root, kind="studio", cfg=cfg, shuffle=False)))
    return to_float_images(collate([wild, studio]))


def test_face_loss_is_finite_reaches_the_model_and_matches_the_reference(face_shards):
    model, batch = _model(), _batch(face_shards)
    losses = LossConfig(perceptual=0.0)
    step = TrainStep(model, losses, render_size=24, perceptual=None, closeup_size=20)
    out = step(batch)
    assert torch.isfinite(out.terms["loss_face"]) and out.terms["loss_face"] > 0
    assert out.face_pred.shape == (4, 20, 20, 3) and out.face_valid.tolist() == [1.0] * 4
    out.loss.backward()
    with_face = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    TrainStep(model, replace(losses, face=0.0), render_size=24, perceptual=None).forward(batch).loss.backward()
    without = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    moved = [n for n in with_face if not torch.allclose(with_face[n], without.get(n, torch.zeros(())), atol=1e-9)]
    assert any(n.startswith("canonical_head") for n in moved) and any(n.startswith("encoder") for n in moved)
    ref = TrainStep(model, losses, render_size=24, perceptual=None, closeup_size=20, per_target=True)(batch)
    torch.testing.assert_close(ref.terms["loss_face"], out.terms["loss_face"], rtol=1e-5, atol=1e-7)


def test_invalid_closeups_add_nothing(face_shards):
    """A target without a close-up (zeros, valid 0) leaves the face loss the mean over the others."""
    model, batch = _model(), _batch(face_shards)
    step = TrainStep(model, LossConfig(perceptual=0.0), render_size=24, perceptual=None).eval()
    with torch.no_grad():
        full = step(batch).terms["loss_face"]
        only_studio = {k: v[1:] for k, v in batch.items()}
        studio = step(only_studio).terms["loss_face"]
        batch["tgt_closeup_valid"][0] = 0.0
        batch["tgt_closeup_rgb"][0] = 0.0
        masked = step(batch).terms["loss_face"]
    torch.testing.assert_close(masked, studio, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(full, masked)


def test_a_short_run_lowers_the_face_loss(face_shards):
    model, batch = _model(), _batch(face_shards)
    step = TrainStep(model, LossConfig(perceptual=0.0), render_size=24, perceptual=None, closeup_size=20)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    faces = []
    for _ in range(8):
        out = step(batch)
        faces.append(float(out.terms["loss_face"]))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert faces[-1] < 0.9 * faces[0], faces


def _cfg(tmp_path, root, **over) -> TrainConfig:
    data = {"root": str(root), "render_size": 24, "closeup_render_size": 20, "synth_wild": 0, "synth_studio": 0}
    return load_train_config(
        SMOKE, {"out_dir": str(tmp_path / "runs"), "stage": "studio-only", "data": data, "eval_every": 1} | over
    )


def test_training_logs_the_face_loss_and_psnr_only_with_closeups(tmp_path, face_shards, shards):
    cfg = _cfg(tmp_path, face_shards, name="face", steps=2, ckpt_every=2)
    train(cfg, progress=False)
    rows = read_metrics(cfg.run_dir / "metrics.jsonl")
    trains, evals = [r for r in rows if r["kind"] == "train"], [r for r in rows if r["kind"] == "eval"]
    assert len(trains) == 2 and all(r["loss_face"] > 0 for r in trains)
    assert evals and all(0 < r["face_psnr"] < 60 for r in evals)
    assert list((cfg.run_dir / "samples" / "face").glob("*.png"))
    # data without close-ups (the session's tiny set) still trains: no face loss, no face PSNR
    old = _cfg(tmp_path, shards, name="plain", steps=1, ckpt_every=1)
    train(old, progress=False)
    rows = read_metrics(old.run_dir / "metrics.jsonl")
    assert all("loss_face" not in r and "face_psnr" not in r for r in rows)
    assert any(r["kind"] == "train" and r["loss"] > 0 for r in rows)
    # the face loss switched off: the close-ups are not even loaded for training (the held-out curve keeps them)
    off = _cfg(tmp_path, face_shards, name="off", steps=1, ckpt_every=1, loss={"face": 0.0})
    train(off, progress=False)
    rows = read_metrics(off.run_dir / "metrics.jsonl")
    assert all("loss_face" not in r for r in rows if r["kind"] == "train")
    assert all(r["face_psnr"] > 0 for r in rows if r["kind"] == "eval")


def test_eval_reports_face_psnr_only_for_sets_with_closeups(tmp_path, bench_root):
    from core.train.evaluate import evaluate

    model = _model().eval()
    kw = dict(count=1, resolution=32, detail=0.08, crop_size=64, face_size=32, progress=False)
    res = evaluate(model, tmp_path / "bench", closeup_size=N, benchmarks=("studio-test",), **kw)
    b = res["benchmarks"]["studio-test"]
    assert 0 < b["all"]["face"]["psnr"] < 60 and b["novel_pose"]["face"]["psnr"] > 0
    assert 0 < b["per_identity"][0]["face"]["psnr"] < 60
    plain = evaluate(model, bench_root, benchmarks=("studio-test",), **kw)["benchmarks"]["studio-test"]
    assert "face" not in plain["all"] and "face" not in plain["per_identity"][0] and plain["all"]["person"]["psnr"] > 0
