"""The paper's parts that sit behind switches: the canonical-render loss (Eq. 12), the skinning-weight
correction deformer, and wild data supervised only with what a real pipeline has."""

import torch

from core.model.config import load_model_config
from core.model.model import LCAModel


def _batch(shards, *, kind=None, num_targets=1):
    from core.data.loader import LoaderConfig, ShardDataset, collate, to_float_images

    cfg = LoaderConfig(num_refs=2, num_targets=num_targets, crop_size=32, face_size=16)
    ds = ShardDataset(shards, kind=kind, cfg=cfg, shuffle=False)
    return to_float_images(collate([next(iter(ds))]))


def test_canonical_render_loss_is_switched_by_its_weight_and_trains_the_canonical_branch_only(shards):
    from core.model.rig import rig_from_body_asset
    from core.train.config import LossConfig
    from core.train.step import TrainStep

    torch.manual_seed(0)
    model = LCAModel(load_model_config("tiny"), rig_from_body_asset())
    batch = _batch(shards, kind="studio")
    off = TrainStep(model, LossConfig(perceptual=0.0, canonical=0.0), render_size=24, perceptual=None)(batch)
    assert "canonical" not in off.terms
    on = TrainStep(model, LossConfig(perceptual=0.0, canonical=1.0), render_size=24, perceptual=None)(batch)
    assert torch.isfinite(on.terms["canonical"]) and on.terms["canonical"] > 0
    # at initialisation the pose head's deltas are zero, so the canonical render equals the posed one
    torch.testing.assert_close(on.terms["canonical"], on.terms["l1"], atol=1e-5, rtol=0)
    model.zero_grad()
    # the canonical term alone: its gradient reaches the canonical head and never the pose head
    step = TrainStep(
        model,
        LossConfig(l1=0, ssim=0, perceptual=0, mask=0, parts=0, canonical=1.0, acap=0, asap=0, arap=0, sparsity=0),
        render_size=24,
        perceptual=None,
    )
    step(batch).loss.backward()
    assert model.canonical_head.mlp.out.weight.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.pose_head.parameters())


def test_degraded_masks_reach_the_measured_iou():
    import numpy as np

    from core.data.loader import MEASURED_MASK_IOU, degrade_mask

    mask = np.zeros((96, 96), np.uint8)
    mask[20:80, 35:60] = 255
    for seed in range(3):
        out = degrade_mask(mask, np.random.default_rng(seed), MEASURED_MASK_IOU)
        a, b = mask > 127, out > 127
        assert abs((a & b).sum() / (a | b).sum() - MEASURED_MASK_IOU) < 0.03


def test_wild_clips_are_supervised_only_with_what_a_real_pipeline_has(shards):
    import numpy as np

    from core.data.loader import LoaderConfig, ShardDataset, make_example
    from core.data.seeds import rng_for

    ds = ShardDataset(shards, kind="wild", shuffle=False)
    sample = next(iter(ds.stream(ds.epoch_order()))).load()
    cfg = LoaderConfig(num_refs=2, num_targets=3, crop_size=32, face_size=16)
    wild = make_example(sample, rng_for("t", 0), cfg)
    exact = make_example(sample, rng_for("t", 0), LoaderConfig(**{**cfg.__dict__, "wild_supervision": "exact"}))
    a = sample.arrays
    assert (wild["tgt_lit"] == 0).all() and (exact["tgt_lit"] == 1).all()  # lighting unknown to a real pipeline
    assert (wild["tgt_parts"] == 255).all() and (exact["tgt_parts"] != 255).any()  # no part labels
    assert (wild["tgt_env_sh"] == 0).all()
    # the targets' bodies are the tracker's estimate, not the generator's truth
    assert any(np.allclose(wild["tgt_pose"][0].numpy(), a["est_pose"][f]) for f in range(sample.num_frames))
    assert not any(np.allclose(wild["tgt_pose"][0].numpy(), a["gt_pose"][f]) for f in range(sample.num_frames))
    assert any(np.allclose(exact["tgt_pose"][0].numpy(), a["gt_pose"][f]) for f in range(sample.num_frames))
    assert not torch.equal(wild["tgt_mask"], exact["tgt_mask"])  # masks as segmentation gives them


def _footage(folder):
    """What `prepare video` writes for a clip (fitted body and masks only), made from a rendered clip."""
    from dataclasses import replace

    from core.data.shards import write_shard
    from core.data.video_bench import frontal_clip

    clip = frontal_clip(0, frames=4, size=32, detail=0.05)
    arrays = {k.replace("gt_", "est_"): v for k, v in clip.arrays.items() if not k.startswith(("env_", "key_"))}
    clip = replace(clip, key="video-clip", meta={**clip.meta, "kind": "video"}, arrays=arrays, parts=None)
    write_shard(folder / "video" / "video-00000.tar", [clip])
    return folder


def test_ingested_footage_joins_pre_training_and_is_lit_by_the_code_read_off_the_frame(shards, tmp_path):
    from core.data.loader import LoaderConfig, ShardDataset, collate, to_float_images
    from core.model.rig import rig_from_body_asset
    from core.train.config import LossConfig
    from core.train.step import TrainStep

    real = _footage(tmp_path / "real")
    cfg = LoaderConfig(num_refs=2, num_targets=1, crop_size=32, face_size=16)
    ds = ShardDataset(shards, split="train", kind="wild", cfg=cfg, shuffle=False, extra_roots=(real,))
    assert any(p.name.startswith("video-") for p in ds.shards)  # not filtered out
    examples = [ds.example(r) for r in ds.stream(ds.epoch_order())]
    video = [e for e in examples if e["key"] == "video-clip"]
    assert len(video) == 1 and (video[0]["tgt_lit"] == 0).all()
    batch = to_float_images(collate([video[0], next(e for e in examples if e["key"] != "video-clip")]))  # mixed kinds
    torch.manual_seed(0)
    mcfg = load_model_config("tiny", {"appearance": {"lighting_code_dim": 8, "lighting_estimator": True}})
    model = LCAModel(mcfg, rig_from_body_asset())
    out = TrainStep(model, LossConfig(perceptual=0.0), render_size=24, perceptual=None)(batch)
    assert out.pred[0].mean() > 0.02  # lit (neutral light + code), not black
    out.loss.backward()
    assert model.light_estimator.out.weight.grad.abs().sum() > 0  # the per-frame lighting code is trained
