"""`Avatar.drive` through a replayed CUDA graph gives what the eager drive gives, and follows edits."""

import pytest
import torch

from core.model.appearance import Lighting
from core.model.avatar import Avatar
from core.model.config import load_model_config
from core.model.drive_graph import graphs_enabled
from core.model.model import LCAModel
from core.model.rig import toy_rig

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def avatar():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.manual_seed(0)
    cfg = load_model_config("tiny", {"deformer": {"enabled": True}})
    model = LCAModel(cfg, toy_rig()).eval().cuda()
    with torch.no_grad():
        model.pose_head.out.weight.normal_(0.0, 0.3)
    g = torch.Generator().manual_seed(0)
    body = torch.rand(2, 3, *cfg.encoder.body_crop, generator=g).cuda()
    face = torch.rand(2, 3, *cfg.encoder.face_crop, generator=g).cuda()
    return Avatar.create(model, body_crops=body, face_crops=face)


def inputs(seed):
    g = torch.Generator().manual_seed(seed)
    pose = (torch.randn(7, 3, generator=g) * 0.3).cuda()
    return pose, torch.rand(4, generator=g).cuda(), torch.tensor([0.1, -0.1]).cuda()


def drive_both(avatar, monkeypatch, *args, **kwargs):
    monkeypatch.setenv("LCA_CUDA_GRAPHS", "0")
    eager = avatar.decode(*args, **kwargs)
    monkeypatch.setenv("LCA_CUDA_GRAPHS", "1")
    assert graphs_enabled(avatar.state.anchors.device)
    return eager, avatar.decode(*args, **kwargs)


@pytest.mark.parametrize("detail", [None, 2])
def test_graphed_drive_matches_eager_for_new_inputs(avatar, monkeypatch, detail):
    for seed in range(3):  # the first call records, later ones replay with new inputs
        pose, expr, gaze = inputs(seed)
        eager, graphed = drive_both(avatar, monkeypatch, pose, expr, gaze, detail=detail)
        assert graphed.num == eager.num
        torch.testing.assert_close(graphed.means, eager.means, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(graphed.sh, eager.sh, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(graphed.quats, eager.quats, atol=1e-5, rtol=1e-4)


def test_graphed_drive_outputs_are_not_overwritten_by_the_next_frame(avatar, monkeypatch):
    monkeypatch.setenv("LCA_CUDA_GRAPHS", "1")
    first = avatar.decode(*inputs(0))
    kept = first.means.clone()
    avatar.decode(*inputs(1))
    assert torch.equal(first.means, kept)


def test_graphed_drive_follows_lighting_and_edits(avatar, monkeypatch):
    pose, expr, gaze = inputs(4)
    key = Lighting(
        env=Lighting.neutral("cuda").env * 0.5,
        direction=torch.tensor([0.0, 0.6, 0.8], device="cuda"),
        colour=torch.tensor([1.0, 0.9, 0.8], device="cuda"),
    )
    eager, graphed = drive_both(avatar, monkeypatch, pose, expr, gaze, lighting=key)
    torch.testing.assert_close(graphed.sh, eager.sh, atol=1e-5, rtol=1e-4)
    avatar.loosen("upper_garment", 2.0)  # an edit: the graphs are recorded again
    try:
        eager, graphed = drive_both(avatar, monkeypatch, pose, expr, gaze)
        assert graphed.num == eager.num
        torch.testing.assert_close(graphed.means, eager.means, atol=1e-5, rtol=1e-4)
    finally:
        avatar.loosen("upper_garment", 1.0)
