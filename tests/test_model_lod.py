"""Levels of detail: k of the K Gaussians per anchor, decoded through a sliced pose head (fast previews)."""

import math

import pytest
import torch

from core.body.frame import DriveFrame
from core.model.appearance import Lighting
from core.model.avatar import Avatar
from core.model.config import load_model_config
from core.model.drive import detail_level, displace_affine, drive_gaussians
from core.model.model import LCAModel
from core.model.rig import toy_rig
from core.raster.parts import NO_PART_EDITS, PartEdit
from core.raster.rasterize import rasterize
from core.raster.types import Camera


def crops(cfg, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, *cfg.encoder.body_crop, generator=g), torch.rand(n, 3, *cfg.encoder.face_crop, generator=g)


@pytest.fixture(scope="module")
def avatar():
    torch.manual_seed(0)
    cfg = load_model_config("tiny", {"deformer": {"enabled": True}})
    model = LCAModel(cfg, toy_rig()).eval()
    with torch.no_grad():  # pose deltas large enough that a wrong row or slot would show
        model.pose_head.out.weight.normal_(0.0, 0.3)
    body, face = crops(cfg)
    return Avatar.create(model, body_crops=body, face_crops=face)


def frame(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(7, 3, generator=g) * 0.3, torch.rand(4, generator=g), torch.tensor([0.1, -0.1])


def test_detail_gives_k_gaussians_per_anchor_and_leaves_hidden_parts_out(avatar):
    A, K = avatar.state.canonical.offsets.shape[:2]
    pose, expr, gaze = frame()
    assert avatar.decode(pose, expr, gaze, detail=2).num == A * 2
    assert avatar.decode(pose, expr, gaze, detail=1).num == A
    parts = (PartEdit(visible=False), *NO_PART_EDITS[1:])  # skin hidden by the frame
    kept = avatar.drive(DriveFrame(pose, expr, gaze, torch.zeros(3), parts=parts), detail=2)
    assert 0 < kept.num < A * 2 and not (kept.parts == 0).any()
    with pytest.raises(ValueError, match="1 <= k"):
        avatar.decode(pose, expr, gaze, detail=K + 1)


def test_full_detail_is_bit_identical_to_the_plain_drive(avatar):
    pose, expr, gaze = frame()
    light = Lighting.neutral()
    plain = drive_gaussians(avatar.model, avatar.state, pose, expr, gaze, light, strength=avatar._strength).gaussians
    K = avatar.gaussians_per_anchor
    for g in (avatar.decode(pose, expr, gaze), avatar.decode(pose, expr, gaze, detail=K)):
        for name in ("means", "quats", "log_scales", "opacity_logits", "sh", "parts"):
            assert torch.equal(getattr(g, name), getattr(plain, name)), name


def test_detail_gaussians_are_the_full_ones_of_their_slots_widened_in_the_tangent_plane(avatar):
    pose, expr, gaze = frame()
    A, K = avatar.state.canonical.offsets.shape[:2]
    full = avatar.decode(pose, expr, gaze)
    level = detail_level(avatar.model, avatar.state, 2)
    lod = avatar.decode(pose, expr, gaze, detail=2)
    sub = torch.arange(A * K).view(A, K)[:, level.slots].reshape(-1)
    # the sliced head rows and the affine deformer reproduce the full decode of those slots
    torch.testing.assert_close(lod.means, full.means[sub], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lod.quats, full.quats[sub], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lod.sh, full.sh[sub], atol=1e-5, rtol=1e-5)
    boost = (lod.log_scales - full.log_scales[sub]).view(A, 2, 3)
    assert (boost >= -1e-6).all() and boost.max() > 0.0  # widened, never shrunk
    assert ((boost.abs() < 1e-6).sum(-1) >= 1).all()  # each splat keeps its thinnest axis
    assert boost.max() <= 0.5 * math.log(4.0) + 1e-5  # capped at 4x the area


def test_level_of_all_slots_has_no_boost_and_matches_the_full_decode(avatar):
    K = avatar.gaussians_per_anchor
    level = detail_level(avatar.model, avatar.state, K)
    assert torch.equal(level.slots, torch.arange(K)) and level.log_scale_boost.abs().max() < 1e-6
    pose, expr, gaze = frame(3)
    light = Lighting.neutral()
    args = (avatar.model, avatar.state, pose, expr, gaze, light)
    full = drive_gaussians(*args).gaussians
    lod = drive_gaussians(*args, detail=level, regularisers=False).gaussians
    torch.testing.assert_close(lod.means, full.means, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lod.log_scales, full.log_scales, atol=1e-5, rtol=1e-5)


def test_affine_node_displacement_equals_the_per_node_blend(avatar):
    m, s = avatar.model, avatar.state
    g = torch.Generator().manual_seed(4)
    A, K = s.canonical.offsets.shape[:2]
    points = s.anchors[:, None] + 0.05 * torch.randn(A, K, 3, generator=g)
    Nn = s.node_proj.shape[0]
    motion = type(m.deformer.bound(s.node_zero, s.node_zero))(
        rotvec=0.3 * torch.randn(Nn, 3, generator=g), translation=0.02 * torch.randn(Nn, 3, generator=g)
    )
    node_pos = s.anchors[m.deformer.node_anchor]
    strength = torch.rand(A, K, generator=g) * 2
    want = m.deformer.displace(points, node_pos, motion, s.garment, strength)
    got = displace_affine(m.deformer, points, node_pos, motion, s.garment, strength)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_quarter_detail_image_stays_close_to_the_full_image():
    from app.model_avatar import untrained_model_avatar

    avatar = untrained_model_avatar("tiny").avatar  # the body asset's shape: a person-sized figure
    full = avatar.decode()
    lo, hi = full.means.min(0).values, full.means.max(0).values
    c = ((lo + hi) / 2).tolist()
    cam = Camera.look_at((c[0], c[1], c[2] + 2.6), tuple(c), width=48, height=64)
    bg = (0.13, 0.14, 0.16)
    ref = rasterize(full, cam, background=bg).color[0]

    def psnr(detail: int) -> float:
        img = rasterize(avatar.decode(detail=detail), cam, background=bg).color[0]
        return float(10 * torch.log10(1 / ((img - ref) ** 2).mean()))

    empty = float(10 * torch.log10(1 / ((torch.tensor(bg) - ref) ** 2).mean()))
    # measured at 48x64: 2 of 4 per anchor 34.4 dB, 1 of 4 28.9 dB; the empty background scores 13.4 dB
    assert psnr(2) > 31.0
    assert psnr(1) > 25.0 and psnr(1) > empty + 10.0
