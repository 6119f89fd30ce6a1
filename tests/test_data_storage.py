"""Shards, seeds, restartable generation and the training loader (no rendering: fast)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data import generate
from core.data.identity_spec import draw_identity_spec
from core.data.loader import LoaderConfig, ShardDataset, collate, crop, to_float_images
from core.data.seeds import identity_seed
from core.data.shards import Sample, iter_shard, list_shards, write_shard
from core.data.synth import SynthConfig


def fake_sample(world_seed: int, split: str, index: int, cfg: SynthConfig, frames: int = 3, cams: int = 2) -> Sample:
    rng = np.random.default_rng(identity_seed(world_seed, split, index))
    H = W = cfg.height
    mask = np.zeros((frames, cams, H, W), np.uint8)
    mask[..., H // 4 : 3 * H // 4, W // 3 : 2 * W // 3] = 255
    K = np.tile(np.array([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]]), (frames, cams, 1, 1))
    arrays = {
        "K": K.astype(np.float32),
        "T_cam_world": np.tile(np.eye(4), (frames, cams, 1, 1)).astype(np.float32),
        "head_box": np.tile(np.array([W / 3, H / 4, 2 * W / 3, H / 2], np.float32), (frames, cams, 1)),
        **{f"{p}pose": rng.normal(size=(frames, 5, 3)).astype(np.float32) for p in ("gt_", "est_")},
        **{f"{p}translation": np.zeros((frames, 3), np.float32) for p in ("gt_", "est_")},
        **{f"{p}expression": np.zeros((frames, 4), np.float32) for p in ("gt_", "est_")},
        **{f"{p}gaze": np.zeros((frames, 2), np.float32) for p in ("gt_", "est_")},
        **{f"{p}shape": np.full(6, 0.5, np.float32) for p in ("gt_", "est_")},
        "env_sh": np.zeros((frames, 9, 3), np.float32),
    }
    rgb = rng.integers(0, 255, (frames, cams, H, W, 3), dtype=np.uint8)
    parts = np.where(mask > 0, 1, 255).astype(np.uint8)
    return Sample(
        key=f"wild-{split}-{index:06d}",
        meta={"kind": "wild", "index": index},
        arrays=arrays,
        rgb=rgb,
        mask=mask,
        parts=parts,
    )


def test_data_identity_seeds_never_overlap_between_splits():
    seeds = {s: {identity_seed(0, s, i) for i in range(500)} for s in ("train", "val", "wild-test", "studio-test")}
    assert all(len(v) == 500 for v in seeds.values())
    assert not seeds["train"] & (seeds["wild-test"] | seeds["studio-test"] | seeds["val"])
    assert identity_seed(0, "train", 3) != identity_seed(1, "train", 3)


def test_data_identity_spec_is_reproducible_from_its_seed():
    assert draw_identity_spec(42) == draw_identity_spec(42)
    specs = [draw_identity_spec(s) for s in range(60)]
    assert len({s.hair_style for s in specs}) >= 4
    assert {"dress"} <= {s.top.kind for s in specs}
    assert "skirt" in {s.bottom.kind for s in specs if s.bottom is not None}
    assert any(s.beard for s in specs)


def test_data_shard_round_trip_keeps_every_array_and_image(tmp_path):
    cfg = SynthConfig(width=16, height=16)
    samples = [fake_sample(0, "train", i, cfg) for i in range(2)]
    write_shard(tmp_path / "a.tar", samples)
    back = list(iter_shard(tmp_path / "a.tar"))
    assert [s.key for s in back] == [s.key for s in samples]
    for a, b in zip(samples, back, strict=False):
        np.testing.assert_array_equal(a.rgb, b.rgb)
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_array_equal(a.parts, b.parts)
        for k in a.arrays:
            np.testing.assert_array_equal(a.arrays[k], b.arrays[k])


def test_data_shards_are_bit_identical_and_temporaries_are_not_listed(tmp_path):
    cfg = SynthConfig(width=8, height=8)
    write_shard(tmp_path / "a.tar", [fake_sample(0, "train", 0, cfg)])
    write_shard(tmp_path / "b.tar", [fake_sample(0, "train", 0, cfg)])
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    (tmp_path / "c.tar.tmp123").write_bytes(b"half a shard")
    assert [p.name for p in list_shards(tmp_path)] == ["a.tar", "b.tar"]


def test_data_generation_resumes_without_redoing_finished_shards(tmp_path, monkeypatch):
    calls: list[int] = []

    def maker(world_seed, split, index, cfg):
        calls.append(index)
        return fake_sample(world_seed, split, index, cfg)

    monkeypatch.setitem(generate.MAKERS, "wild", maker)
    cfg = SynthConfig(width=8, height=8)
    plan = generate.plan_generation(tmp_path, {"train": {"wild": 5}}, world_seed=0, per_shard=2, config=cfg)
    assert len(plan.jobs) == 3
    # A "killed" run: one shard finished, one left as a temporary file.
    generate._run_job((plan.jobs[0], 0, cfg))
    first = (tmp_path / "train" / "wild-train-00000.tar").stat().st_mtime_ns
    (tmp_path / "train" / "wild-train-00001.tar.tmp999").write_bytes(b"partial")
    calls.clear()
    card = generate.run_generation(plan, workers=1, progress=False)
    assert sorted(calls) == [2, 3, 4]
    assert (tmp_path / "train" / "wild-train-00000.tar").stat().st_mtime_ns == first
    assert card["counts"] == {"train": {"wild": 5}}
    assert sum(s["samples"] for s in card["shards"].values()) == 5
    assert (tmp_path / "card.json").is_file()


def test_data_crop_maps_pixels_consistently_with_its_matrix():
    img = np.zeros((40, 40, 3), np.uint8)
    img[10, 20] = 255
    out, A = crop(img, 20.5, 10.5, 8.0, 16)
    u, v, _ = A @ np.array([20.5, 10.5, 1.0])
    assert (u, v) == (8.0, 8.0)
    assert out[7:9, 7:9].max() > 0


def test_data_loader_yields_refs_and_targets_deterministically(tmp_path):
    cfg = SynthConfig(width=16, height=16)
    for s in range(3):
        write_shard(tmp_path / "train" / f"wild-train-{s:05d}.tar", [fake_sample(0, "train", s, cfg)])
    lcfg = LoaderConfig(num_refs=4, num_targets=2, crop_size=24, face_size=12, shuffle_buffer=2)
    a = list(ShardDataset(tmp_path, split="train", cfg=lcfg, seed=7))
    b = list(ShardDataset(tmp_path, split="train", cfg=lcfg, seed=7))
    assert [e["key"] for e in a] == [e["key"] for e in b]
    torch.testing.assert_close(a[0]["ref_full"], b[0]["ref_full"])
    assert sorted(e["key"] for e in a) == [f"wild-train-{i:06d}" for i in range(3)]
    batch = collate(a[:2])
    assert batch["ref_full"].shape == (2, 4, 3, 24, 24)
    assert batch["ref_face"].shape == (2, 4, 3, 12, 12)
    assert batch["tgt_rgb"].shape == (2, 2, 3, 16, 16)
    assert batch["tgt_mask"].shape == (2, 2, 1, 16, 16)
    assert batch["tgt_parts"].dtype == torch.int64
    assert batch["ref_full"].dtype == torch.uint8
    floats = to_float_images(batch)
    assert floats["ref_full"].dtype == torch.float32 and float(floats["ref_full"].max()) <= 1.0
    assert float(floats["tgt_mask"].max()) == 1.0


def test_data_loader_splits_shards_over_workers_without_duplicates(tmp_path):
    cfg = SynthConfig(width=8, height=8)
    for s in range(4):
        write_shard(tmp_path / "train" / f"wild-train-{s:05d}.tar", [fake_sample(0, "train", s, cfg, frames=2, cams=1)])
    ds = ShardDataset(tmp_path, cfg=LoaderConfig(num_refs=2, num_targets=1, crop_size=8, face_size=8), seed=1)
    dl = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    keys = [e["key"] for e in dl]
    assert sorted(keys) == [f"wild-train-{i:06d}" for i in range(4)]


def test_data_loader_says_how_to_make_data_when_none_exists(tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare synth"):
        ShardDataset(tmp_path)
