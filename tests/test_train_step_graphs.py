"""CUDA graphs of the training step's stages: recorded on the first step, captured on the second, replayed while
the shapes hold, eager otherwise; on a GPU the graphed training equals the eager one."""

import copy
import dataclasses
import logging

import pytest
import torch

import core.train.step_graphs as step_graphs
from core.data.loader import LoaderConfig, ShardDataset, collate, to_float_images
from core.model.config import load_model_config
from core.model.model import LCAModel
from core.model.rig import rig_from_body_asset
from core.train.config import LossConfig
from core.train.step import TrainStep


def _model() -> LCAModel:
    cfg = load_model_config("tiny")
    cfg = dataclasses.replace(cfg, appearance=dataclasses.replace(cfg.appearance, lighting_estimator=True))
    torch.manual_seed(0)
    return LCAModel(cfg, rig_from_body_asset())


def _batches(shards, n: int = 2) -> list[dict]:
    """n batches of two identities (a wild clip, a studio capture) x 2 targets, the wild clip's light unknown."""
    cfg = LoaderConfig(num_refs=2, num_targets=2, crop_size=32, face_size=16)
    out = []
    for i in range(n):  # other references and targets each time
        wild = next(iter(ShardDataset(shards, kind="wild", cfg=cfg, seed=i)))
        studio = next(iter(ShardDataset(shards, kind="studio", cfg=cfg, seed=i)))
        batch = to_float_images(collate([wild, studio]))
        batch["tgt_lit"] = torch.tensor([[0.0], [1.0]]).expand(2, 2).clone()
        out.append(batch)
    return out


class _FakeCapture:
    """Stands in for `capture_stages` on a CPU: each stage's "replay" counts its calls and runs the stage."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.calls, self.captured = fail, {}, 0

    def __call__(self, stages, samples):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        names = {id(s): n for n, s in self._stages.items()}
        for args in samples:
            assert all(isinstance(t, torch.Tensor) for t in torch.utils._pytree.tree_leaves(args))
            assert all(not t.requires_grad or t.is_leaf for t in torch.utils._pytree.tree_leaves(args))
        self.captured += 1

        def replaying(stage):
            def replay(*a):
                self.calls[names[id(stage)]] = self.calls.get(names[id(stage)], 0) + 1
                return stage(*a)

            return replay

        return [replaying(s) for s in stages]


def _graphed_step(monkeypatch, fake: _FakeCapture) -> TrainStep:
    monkeypatch.setattr(step_graphs, "GRAPH_DEVICES", ("cuda", "cpu"))
    monkeypatch.setattr(step_graphs, "capture_stages", fake)
    step = TrainStep(_model(), LossConfig(perceptual=0.0), render_size=16, perceptual=None, graphs=True)
    fake._stages = step._stages.stages
    return step


def test_stages_are_recorded_then_captured_then_replayed_while_the_shapes_hold(shards, monkeypatch, caplog):
    fake = _FakeCapture()
    step = _graphed_step(monkeypatch, fake)
    eager = TrainStep(copy.deepcopy(step.model), step.cfg, render_size=16, perceptual=None)
    b1, b2 = _batches(shards)

    out1 = step(b1)  # first training step: the stages run once to record their inputs, are captured, replayed
    assert fake.captured == 1 and step._stages.status == "live" and not step._stages.samples
    assert fake.calls == {"identity": 1, "drive": 1, "losses": 1}
    torch.testing.assert_close(out1.loss, eager(b1).loss, rtol=1e-6, atol=0)
    out1.loss.backward()
    step(b2)
    assert fake.calls == {"identity": 2, "drive": 2, "losses": 2} and fake.captured == 1

    step.eval()  # evaluation runs eagerly (other batches, no gradients)
    with torch.no_grad():
        step(b2)
    step.train()
    assert fake.calls == {"identity": 2, "drive": 2, "losses": 2}

    small = {k: v[:1] if isinstance(v, torch.Tensor) else v for k, v in b2.items()}  # one identity: other shapes
    with caplog.at_level(logging.INFO, logger="core.train.step_graphs"):
        step(small)
    assert fake.calls == {"identity": 2, "drive": 2, "losses": 2}
    assert "other shapes" in caplog.text
    step(b1)
    assert fake.calls == {"identity": 3, "drive": 3, "losses": 3}


def test_a_failed_capture_leaves_the_step_eager_and_training(shards, monkeypatch, caplog):
    fake = _FakeCapture(fail=True)
    step = _graphed_step(monkeypatch, fake)
    (b1,) = _batches(shards, 1)
    with caplog.at_level(logging.WARNING):
        out = step(b1)
    assert step._stages.status == "off" and "capture failed" in step._stages.reason
    assert "training carries on eagerly" in caplog.text
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert step.model.pose_head.out.weight.grad is not None


def test_graphs_stay_off_on_a_cpu_and_with_compile(shards):
    step = TrainStep(_model(), LossConfig(perceptual=0.0), render_size=24, perceptual=None, graphs=True)
    step(_batches(shards, 1)[0]).loss.backward()
    assert step._stages.status == "off" and "CUDA" in step._stages.reason
    compiled = TrainStep(_model(), LossConfig(), render_size=24, perceptual=None, graphs=True, compile=True)
    assert compiled._stages.status == "off" and compiled._stages.reason == "compile: true"


@pytest.mark.gpu
def test_graphed_training_equals_eager_training_on_a_gpu(shards):
    """Five SGD steps with the stages as CUDA graphs against the same five steps eagerly (gsplat between the
    stages in both): the losses agree to 1e-4 relative and every parameter's gradient at the last step points the
    same way (cosine > 0.999: gsplat's backward sums with atomics, so no two runs agree to the bit)."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("gsplat")
    batches = [{k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in b.items()} for b in _batches(shards, 3)]
    losses, grads = {}, {}
    for graphs in (False, True):
        model = _model().cuda()
        cfg = LossConfig(perceptual=0.0, canonical=0.5)
        step = TrainStep(model, cfg, render_size=24, perceptual=None, graphs=graphs)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        seen = []
        for i in range(5):
            out = step(batches[i % len(batches)])
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            if i < 4:
                opt.step()
            seen.append(float(out.loss.detach()))
        assert step._stages.status == ("live" if graphs else "off"), step._stages.reason
        losses[graphs] = torch.tensor(seen)
        grads[graphs] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    torch.testing.assert_close(losses[True], losses[False], rtol=1e-4, atol=1e-6)
    assert set(grads[True]) == set(grads[False]) and "pose_head.out.weight" in grads[True]
    for n, g in grads[False].items():
        cos = torch.nn.functional.cosine_similarity(grads[True][n].flatten(), g.flatten(), dim=0)
        assert cos > 0.999 or g.abs().max() < 1e-7, (n, float(cos))  # 1e-7: a gradient of rounding noise
