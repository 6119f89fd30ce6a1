"""The batched training step (all targets of all identities posed, shaded and rendered at once) computes the same
losses and gradients as the per-target reference step, on the CPU with the torch rasteriser."""

import dataclasses
import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from core.data.loader import LoaderConfig, ShardDataset, collate, to_float_images
from core.model.config import load_model_config
from core.model.drive import drive_gaussians
from core.model.drive_batch import drive_targets
from core.model.model import LCAModel
from core.model.rig import rig_from_body_asset
from core.train.config import LossConfig
from core.train.step import TrainStep
from core.train.step_inputs import target_frames

# float32 on the CPU: sums taken in another order (per target vs per batch) and the deformer's per-anchor affine
# form differ in the last bits; losses agree to 1e-5 relative, each parameter's gradient to 1e-3 of its largest
# entry (seen: at most 2e-4, on the pose head's and deformer's output biases; most parameters 1e-6 to 5e-5).
LOSS_RTOL = 1e-5
GRAD_TOL = 1e-3


def _model(decoder: str = "dual", deformer: str | None = "nodes", pixel: bool = False) -> LCAModel:
    cfg = load_model_config("tiny")
    cfg = dataclasses.replace(
        cfg,
        tokens=dataclasses.replace(cfg.tokens, pixel_aligned=pixel),
        heads=dataclasses.replace(cfg.heads, decoder=decoder),
        deformer=dataclasses.replace(cfg.deformer, enabled=deformer is not None, kind=deformer or "nodes"),
        appearance=dataclasses.replace(cfg.appearance, lighting_estimator=True),
    )
    torch.manual_seed(0)
    model = LCAModel(cfg, rig_from_body_asset())
    with torch.no_grad():  # move the near-zero initial pose head and deformer so the per-target terms matter
        outs = [model.pose_head.out, model.light_estimator.out]
        outs += [model.deformer.mlp.out] if deformer == "nodes" else []
        outs += [model.skin_correction.mlp[-1]] if deformer == "skinning" else []
        for p in itertools.chain(*(m.parameters() for m in outs)):
            p.add_(0.05 * torch.randn_like(p))
    return model


def _batch(shards, num_targets: int = 2) -> dict:
    """Two identities (a wild clip and a studio capture) x num_targets targets, with key lights on all targets but
    the first (the loader gives none; the evaluation's benchmarks do); the wild clip's lighting unknown (read off
    its frames), the studio's known."""
    cfg = LoaderConfig(num_refs=2, num_targets=num_targets, crop_size=32, face_size=16)
    wild = next(iter(ShardDataset(shards, kind="wild", cfg=cfg, shuffle=False)))
    studio = next(iter(ShardDataset(shards, kind="studio", cfg=cfg, shuffle=False)))
    batch = to_float_images(collate([wild, studio]))
    g = torch.Generator().manual_seed(3)
    batch["tgt_key_dir"] = torch.nn.functional.normalize(torch.randn(2, num_targets, 3, generator=g), dim=-1)
    batch["tgt_key_rgb"] = torch.rand(2, num_targets, 3, generator=g)
    batch["tgt_key_rgb"][0, 0] = 0.0
    batch["tgt_lit"] = torch.tensor([[0.0], [1.0]]).expand(2, num_targets).clone()
    return batch


def _grads(model: LCAModel) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("decoder,deformer", [("dual", "nodes"), ("single", None), ("dual", "skinning")])
def test_batched_step_equals_the_per_target_reference(shards, decoder, deformer):
    model = _model(decoder, deformer)
    batch = _batch(shards)
    losses = LossConfig(perceptual=0.0, canonical=0.5)
    step = TrainStep(model, losses, render_size=24, perceptual=None)
    ref_step = TrainStep(model, losses, render_size=24, perceptual=None, per_target=True)

    out = step(batch)
    out.loss.backward()
    fast = _grads(model)
    model.zero_grad(set_to_none=True)
    ref = ref_step(batch)
    ref.loss.backward()
    slow = _grads(model)

    assert set(out.terms) == set(ref.terms) and {"l1", "ssim", "mask", "parts", "acap", "asap", "canonical"} <= set(
        out.terms
    )
    if deformer:
        assert {"arap", "sparsity"} <= set(out.terms)
    for k in ref.terms:
        torch.testing.assert_close(out.terms[k], ref.terms[k], rtol=LOSS_RTOL, atol=1e-7, msg=k)
    torch.testing.assert_close(out.loss, ref.loss, rtol=LOSS_RTOL, atol=1e-7)
    torch.testing.assert_close(out.pred, ref.pred, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.target, ref.target)
    assert set(fast) == set(slow)
    for n, g in slow.items():
        scale = g.abs().max().clamp_min(1e-8)
        assert (fast[n] - g).abs().max() <= GRAD_TOL * scale, n
    assert slow["pose_head.out.weight"].abs().sum() > 0  # the per-target path carries gradients


@pytest.mark.parametrize("deformer", ["nodes", "skinning"])
def test_batched_drive_equals_drive_gaussians_per_target(shards, deformer):
    """Each posed target of `drive_targets` is `drive_gaussians` of that identity, pose and light."""
    model = _model(deformer=deformer)
    batch = _batch(shards, num_targets=3)
    crops = TrainStep(model, LossConfig(perceptual=0.0), render_size=24, perceptual=None)
    with torch.no_grad():
        states = crops.identities(batch, torch.device("cpu"))
        frames = target_frames(batch, torch.device("cpu"), model.light_estimator)
        assert frames.code is not None and frames.code[0].abs().min() > 0 and frames.code[1].abs().max() == 0
        out = drive_targets(model, states, frames, canonical=True)
        B, T = batch["tgt_rgb"].shape[:2]
        for b, t in itertools.product(range(B), range(T)):
            light = crops._lighting(batch, b, t, torch.device("cpu"))
            one = drive_gaussians(
                model,
                states.select(b),
                batch["tgt_pose"][b, t],
                batch["tgt_expression"][b, t],
                batch["tgt_gaze"][b, t],
                light,
                batch["tgt_translation"][b, t],
            )
            g = out.gaussians
            i = b * T + t
            torch.testing.assert_close(g.means[i], one.gaussians.means, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(g.quats[i], one.gaussians.quats, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(g.log_scales[i], one.gaussians.log_scales)
            torch.testing.assert_close(g.opacity_logits[i], one.gaussians.opacity_logits)
            torch.testing.assert_close(g.sh[i], one.gaussians.sh, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(out.offsets[b, t], one.offsets, atol=1e-6, rtol=1e-5)
            args = (batch["tgt_pose"][b, t], batch["tgt_expression"][b, t], batch["tgt_gaze"][b, t], light)
            can = drive_gaussians(model, states.select(b), *args, batch["tgt_translation"][b, t], pose_dependent=False)
            for f in ("means", "quats", "log_scales", "opacity_logits", "sh"):
                torch.testing.assert_close(
                    getattr(out.canonical, f)[i], getattr(can.gaussians, f), atol=1e-5, rtol=1e-5
                )
            for k, v in one.regularisers.items():
                torch.testing.assert_close(out.regularisers[k][b, t], v, atol=1e-7, rtol=1e-5)


def test_batched_drive_rejects_mismatched_frames(shards):
    model = _model()
    batch = _batch(shards)
    with torch.no_grad():
        states = TrainStep(model, LossConfig(perceptual=0.0), render_size=24, perceptual=None).identities(
            batch, torch.device("cpu")
        )
        frames = target_frames(batch, torch.device("cpu"))
        bad = dataclasses.replace(frames, expression=frames.expression[..., :-1])
        with pytest.raises(ValueError, match="expression: expected"):
            drive_targets(model, states, bad)


def _run(step: TrainStep, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    step.model.zero_grad(set_to_none=True)
    out = step(batch)
    out.loss.backward()
    return out.loss.detach(), _grads(step.model)


@pytest.mark.gpu
@pytest.mark.parametrize("compile", [False, True])
def test_batched_gpu_step_equals_the_per_target_reference(shards, compile):
    """On the GPU: one gsplat call for all targets, eager and compiled, against the per-target reference."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("gsplat")
    model = _model().cuda()
    batch = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in _batch(shards).items()}
    kw = dict(render_size=24, perceptual=None)
    losses = LossConfig(perceptual=0.0, canonical=0.5)
    ref_loss, ref = _run(TrainStep(model, losses, per_target=True, **kw), batch)
    step = TrainStep(model, losses, compile=compile, **kw)
    _run(step, batch)
    loss, fast = _run(step, batch)  # the second call runs what the first compiled
    assert step.compiled == compile
    torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-6)
    for n, g in ref.items():
        cos = torch.nn.functional.cosine_similarity(fast[n].flatten(), g.flatten(), dim=0)
        assert cos > 0.999 or g.abs().max() < 1e-9, (n, float(cos))


class _HostWaits(TorchDispatchMode):
    """Records the operations that would make the host wait for a GPU: values read back, shapes that depend on
    the data, and tensors made from host data (a blocking copy); a Python number is a scalar argument, no copy."""

    WAITS = {
        "_local_scalar_dense", "item", "nonzero", "masked_select", "unique", "_unique2", "equal", "is_nonzero",
        "_linalg_svd", "_linalg_check_errors", "_linalg_eigh",  # linear algebra that checks its result on the host
    }  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.paused = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if not self.paused and (name in self.WAITS or (name.startswith("lift_fresh") and out.dim() > 0)):
            self.seen.append(name)
        return out


@pytest.mark.parametrize("deformer,pixel", [(None, False), ("skinning", False), (None, True)])
def test_the_training_step_never_waits_for_the_device(shards, monkeypatch, deformer, pixel):
    """Forward and backward of the batched step dispatch nothing that waits for a GPU (the rasteriser aside: the
    torch reference here, gsplat on a GPU), so its stages can be captured in CUDA graphs: the body's rest bones
    and the skinning correction's rotations come from `polar_rotation`, not an SVD that checks its result on the
    host; and the loss is the weighted sum of its terms."""
    import core.train.step as step_module

    model = _model(deformer=deformer, pixel=pixel)
    batch = _batch(shards)
    cfg = LossConfig(perceptual=0.0, canonical=0.5)
    step = TrainStep(model, cfg, render_size=24, perceptual=None)
    step(batch)  # first call: caches its device constants
    waits = _HostWaits()
    rasterize = step_module.rasterize

    def rasterize_unwatched(*args, **kwargs):
        waits.paused = True
        try:
            return rasterize(*args, **kwargs)
        finally:
            waits.paused = False

    monkeypatch.setattr(step_module, "rasterize", rasterize_unwatched)
    with waits:
        out = step(batch)
        out.loss.backward()
    assert waits.seen == []
    weighted = sum(getattr(cfg, k) * v for k, v in out.terms.items())
    torch.testing.assert_close(out.loss.detach(), weighted, rtol=1e-6, atol=0)


def test_environment_from_sh_keeps_the_ambient_and_linear_rows():
    """`env_from_sh` (one product with a constant matrix) is the band-0 and band-1 rows at their irradiance gains."""
    from core.raster.sh import SH_C1
    from core.raster.types import SH_C0
    from core.train.step_inputs import env_from_sh

    sh = torch.randn(2, 3, 9, 3)
    c1 = (2 / 3) * SH_C1
    ref = torch.stack([SH_C0 * sh[..., 0, :], -c1 * sh[..., 3, :], -c1 * sh[..., 1, :], c1 * sh[..., 2, :]], -2)
    torch.testing.assert_close(env_from_sh(sh), ref, rtol=0, atol=0)
