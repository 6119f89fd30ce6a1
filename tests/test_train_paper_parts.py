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


def _loose_model(rig, kind="skinning"):
    cfg = load_model_config("tiny", {"deformer": {"enabled": True, "kind": kind, "coarse_nodes": 8, "fine_nodes": 16}})
    return LCAModel(cfg, rig)


def test_skinning_weight_correction_starts_as_plain_skinning_then_re_skins_and_trains(tmp_path):
    from core.model.appearance import Lighting
    from core.model.drive import drive_gaussians
    from core.model.rig import rig_from_body_asset
    from core.train.checkpoint import load_checkpoint, save_checkpoint

    rig = rig_from_body_asset()
    torch.manual_seed(0)
    model = _loose_model(rig)
    assert model.deformer is None and model.skin_correction is not None  # the paper's kind, not the node deformer
    body, face = torch.rand(1, 2, 3, 64, 48), torch.rand(1, 2, 3, 32, 32)
    state = model(body, face).select(0)
    J, E = model.num_joints, model.num_expressions
    pose = torch.zeros(J, 3)
    pose[1:, 0] = 0.3  # every bone but the root bent
    args = (pose, torch.zeros(E), torch.zeros(2), Lighting.neutral())
    plain = drive_gaussians(model, replace_state(state, skin_nodes=None), *args).gaussians
    zero = drive_gaussians(model, state, *args)
    torch.testing.assert_close(zero.gaussians.means, plain.means)  # zero correction: exactly template skinning
    assert {"sparsity", "arap"} <= zero.regularisers.keys()
    with torch.no_grad():
        model.skin_correction.mlp[-1].bias.normal_(0, 2.0)  # some weight moves to other bones
    moved = drive_gaussians(model, model(body, face).select(0), *args).gaussians
    assert (moved.means - plain.means).norm(dim=-1).max() > 1e-3
    torch.testing.assert_close(moved.quats.norm(dim=-1), torch.ones(moved.quats.shape[0]))
    model.zero_grad()
    drive_gaussians(model, model(body, face).select(0), *args).gaussians.means.sum().backward()
    assert model.skin_correction.mlp[-1].weight.grad.abs().sum() > 0
    # a post-training extension: initialised from a checkpoint of the model without it
    torch.manual_seed(0)
    base = LCAModel(load_model_config("tiny"), rig)
    path = save_checkpoint(tmp_path / "base.safetensors", model=base, step=3, config={})
    ext = _loose_model(rig)
    load_checkpoint(path, model=ext, allow_missing=ext.new_layer_prefixes)
    torch.testing.assert_close(ext.pose_head.out.weight, base.pose_head.out.weight)
    assert ext.skin_correction.mlp[-1].weight.abs().sum() == 0


def replace_state(state, **kw):
    from dataclasses import replace

    return replace(state, **kw)


def test_the_node_deformer_stays_an_option():
    from core.model.rig import rig_from_body_asset

    model = _loose_model(rig_from_body_asset(), kind="nodes")
    assert model.deformer is not None and model.skin_correction is None


def test_the_loose_garment_set_holds_only_skirts_and_dresses(tmp_path):
    from core.data.benchmarks import LOOSE_BENCHMARK, loose_identity, wears_loose_garment
    from core.data.identity_spec import draw_identity_spec
    from core.data.seeds import identity_seed
    from core.train.evaluate import evaluate

    idx = [loose_identity(0, i) for i in range(6)]
    assert idx == sorted(set(idx))
    specs = [draw_identity_spec(identity_seed(0, LOOSE_BENCHMARK, j)) for j in range(idx[-1] + 1)]
    assert [j for j, s in enumerate(specs) if wears_loose_garment(s)] == idx  # every loose one, in order
    assert any(s.top.kind == "dress" for s in specs) or any(s.bottom and s.bottom.kind == "skirt" for s in specs)
    from core.model.rig import rig_from_body_asset

    torch.manual_seed(0)
    model = _loose_model(rig_from_body_asset())
    res = evaluate(
        model, tmp_path / "bench", count=1, resolution=32, detail=0.08, crop_size=64, face_size=32,
        progress=False, benchmarks=(LOOSE_BENCHMARK,),
    )  # fmt: skip
    b = res["benchmarks"][LOOSE_BENCHMARK]
    assert b["identities"] == 1 and 0 < b["all"]["person"]["psnr"] < 80
