"""Data-parallel training on two gloo processes: DDP and FSDP give the single-process losses step for step
(same global batch), and a run checkpointed under FSDP on two processes resumes on one."""

import os
import subprocess
from pathlib import Path

import pytest
import torch

from core.data.loader import GlobalBatches, LoaderConfig, ShardDataset
from core.data.shards import SampleRef
from core.io import load_tensors
from core.train.checkpoint import read_checkpoint_meta
from core.train.metrics import read_metrics
from core.train.runs import train_command

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "train" / "smoke-tiny.yaml"


def _train(nproc: int, out: Path, shards: Path, name: str, *sets: str) -> Path:
    overrides = {"out_dir": out, "data.root": shards, "data.render_size": 32, "global_batch": 2, "name": name,
                 "ckpt_every": 2, **dict(item.split("=", 1) for item in sets)}  # fmt: skip
    cmd = train_command(SMOKE, overrides, nproc=nproc)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return out / name


def _losses(run: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]


@pytest.fixture(scope="module")
def single(tmp_path_factory, shards) -> Path:
    """Four steps on one process with a batch of two."""
    return _train(1, tmp_path_factory.mktemp("runs"), shards, "single", "steps=4")


def test_global_batches_are_the_same_examples_for_any_number_of_ranks(shards, monkeypatch):
    ds = ShardDataset(shards, cfg=LoaderConfig(num_refs=2, num_targets=1, crop_size=32, face_size=16), seed=3)

    def keys(per_rank, rank, world, start=0):
        return [(g, b["key"]) for _, g, b in GlobalBatches(ds, per_rank, rank=rank, world=world, start=start)]

    whole = keys(2, 0, 1)
    halves = [keys(1, r, 2) for r in range(2)]
    assert [g for g, _ in whole] == [0] and len(whole[0][1]) == 2  # 3 examples: one full batch, one dropped
    assert [k for _, ks in whole for k in ks] == [halves[0][0][1][0], halves[1][0][1][0]]
    assert halves[0][0][1] != halves[1][0][1]  # each rank decodes its own examples
    assert keys(1, 0, 1, start=1)[0][1] == halves[1][0][1]  # resuming one example in continues the stream

    loaded = []  # a rank reads only its own samples' bytes
    real_load = SampleRef.load
    monkeypatch.setattr(SampleRef, "load", lambda ref: loaded.append(ref.key) or real_load(ref))
    assert loaded == [] and keys(1, 1, 2)[0][1] == loaded == halves[1][0][1]


def test_epochs_run_on_in_one_loader_in_the_same_order_with_any_number_of_workers(shards):
    from torch.utils.data import DataLoader

    ds = ShardDataset(shards, cfg=LoaderConfig(num_refs=2, num_targets=1, crop_size=32, face_size=16), seed=3)

    def batches(workers, start=0, epoch=0, n=8):
        it = GlobalBatches(ds, 1, start=start, epoch=epoch, epochs=None)
        loader = iter(DataLoader(it, batch_size=None, num_workers=workers))
        return [(e, g, b["key"]) for e, g, b in (next(loader) for _ in range(n))]

    serial = batches(0)
    assert [(e, g) for e, g, _ in serial[:4]] == [(0, 0), (0, 1), (0, 2), (1, 0)]  # 3 examples per epoch
    assert batches(2) == serial  # two workers, their batches interleaved back into the same order
    resumed = batches(2, start=2, epoch=1)  # two examples into epoch 1: the same stream from there on
    assert [(e, k) for e, _, k in resumed] == [(e, k) for e, _, k in batches(0, n=13)[5:]]
    too_big = list(GlobalBatches(ds, 4, epochs=None))  # 3 examples cannot fill a batch of 4
    assert [(e, g, b) for e, g, b in too_big] == [(0, -1, None)]


def test_ddp_and_fsdp_on_two_processes_match_one_process(tmp_path, shards, single):
    ref = _losses(single)
    assert len(ref) == 4
    ddp = _losses(_train(2, tmp_path, shards, "ddp", "steps=4"))
    fsdp = _train(2, tmp_path, shards, "fsdp", "steps=2", "fsdp=true", "eval_every=2", "eval_split=train")
    assert ddp == pytest.approx(ref, rel=1e-4)
    assert _losses(fsdp) == pytest.approx(ref[:2], rel=1e-4)
    evals = [r for r in read_metrics(fsdp / "metrics.jsonl") if r["kind"] == "eval"]  # all ranks render it
    assert [r["step"] for r in evals] == [2] and evals[0]["psnr"] > 10
    meta = read_checkpoint_meta(fsdp / "last.safetensors")
    assert meta["step"] == 2 and meta["extra"]["world_size"] == 2
    assert meta["shapes"] == read_checkpoint_meta(single / "last.safetensors")["shapes"]  # full tensors, not shards

    # The FSDP run, saved on two processes, resumes on one and continues the single-process loss curve.
    resumed = _losses(_train(1, tmp_path, shards, "fsdp", "steps=4"))
    assert resumed == pytest.approx(ref, rel=1e-4)
    assert read_checkpoint_meta(fsdp / "last.safetensors")["extra"]["world_size"] == 1
    # ... with the same weights, EMA weights and optimiser moments at the end
    a, _ = load_tensors(fsdp / "last.safetensors", kind="lca-checkpoint")
    b, _ = load_tensors(single / "last.safetensors", kind="lca-checkpoint")
    assert b.keys() <= a.keys()  # FSDP gives never-used parameters zero gradients (and so optimiser state)
    for prefix in ("model.", "ema.module.", "optim."):
        keys = [k for k in b if k.startswith(prefix) and b[k].is_floating_point()]
        assert keys
        # float32 round-off of a split batch: Adam normalises each element's step, so where a gradient is
        # round-off small its sign can flip and that element moves by up to 2 lr per step (4 steps of lr 1e-3
        # here). Such elements stay rare: at most 1% of a tensor differs by more than the round-off bound.
        for k in keys:
            diff, tol = (a[k] - b[k]).abs(), 1e-3 * float(b[k].abs().max()) + 2e-4
            share = float((diff > tol).float().mean())
            assert share <= 0.01, (k, share, float(diff.max()))
            assert prefix == "optim." or float(diff.max()) <= 2 * 1e-3 * 4, (k, float(diff.max()))


def test_a_single_process_run_resumes_sharded_on_two_processes(tmp_path, shards, single):
    """The other direction: full checkpoint -> FSDP shards (weights, EMA and AdamW moments distributed)."""
    import shutil

    for name in ("one", "two"):
        shutil.copytree(single, tmp_path / name)
    one = _losses(_train(1, tmp_path, shards, "one", "steps=6"))
    two = _losses(_train(2, tmp_path, shards, "two", "steps=6", "fsdp=true"))
    assert len(one) == len(two) == 6 and two[:4] == one[:4]  # the first four rows are the copied run's
    assert two[4:] == pytest.approx(one[4:], rel=1e-4)


def test_a_data_set_smaller_than_one_global_batch_is_a_clear_error(shards, tmp_path):
    from core.config import ConfigError
    from core.train.config import load_train_config
    from core.train.loop import _batches

    cfg = load_train_config(SMOKE, {"global_batch": 4, "out_dir": str(tmp_path), "data": {"root": str(shards)}})
    with pytest.raises(ConfigError, match="no full batch of 4 examples"):
        next(_batches(cfg, shards, 0, 0))


def test_a_global_batch_that_does_not_divide_is_refused():
    from core.config import ConfigError
    from core.train.config import load_train_config

    cfg = load_train_config(SMOKE, {"global_batch": 3})
    assert cfg.per_rank_batch(1) == 3
    with pytest.raises(ConfigError, match="global_batch 3 does not divide over 2"):
        cfg.per_rank_batch(2)
    assert torch.distributed.is_available()


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    from core.config import ConfigError
    from core.train.distributed import init_distributed

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "3")
    with pytest.raises(ConfigError, match="needs GPU 3, but 2 are visible"):
        init_distributed("cuda")
