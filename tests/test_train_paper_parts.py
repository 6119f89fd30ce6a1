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
