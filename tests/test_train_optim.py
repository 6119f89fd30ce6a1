"""Layer-wise learning-rate decay and the schedule."""

import pytest
import torch

from core.train.metrics import MetricsLog, read_metrics
from core.train.optim import llrd_param_groups, lr_at, make_optimizer, set_lr


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Linear(2, 4)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(3)])
        self.head = torch.nn.Linear(4, 1)


def test_llrd_gives_deeper_layers_larger_rates_with_gamma():
    groups = llrd_param_groups(_Net(), lr=1.0, weight_decay=0.1, gamma=0.5)
    by_name = {g["name"]: g for g in groups}
    assert by_name["depth4"]["lr"] == pytest.approx(1.0)  # head
    assert by_name["depth3"]["lr"] == pytest.approx(0.5)  # last block
    assert by_name["depth1"]["lr"] == pytest.approx(0.125)  # first block
    assert by_name["depth0-nodecay"]["weight_decay"] == 0.0  # embedding
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == len(list(_Net().parameters()))


def test_gamma_one_is_plain_adamw_and_set_lr_keeps_the_ratios():
    opt = make_optimizer(_Net(), lr=1e-3, weight_decay=0.0, gamma=1.0)
    assert {g["lr"] for g in opt.param_groups} == {1e-3}
    opt = make_optimizer(_Net(), lr=1e-3, weight_decay=0.0, gamma=0.65)
    set_lr(opt, 2e-3)
    ratios = sorted(g["lr"] / 2e-3 for g in opt.param_groups)
    assert ratios[-1] == pytest.approx(1.0) and ratios[0] == pytest.approx(0.65**4)


def test_schedule_warms_up_then_decays():
    lrs = [lr_at(s, base_lr=1.0, warmup=10, total=100) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[50] < lrs[10] and lrs[-1] == pytest.approx(0.05, abs=0.01)


def test_metrics_log_appends_and_truncates_on_resume(tmp_path):
    m = MetricsLog(tmp_path, tensorboard=False)
    for s in range(5):
        m.write(s, loss=1.0 / (s + 1), bad=float("nan"))
    m.write(2, kind="eval", psnr=20.0)  # evaluation after 2 steps: written with the checkpoint of step 2
    m.truncate_after(2)  # a checkpoint after 2 steps covers train steps 0 and 1; step 2's line came after it
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["kind"]) for r in rows] == [(0, "train"), (1, "train"), (2, "eval")]
    assert rows[0]["bad"] is None and rows[1]["loss"] == 0.5


def test_llrd_on_the_model_gives_encoder_and_transformer_blocks_distinct_depths_and_the_decoder_full_rate():
    """The documented depth assignment (core.train.optim.layer_depths) on the tiny model (2 encoder blocks,
    2 transformer blocks), with the paper's post-training gamma 0.65 in the BEiT convention (1 = no decay)."""
    from core.model.config import load_model_config
    from core.model.model import LCAModel
    from core.model.rig import rig_from_body_asset

    model = LCAModel(load_model_config("tiny"), rig_from_body_asset())
    gamma, lr = 0.65, 1e-3
    opt = make_optimizer(model, lr=lr, weight_decay=0.05, gamma=gamma)
    rate = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())

    def lr_of(prefix: str) -> float:
        rates = {rate[id(p)] for n, p in named.items() if n.startswith(prefix)}
        assert len(rates) == 1, (prefix, rates)
        return rates.pop()

    top = 6  # stem 0, encoder blocks 1-2, fusion stem 3, transformer blocks 4-5, decoder 6
    expect = {
        "encoder.patch_embed.": top,
        "encoder.blocks.0.": top - 1,
        "encoder.blocks.1.": top - 2,
        "geometry.": top - 3,
        "image_mlp.": top - 3,
        "transformer.blocks.0.": top - 4,
        "transformer.blocks.1.": top - 5,
        "transformer.norm.": top - 5,
        "canonical_head.": 0,
        "pose_head.": 0,
        "pose_encoder.": 0,  # the pose-conditioning network is decoder-side: full rate, not gamma ** (L + 1)
        "lighting_code.": 0,
    }
    for prefix, power in expect.items():
        assert lr_of(prefix) == pytest.approx(lr * gamma**power), prefix
    assert lr_of("encoder.blocks.0.") != lr_of("transformer.blocks.0.")
    assert sum(len(g["params"]) for g in opt.param_groups) == len(named)
    flat = make_optimizer(model, lr=lr, weight_decay=0.05, gamma=1.0)  # gamma 1: no decay anywhere
    assert {g["lr"] for g in flat.param_groups} == {lr}


def test_groups_of_equal_settings_merge_and_a_checkpoint_grouped_per_depth_resumes_into_them():
    """make_optimizer keeps one group per (rate scale, weight decay) (each group is a pass of the optimiser every
    step); an optimiser state saved with a group per depth loads into the merged groups, moments matched by name."""
    from core.train.parallel import full_optimizer_state, load_full_optimizer_state

    torch.manual_seed(0)
    net = _Net()
    assert len(make_optimizer(net, lr=1e-3, weight_decay=0.1, gamma=1.0).param_groups) == 2  # decay, no decay
    assert len(make_optimizer(net, lr=1e-3, weight_decay=0.1, gamma=0.5).param_groups) == len(
        llrd_param_groups(net, lr=1e-3, weight_decay=0.1, gamma=0.5)
    )
    per_depth = torch.optim.AdamW(llrd_param_groups(net, lr=1e-3, weight_decay=0.1), lr=1e-3)
    x = net.embed(torch.randn(3, 2))
    for block in net.blocks:
        x = block(x)
    net.head(x).sum().backward()
    per_depth.step()
    sd, names = full_optimizer_state(net, per_depth)
    merged = make_optimizer(net, lr=1e-3, weight_decay=0.1, gamma=1.0)
    load_full_optimizer_state(net, merged, sd, names)
    for n, p in net.named_parameters():
        torch.testing.assert_close(merged.state[p]["exp_avg"], per_depth.state[p]["exp_avg"], msg=n)
    assert {g["weight_decay"] for g in merged.param_groups} == {0.0, 0.1}
