"""Training lights a target as the benchmark evaluation does: a frame whose lighting is known is shaded under the
generator's whole lighting (environment and key light), so the held-out curve and `main.py eval` measure the
same renders."""

import numpy as np
import torch

from core.model.config import load_model_config
from core.model.model import LCAModel


def _studio_example(shards):
    from core.data.loader import LoaderConfig, ShardDataset, make_example
    from core.data.seeds import rng_for

    ds = ShardDataset(shards, kind="studio", shuffle=False)
    sample = next(iter(ds.stream(ds.epoch_order()))).load()
    cfg = LoaderConfig(num_refs=2, num_targets=2, crop_size=32, face_size=16)
    return sample, make_example(sample, rng_for("t", 0), cfg)


def test_studio_targets_carry_the_key_light_they_were_rendered_under(shards):
    sample, ex = _studio_example(shards)
    a = sample.arrays
    assert (ex["tgt_lit"] == 1).all() and float(ex["tgt_key_rgb"].abs().sum()) > 0
    for t in range(2):  # each target's key light is the one of its own frame
        f = next(f for f in range(sample.num_frames) if np.allclose(ex["tgt_pose"][t].numpy(), a["gt_pose"][f]))
        np.testing.assert_allclose(ex["tgt_key_dir"][t].numpy(), a["key_dir"][f])
        np.testing.assert_allclose(ex["tgt_key_rgb"][t].numpy(), a["key_rgb"][f])


def test_wild_targets_under_pipeline_supervision_have_no_key_light(shards):
    from core.data.loader import LoaderConfig, ShardDataset, make_example
    from core.data.seeds import rng_for

    ds = ShardDataset(shards, kind="wild", shuffle=False)
    sample = next(iter(ds.stream(ds.epoch_order()))).load()
    ex = make_example(sample, rng_for("t", 0), LoaderConfig(num_refs=2, num_targets=2, crop_size=32, face_size=16))
    assert (ex["tgt_lit"] == 0).all() and (ex["tgt_key_rgb"] == 0).all() and (ex["tgt_key_dir"] == 0).all()


def test_a_studio_target_is_shaded_in_training_as_the_benchmark_shades_it(shards):
    from core.data.loader import collate, to_float_images
    from core.model.drive import drive_gaussians
    from core.model.drive_batch import drive_targets
    from core.model.rig import rig_from_body_asset
    from core.train.config import LossConfig
    from core.train.step import TrainStep
    from core.train.step_inputs import lighting_from_sh, target_frames

    torch.manual_seed(0)
    mcfg = load_model_config("tiny", {"appearance": {"lighting_code_dim": 8, "lighting_estimator": True}})
    model = LCAModel(mcfg, rig_from_body_asset()).eval()
    sample, ex = _studio_example(shards)
    batch = to_float_images(collate([ex]))
    step = TrainStep(model, LossConfig(perceptual=0.0), render_size=24, perceptual=None)
    a, dev = sample.arrays, torch.device("cpu")
    with torch.no_grad():
        state = step.identities(batch, dev)
        trained = drive_targets(model, state, target_frames(batch, dev, model.light_estimator)).gaussians
        for t in range(2):
            f = next(f for f in range(sample.num_frames) if np.allclose(ex["tgt_pose"][t].numpy(), a["gt_pose"][f]))
            g = lambda k, f=f: torch.as_tensor(a[k][f]).float()  # noqa: E731
            light = lighting_from_sh(g("env_sh"), g("key_dir"), g("key_rgb"))  # as core.train.evaluate lights it
            bench = drive_gaussians(
                model, state.select(0), g("gt_pose"), g("gt_expression"), g("gt_gaze"), light, g("gt_translation")
            ).gaussians
            torch.testing.assert_close(trained.sh[t], bench.sh, atol=1e-5, rtol=1e-4)
            # the slow reference path lights it the same way
            ref = drive_gaussians(
                model,
                state.select(0),
                *(batch[k][0, t] for k in ("tgt_pose", "tgt_expression", "tgt_gaze")),
                step._lighting(batch, 0, t, dev),
                batch["tgt_translation"][0, t],
            ).gaussians
            torch.testing.assert_close(ref.sh, bench.sh, atol=1e-5, rtol=1e-4)


def test_the_held_out_curve_scores_wild_targets_as_the_benchmark_does(tmp_path, shards):
    """Under pipeline supervision wild targets train with the code read off the frame; the held-out batches light
    them with the generator's lighting and measure them in their exact masks, as `main.py eval` does."""
    from core.train.config import DataConfig, TrainConfig
    from core.train.loop import eval_batches

    data = DataConfig(root=str(shards), num_refs=2, num_targets=2, crop_size=32, face_size=16, workers=0)
    cfg = TrainConfig(stage="pretrain", batch_size=1, eval_every=1, eval_batches=2, out_dir=str(tmp_path), data=data)
    assert cfg.data.wild_supervision == "pipeline"
    for batch in eval_batches(cfg, shards):
        assert (batch["tgt_lit"] == 1).all() and (batch["tgt_key_rgb"].abs().sum(-1) > 0).all()
        assert (batch["tgt_parts"] != 255).any()  # exact labels and masks: the generator's truth
