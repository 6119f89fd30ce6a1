"""Before-launch estimates (parameters, memory, time) and the trainer's periodic evaluation rows."""

from pathlib import Path

import pytest

from core.model.config import load_model_config
from core.train.config import load_train_config
from core.train.estimate import GIB, count_parameters, estimate_memory, estimate_seconds, format_duration
from core.train.loop import train
from core.train.metrics import read_metrics

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "train" / "smoke-tiny.yaml"


def test_parameter_count_matches_the_built_tiny_model():
    from core.model.model import LCAModel
    from core.model.rig import rig_from_body_asset

    cfg = load_model_config("tiny")
    real = sum(p.numel() for p in LCAModel(cfg, rig_from_body_asset()).parameters())
    assert count_parameters(cfg).total == pytest.approx(real, rel=0.03)
    frozen = count_parameters(cfg, freeze_encoder=True)
    assert frozen.trainable == frozen.total - frozen.encoder


def test_memory_estimate_grows_with_batch_and_is_near_the_measured_base_run():
    base = load_model_config("base")
    kw = dict(num_refs=8, num_targets=2, render_size=192, device="cuda")
    one, four = estimate_memory(base, batch_size=1, **kw), estimate_memory(base, batch_size=4, **kw)
    assert four.activations == 4 * one.activations and four.weights == one.weights
    assert four.optimiser == 2 * four.gradients, "AdamW keeps two moments per trainable parameter"
    # docs/training/pretrain-base_metrics.jsonl: 4.04 GiB peak on an H100 for this configuration
    assert 2.5 < four.total / GIB < 5.5
    cpu = estimate_memory(base, batch_size=4, amp=True, **{**kw, "device": "cpu"})
    assert cpu.activations > four.activations, "float32 and materialised attention on the CPU"
    assert "GiB" in four.summary()
    with pytest.raises(ValueError, match="batch_size"):
        estimate_memory(base, batch_size=0, **kw)


def test_fsdp_memory_estimate_shards_the_static_part_and_is_near_the_measured_large_runs():
    import json

    large = load_model_config("large")
    kw = dict(batch_size=2, num_refs=4, num_targets=2, render_size=256, device="cuda")  # pretrain-large.yaml
    one, two = estimate_memory(large, **kw), estimate_memory(large, shards=2, **kw)
    assert two.activations == one.activations and two.optimiser == one.optimiser // 2
    assert two.weights + two.ema == (one.weights + one.ema) // 2
    # bench/results/scaling_large_h100x2.json: peak GPU memory of one unsharded process and of FSDP on 2 GPUs
    runs = json.loads((Path(__file__).resolve().parents[1] / "bench/results/scaling_large_h100x2.json").read_text())
    measured = {r["gpus"]: r["gpu_mem_gb"] for r in runs["runs"]}
    assert one.total / GIB == pytest.approx(measured[1], rel=0.25)
    assert two.total / GIB == pytest.approx(measured[2], rel=0.25)
    with pytest.raises(ValueError, match="shards"):
        estimate_memory(large, shards=0, **kw)


def test_time_estimate_counts_the_steps_left():
    assert estimate_seconds(100, 0.5) == 50.0
    assert estimate_seconds(100, 0.5, start_step=60) == 20.0
    assert estimate_seconds(10, 1.0, start_step=20) == 0.0
    assert format_duration(42) == "42 s" and format_duration(600) == "10.0 min" and format_duration(7200) == "2.0 h"


def test_periodic_eval_writes_psnr_and_ssim_rows(tmp_path, shards):
    data = {"root": str(shards), "render_size": 32, "synth_wild": 0, "synth_studio": 0}
    cfg = load_train_config(
        SMOKE, {"out_dir": str(tmp_path), "data": data, "steps": 3, "ckpt_every": 3, "eval_every": 2}
    )
    train(cfg, progress=False)
    rows = [r for r in read_metrics(cfg.run_dir / "metrics.jsonl") if r["kind"] == "eval"]
    assert [r["step"] for r in rows] == [2, 3], "every eval_every steps and at the end"
    assert all(5.0 < r["psnr"] < 60.0 and 0.0 < r["ssim"] <= 1.0 for r in rows)
    train_rows = [r for r in read_metrics(cfg.run_dir / "metrics.jsonl") if r["kind"] == "train"]
    assert len(train_rows) == 3, "evaluation does not disturb the training rows"
