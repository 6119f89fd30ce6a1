"""The training loop end to end on a tiny synthetic data set: runs, logs, checkpoints, resumes exactly, and
keeps two gloo processes in sync."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.config import ConfigError
from core.train.checkpoint import read_checkpoint_meta
from core.train.config import TrainConfig, load_train_config
from core.train.loop import train
from core.train.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "train" / "smoke-tiny.yaml"


def _cfg(tmp_path: Path, shards: Path, **over) -> TrainConfig:
    data = {"root": str(shards), "render_size": 32, "synth_wild": 0, "synth_studio": 0}
    return load_train_config(SMOKE, {"out_dir": str(tmp_path / "runs"), "data": data, **over})


def test_training_logs_checkpoints_and_samples(tmp_path, shards):
    cfg = _cfg(tmp_path, shards, steps=3, ckpt_every=3)
    final = train(cfg, progress=False)
    run = cfg.run_dir
    rows = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert all(r["loss"] > 0 for r in rows) and {"l1", "ssim", "mask", "acap"} <= set(rows[0])
    assert final["loss"] == rows[-1]["loss"]
    assert read_checkpoint_meta(run / "last.safetensors")["step"] == 3
    assert (run / "config.yaml").exists() and list((run / "samples").glob("*.png"))


def test_resumed_run_continues_the_same_loss_curve(tmp_path, shards):
    straight = _cfg(tmp_path, shards, name="straight", steps=4, ckpt_every=2)
    train(straight, progress=False)
    split = _cfg(tmp_path, shards, name="split", steps=2, ckpt_every=2)
    train(split, progress=False)
    resumed = _cfg(tmp_path, shards, name="split", steps=4, ckpt_every=2)
    train(resumed, progress=False)
    a = [r["loss"] for r in read_metrics(straight.run_dir / "metrics.jsonl") if r["kind"] == "train"]
    b = [r["loss"] for r in read_metrics(resumed.run_dir / "metrics.jsonl") if r["kind"] == "train"]
    assert len(a) == len(b) == 4
    assert b == pytest.approx(a, rel=1e-4)


def test_a_run_started_over_sets_the_earlier_one_aside(tmp_path, shards):
    first = _cfg(tmp_path, shards, name="again", steps=3, ckpt_every=3)
    train(first, progress=False)
    run = first.run_dir
    (run / "log.txt").write_text("launcher log\n")  # the studio's launcher writes these before training starts
    (run / "pid").write_text("1")
    again = _cfg(tmp_path, shards, name="again", steps=2, ckpt_every=2)
    train(again, resume=False, progress=False)  # main.py train --fresh
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == [0, 1]  # one clean curve, not the old one with the new one appended
    assert read_checkpoint_meta(run / "last.safetensors")["step"] == 2
    (old,) = (run / "previous").iterdir()
    assert [r["step"] for r in read_metrics(old / "metrics.jsonl") if r["kind"] == "train"] == [0, 1, 2]
    assert read_checkpoint_meta(old / "last.safetensors")["step"] == 3 and (old / "config.yaml").exists()
    assert (run / "log.txt").read_text() == "launcher log\n" and (run / "pid").exists()
    train(_cfg(tmp_path, shards, name="again", steps=4, ckpt_every=2), progress=False)  # a resume moves nothing
    assert len(list((run / "previous").iterdir())) == 1
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"] == [0, 1, 2, 3]


def test_bad_configs_are_rejected_with_the_field_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown key.*'optim.lrr'"):
        load_train_config(SMOKE, {"optim": {"lrr": 1}})
    with pytest.raises(ConfigError, match="optim.llrd_gamma"):
        load_train_config(SMOKE, {"optim": {"llrd_gamma": 1.5}})
    with pytest.raises(ConfigError, match="init_from"):
        load_train_config(SMOKE, {"stage": "posttrain"})


def test_two_gloo_processes_stay_in_sync(tmp_path, shards):
    out = tmp_path / "runs"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(ROOT / "main.py"), "train", str(SMOKE), "--no-progress", "--set",
        f"out_dir={out}", f"data.root={shards}", "data.render_size=32", "steps=2", "name=ddp",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    sums = [json.loads((out / "ddp" / f"rank{r}.json").read_text())["param_abs_sum"] for r in range(2)]
    assert sums[0] == pytest.approx(sums[1], rel=1e-6)
    assert read_checkpoint_meta(out / "ddp" / "last.safetensors")["step"] == 2


def test_eval_reports_metrics_and_writes_a_sheet_for_an_exported_model(tmp_path, shards, bench_root, real_footage):
    from core.train.evaluate import evaluate
    from core.train.export import export_model, model_from_checkpoint

    cfg = _cfg(tmp_path, shards, name="ev", steps=1, ckpt_every=1)
    train(cfg, progress=False)
    shipped = export_model(cfg.run_dir / "last.safetensors", tmp_path / "model.safetensors")
    assert shipped.stat().st_size < (cfg.run_dir / "last.safetensors").stat().st_size / 2  # fp16, no optimiser
    model, meta = model_from_checkpoint(shipped)
    assert meta["step"] == 1 and next(model.parameters()).dtype.is_floating_point
    real = real_footage
    res = evaluate(
        model, bench_root, count=1, resolution=32, detail=0.08, crop_size=64, face_size=32,
        out_json=tmp_path / "eval.json", sheet=tmp_path / "sheet.png", progress=False, real=real,
    )  # fmt: skip
    for name in ("wild-test", "studio-test"):
        b = res["benchmarks"][name]
        assert b["identities"] == 1 and b["novel_view"]["count"] > 0 and b["novel_pose"]["count"] > 0
        for region in ("person", "frame"):  # person-only is the headline, the whole frame stays beside it
            m = b["all"][region]
            assert 0 < m["psnr"] < 60 and -1 <= m["ssim"] <= 1 and 0 <= m["l1"] <= 1
        assert len(b["per_identity"]) == 1 and b["per_identity"][0]["person"].keys() == b["all"]["person"].keys()
    # the 5-frame clip: 2 references in its first half second, 2 targets >= 1 s later; the photo: on itself
    clip, photo = res["real"]["sources"]
    assert clip["protocol"] == "cross-frame" and clip["references"] == 2 and clip["targets"] == 2
    assert clip["min_gap_s"] >= 1.0 and photo["protocol"].startswith("reconstruction")
    for row in (clip, photo):  # every score comes with its controls
        assert 0 < row["avatar"]["psnr"] < 60 and 0 <= row["avatar"]["iou"] <= 1
        assert row["flat"]["iou"] == 1.0 and row["wrong_identity"]["psnr"] > 0
    assert set(res["real"]["summary"]) == {"held_out", "reconstruction"}
    assert json.loads((tmp_path / "eval.json").read_text())["benchmarks"].keys() == res["benchmarks"].keys()
    assert (tmp_path / "sheet.png").stat().st_size > 1000 and (tmp_path / "sheet_real.png").stat().st_size > 1000
    with pytest.raises(FileNotFoundError, match="prepare video"):
        evaluate(model, bench_root, count=1, resolution=32, real=bench_root, progress=False)


def test_sigterm_checkpoints_and_stops_and_the_run_resumes(tmp_path, shards):
    import signal
    import time

    out = tmp_path / "runs"
    args = [f"out_dir={out}", f"data.root={shards}", "data.render_size=32", "name=paused", "ckpt_every=1000"]
    cmd = [sys.executable, str(ROOT / "main.py"), "train", str(SMOKE), "--no-progress", "--set", *args]
    proc = subprocess.Popen(
        [*cmd, "steps=1000"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    metrics = out / "paused" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and len(read_metrics(metrics)) < 2:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert "stopped" in last and "finished" not in last and "resume" in last, last
    rows = read_metrics(metrics)
    paused = [r for r in rows if r["kind"] == "paused"]
    assert len(paused) == 1
    step = read_checkpoint_meta(out / "paused" / "last.safetensors")["step"]
    assert step == paused[0]["step"] and 2 <= step < 1000
    res = subprocess.run([*cmd, f"steps={step + 1}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert read_checkpoint_meta(out / "paused" / "last.safetensors")["step"] == step + 1
    last = res.stderr.strip().splitlines()[-1]
    assert "finished" in last and f"step {step + 1}/{step + 1}" in last and "{}" not in last, last


def test_personalised_baseline_refines_the_feed_forward_identity_and_is_evaluated(tmp_path, bench_root):
    from core.data.benchmarks import load_benchmark, write_benchmark
    from core.data.synth import SynthConfig
    from core.model.config import load_model_config
    from core.model.model import LCAModel
    from core.model.rig import rig_from_body_asset
    from core.train.evaluate import evaluate_state, sample_identity
    from core.train.refine_frames import personalise_sample

    torch.manual_seed(0)
    model = LCAModel(load_model_config("tiny"), rig_from_body_asset()).eval()
    cfg = SynthConfig(width=32, height=32, detail=0.08)
    sample = load_benchmark(write_benchmark(bench_root, "studio-test", 1, cfg)[0])[0]
    dev = torch.device("cpu")
    state = sample_identity(model, sample, crop_size=64, face_size=32, device=dev)
    refined, losses = personalise_sample(model, state, sample, steps=4, device=dev)
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    assert not torch.equal(refined.canonical.albedo, state.canonical.albedo)  # the canonical Gaussians moved
    assert torch.equal(refined.anchors, state.anchors)  # the body is kept
    ff, pers = evaluate_state(model, state, sample, device=dev), evaluate_state(model, refined, sample, device=dev)
    assert len(ff["person_psnr"]) == len(pers["person_psnr"]) > 0 and ff["person_psnr"] != pers["person_psnr"]


def test_the_independent_per_subject_baseline_starts_from_the_template_and_learns_the_photos(tmp_path, bench_root):
    """Finding (4)'s baseline: Gaussians optimised from the body template on the reference photos, with no
    feed-forward network; its loss falls and its avatar does not depend on the model's learnt weights."""
    from core.data.benchmarks import load_benchmark, write_benchmark
    from core.data.synth import SynthConfig
    from core.model.config import load_model_config
    from core.model.model import LCAModel
    from core.model.rig import rig_from_body_asset
    from core.train.evaluate import evaluate_state, template_model, template_state
    from core.train.refine_frames import personalise_sample

    torch.manual_seed(0)
    model = LCAModel(load_model_config("tiny"), rig_from_body_asset()).eval()
    sample = load_benchmark(write_benchmark(bench_root, "studio-test", 1, SynthConfig(32, 32, detail=0.08))[0])[0]
    dev = torch.device("cpu")
    template = template_model(model)
    start = template_state(model, template, sample, device=dev)
    assert torch.allclose(start.canonical.albedo, torch.full_like(start.canonical.albedo, 0.5))  # grey, untrained
    assert start.canonical.offsets.abs().max() == 0
    with torch.no_grad():  # another network's weights give the same starting point
        for p in model.parameters():
            p.add_(1.0)
    torch.testing.assert_close(
        template_state(model, template, sample, device=dev).canonical.albedo, start.canonical.albedo
    )
    fitted, losses = personalise_sample(template, start, sample, steps=12, device=dev, lr=2e-2, acap_weight=0.0)
    assert losses[-1] < losses[0]
    res = evaluate_state(template, fitted, sample, device=dev)
    assert len(res["person_psnr"]) > 0 and all(0 < v < 80 for v in res["person_psnr"])


def test_a_corrupt_checkpoint_or_a_data_set_too_small_is_a_message_not_a_traceback(tmp_path, shards):
    out = tmp_path / "runs"
    (out / "bad").mkdir(parents=True)
    junk = b"\x10\x00\x00\x00\x00\x00\x00\x00{not json" + bytes(64)
    (out / "bad" / "last.safetensors").write_bytes(junk)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, str(ROOT / "main.py"), "train", str(SMOKE), "--no-progress", "--set",
            f"out_dir={out}", f"data.root={shards}", "data.render_size=32", "steps=1"]  # fmt: skip
    for sets, expect in (
        (["name=bad"], "last.safetensors"),
        (["name=big", "global_batch=64"], "no full batch of 64 examples"),
    ):
        res = subprocess.run([*base, *sets], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 2 and expect in res.stderr, res.stderr[-2000:]
        assert "Traceback" not in res.stderr, res.stderr[-2000:]
    assert (out / "bad" / "last.safetensors").read_bytes() == junk  # left as it was, for the user to inspect


def test_eval_with_a_folder_without_ingested_footage_is_a_message(tmp_path):
    (tmp_path / "empty").mkdir()
    res = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "eval", str(ROOT / "assets" / "default_model.safetensors"),
         "--real", str(tmp_path / "empty"), "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 2 and "prepare video" in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and not (tmp_path / "out" / "eval.json").exists()


def test_the_last_line_says_how_a_run_ended(tmp_path, shards, monkeypatch):
    from core.train import loop

    cfg = _cfg(tmp_path, shards, name="ends", steps=2, ckpt_every=2)
    done = train(cfg, progress=False)
    line = done.summary()
    assert done.status == "finished" and line.startswith("finished") and "step 2/2" in line and "loss" in line
    assert "{}" not in line
    again = train(cfg, progress=False)  # nothing left to do: neither "finished" nor an empty dict
    assert again.status == "complete" and "finished" not in again.summary() and "{}" not in again.summary()

    class StopNow:  # as if the studio's Pause (SIGTERM) arrived before the first step
        requested = True

        def restore(self) -> None:
            pass

    monkeypatch.setattr(loop, "_StopRequest", StopNow)
    stopped = train(_cfg(tmp_path, shards, name="stops", steps=3, ckpt_every=3), progress=False)
    assert stopped.status == "stopped" and stopped.step == 0
    assert "finished" not in stopped.summary() and "resume" in stopped.summary()


def test_smoke_config_generates_small_samples():
    from core.train.loop import synth_config

    cfg = load_train_config(SMOKE).data
    synth = synth_config(cfg)
    # a handful of small renders per sample: the smoke run's data takes seconds, not minutes, on 2 cores
    assert synth.wild_frames <= 4 and synth.studio_cameras == (4, 4) and synth.studio_poses == 1
    assert synth.studio_lights == 0 and synth.detail <= 0.1 and cfg.synth_wild + cfg.synth_studio == 4


def test_a_step_with_a_non_finite_loss_is_skipped_and_training_goes_on(tmp_path, shards, monkeypatch):
    """The loss and the gradients are checked together after the backward pass (one wait per step): after a NaN
    loss the optimiser does not step, a skip is logged, and the next step trains."""
    from core.train import step as step_module

    forward = step_module.TrainStep.forward
    calls = []

    def nan_on_the_second_step(self, batch):
        out = forward(self, batch)
        calls.append(1)
        return out if len(calls) != 2 else type(out)(**{**out.__dict__, "loss": out.loss * float("nan")})

    from core.train import loop

    build = loop.build_optimizer
    updates = []

    def counted_optimizer(cfg, model):
        opt = build(cfg, model)
        opt.register_step_post_hook(lambda *_: updates.append(1))
        return opt

    monkeypatch.setattr(step_module.TrainStep, "forward", nan_on_the_second_step)
    monkeypatch.setattr(loop, "build_optimizer", counted_optimizer)
    cfg = _cfg(tmp_path, shards, name="nan", steps=3, ckpt_every=3)
    final = train(cfg, progress=False)
    rows = read_metrics(cfg.run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows if r["kind"] == "skip"] == [1] and len(updates) == 2
    assert math.isfinite(final["loss"]) and [r["step"] for r in rows if r["kind"] == "train"] == [0, 1, 2]
