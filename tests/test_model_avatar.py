import dataclasses

import pytest
import torch

from core.body.frame import DriveFrame
from core.config import from_dict, to_dict
from core.model.appearance import Lighting
from core.model.avatar import Avatar
from core.model.config import ModelConfig, load_model_config
from core.model.drive import drive_gaussians
from core.model.model import LCAModel
from core.model.rig import toy_rig
from core.raster.parts import PartEdit, swap_parts
from core.raster.types import PART_NAMES, sh0_to_rgb


@pytest.fixture(scope="module")
def rig():
    return toy_rig()


@pytest.fixture(scope="module")
def model(rig):
    torch.manual_seed(0)
    cfg = load_model_config("tiny", {"deformer": {"enabled": True}})
    return LCAModel(cfg, rig).eval()


def crops(n, cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(n, 3, *cfg.encoder.body_crop, generator=g),
        torch.rand(n, 3, *cfg.encoder.face_crop, generator=g),
    )


@pytest.mark.parametrize("n", [1, 8, 16])
def test_create_and_drive_give_gaussians_for_any_image_count(model, n):
    body, face = crops(n, model.cfg)
    av = Avatar.create(model, body_crops=body, face_crops=face)
    g = av.decode(torch.randn(7, 3) * 0.3, torch.rand(4), torch.tensor([0.1, -0.1]))
    G = model.cfg.num_gaussians
    assert g.means.shape == (G, 3) and g.quats.shape == (G, 4) and g.sh.shape == (G, 1, 3)
    assert g.parts.shape == (G,) and torch.isfinite(g.means).all()


def test_permuting_reference_images_leaves_the_avatar_unchanged(model):
    body, face = crops(5, model.cfg)
    perm = torch.tensor([3, 0, 4, 1, 2])
    a = Avatar.create(model, body_crops=body, face_crops=face).canonical()
    b = Avatar.create(model, body_crops=body[perm], face_crops=face[perm]).canonical()
    torch.testing.assert_close(a.means, b.means, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a.sh, b.sh, atol=1e-5, rtol=1e-4)
    c = Avatar.create(model, body_crops=body[:4], face_crops=face[:4]).canonical()
    assert not torch.allclose(a.sh, c.sh, atol=1e-5)  # the images do matter


def test_zero_pose_and_expression_reproduce_the_canonical_avatar(model):
    av = Avatar.create(model, *(), body_crops=crops(2, model.cfg)[0], face_crops=crops(2, model.cfg)[1])
    g, c = av.decode(), av.canonical()
    torch.testing.assert_close(g.means, c.means, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g.log_scales, c.log_scales)
    torch.testing.assert_close(g.sh, c.sh, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g.quats, c.quats, atol=1e-5, rtol=1e-5)
    posed = av.decode(torch.randn(7, 3) * 0.5)
    assert (posed.means - c.means).abs().max() > 1e-3


def test_pose_rotates_points_rigidly_when_bones_move_together(model):
    av = Avatar.create(model, body_crops=crops(1, model.cfg)[0], face_crops=crops(1, model.cfg)[1])
    pose = torch.zeros(7, 3)
    pose[0] = torch.tensor([0.0, 1.0, 0.0])  # root yaw: the whole body turns about the pelvis
    a = av.decode(translation=torch.tensor([0.0, 0.0, 0.0]))
    b = av.decode(pose)
    # Heights are unchanged by a yaw about the vertical axis (pose deltas are small and bounded).
    assert (a.means[:, 1] - b.means[:, 1]).abs().max() < 0.07
    assert (a.means[:, 0] - b.means[:, 0]).abs().max() > 0.05


def test_gradients_reach_every_parameter(rig):
    torch.manual_seed(0)
    cfg = load_model_config("tiny", {"deformer": {"enabled": True}, "tokens": {"num_anchors": 64}})
    m = LCAModel(cfg, rig)
    body, face = crops(2, cfg)
    state = m(body[None], face[None], torch.zeros(1, 2)).select(0)
    light = Lighting(env=Lighting.neutral().env, code=torch.randn(cfg.appearance.lighting_code_dim))
    out = drive_gaussians(m, state, torch.randn(7, 3) * 0.3, torch.rand(4), torch.tensor([0.2, 0.1]), light)
    g = out.gaussians
    loss = g.means.sum() + g.sh.sum() + g.quats.sum() + g.log_scales.sum() + g.opacity_logits.sum()
    loss = loss + state.canonical.part_logits.sum() + out.regularisers["arap"] + out.regularisers["sparsity"]
    loss.backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, dead


def test_single_branch_decoder_runs_and_differs(rig):
    cfg = load_model_config("tiny", {"heads": {"decoder": "single"}})
    m = LCAModel(cfg, rig).eval()
    assert not hasattr(m, "canonical_head")
    av = Avatar.create(m, body_crops=crops(2, cfg)[0], face_crops=crops(2, cfg)[1])
    torch.testing.assert_close(av.decode().means, av.canonical().means, atol=1e-5, rtol=1e-5)
    assert av.decode(torch.randn(7, 3) * 0.3).means.shape == (cfg.num_gaussians, 3)


def test_save_load_round_trip_keeps_drive_output(model, tmp_path):
    av = Avatar.create(model, body_crops=crops(3, model.cfg)[0], face_crops=crops(3, model.cfg)[1])
    av.loosen("upper_garment", 0.5)  # an avatar's own edit: its deformer strength per part
    pose, expr = torch.randn(7, 3) * 0.3, torch.rand(4)
    before = av.decode(pose, expr)
    av.save(tmp_path / "a.avatar")
    back = Avatar.load(tmp_path / "a.avatar")
    after = back.decode(pose, expr)
    for f in ("means", "quats", "log_scales", "opacity_logits", "sh", "parts"):
        torch.testing.assert_close(getattr(after, f), getattr(before, f))
    with pytest.raises(RuntimeError, match="no encoder"):
        Avatar.create(back.model, body_crops=crops(1, model.cfg)[0], face_crops=crops(1, model.cfg)[1])


def test_half_precision_file_is_smaller_keeps_its_description_and_loads_as_float32(model, tmp_path):
    av = Avatar.create(model, body_crops=crops(2, model.cfg)[0], face_crops=crops(2, model.cfg)[1])
    pose, expr = torch.randn(7, 3) * 0.3, torch.rand(4)
    before = av.decode(pose, expr)
    full = av.save(tmp_path / "full.safetensors")
    half = av.save(tmp_path / "half.safetensors", half=True, description="refined on its capture, 5 steps")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    assert Avatar.read_description(half) == "refined on its capture, 5 steps" and Avatar.read_description(full) is None
    back = Avatar.load(half)
    assert back.state.canonical.offsets.dtype == torch.float32
    after = back.decode(pose, expr)
    torch.testing.assert_close(after.means, before.means, atol=2e-3, rtol=1e-2)
    torch.testing.assert_close(after.sh, before.sh, atol=2e-3, rtol=1e-2)


def test_bad_inputs_raise_clear_errors(model):
    body, face = crops(2, model.cfg)
    with pytest.raises(ValueError, match="no images"):
        Avatar.create(model, body_crops=body[:0], face_crops=face[:0])
    with pytest.raises(ValueError, match=r"expected \[B, N, 3, 64, 48\]"):
        Avatar.create(model, body_crops=torch.rand(2, 3, 60, 48), face_crops=face)
    bad = body.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Avatar.create(model, body_crops=bad, face_crops=face)
    with pytest.raises(ValueError, match="at most 16"):
        Avatar.create(model, body_crops=crops(17, model.cfg)[0], face_crops=crops(17, model.cfg)[1])
    with pytest.raises(ValueError, match="give images"):
        Avatar.create(model)
    av = Avatar.create(model, body_crops=body, face_crops=face)
    with pytest.raises(ValueError, match="pose"):
        av.decode(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="NaN"):
        av.decode(torch.full((7, 3), float("nan")))
    with pytest.raises(ValueError, match="expression"):
        av.decode(expression=torch.zeros(9))


def _force_part(av, part_id, region):
    """Label the Gaussians of the given anchors as `part_id` (as a trained model would)."""
    logits = av.state.canonical.part_logits.clone()
    logits[region] = -10.0
    logits[region, :, part_id] = 10.0
    av._set_canonical(part_logits=logits)


def _frame(model, pose=None, **edits):
    """A frame at `pose` (rest when None), unlit ("albedo"), with `edits` as {part: PartEdit fields}."""
    parts = tuple(dataclasses.replace(PartEdit(), **edits.get(name, {})) for name in PART_NAMES)
    return DriveFrame(
        pose=torch.zeros(model.num_joints, 3) if pose is None else pose, expression=torch.zeros(model.num_expressions),
        gaze=torch.zeros(2), translation=torch.zeros(3), parts=parts, view="albedo",
    )  # fmt: skip


def test_a_frames_part_edits_hide_recolour_and_swap_parts_and_the_avatar_loosens_them(model):
    a = Avatar.create(model, body_crops=crops(2, model.cfg, 1)[0], face_crops=crops(2, model.cfg, 1)[1])
    b = Avatar.create(model, body_crops=crops(2, model.cfg, 2)[0], face_crops=crops(2, model.cfg, 2)[1])
    head = model.anchor_pos[:, 1] > 1.5
    top = model.anchor_pos[:, 1] > 1.1
    _force_part(a, 2, head)  # a: hair on the head
    _force_part(b, 3, top & ~head)  # b: an upper garment; no hair
    _force_part(b, 2, head & (model.anchor_pos[:, 2] < 0))  # b: hair at the back only
    G = model.cfg.num_gaussians
    n_hair = int((a.parts == 2).sum())
    plain = a.drive(_frame(model))
    hidden = a.drive(_frame(model, hair={"visible": False}))
    assert hidden.num == G - n_hair and not (hidden.parts == 2).any()
    dim = a.drive(_frame(model, hair={"brightness": 0.5}))
    hair = plain.parts == 2
    torch.testing.assert_close(sh0_to_rgb(dim.sh[hair, 0]), 0.5 * sh0_to_rgb(plain.sh[hair, 0]), atol=1e-5, rtol=1e-5)
    assert torch.equal(dim.sh[~hair], plain.sh[~hair])
    theirs = b.drive(_frame(model))
    swapped = swap_parts(plain, {2: theirs})  # what the studio does with a part taken from another avatar
    assert int((swapped.parts == 2).sum()) == int((theirs.parts == 2).sum())
    assert torch.equal(swapped.means[swapped.parts == 2], theirs.means[theirs.parts == 2])
    assert torch.equal(swapped.means[swapped.parts != 2], plain.means[~hair])
    pose = torch.randn(7, 3) * 0.5
    b.loosen("upper_garment", 0.0)
    tight = b.decode(pose).means
    b.loosen("upper_garment", 2.0)
    loose = b.decode(pose).means
    moved = (tight - loose).norm(dim=-1).reshape(-1, 4)
    garment = (b.parts == 3).reshape(-1, 4)
    assert moved[~garment].max() < 1e-6 and moved[garment].max() > 0
    by_frame = b.drive(_frame(model, pose, upper_garment={"looseness": 0.0})).means  # a frame's looseness
    torch.testing.assert_close(by_frame, tight)
    with pytest.raises(ValueError, match="unknown part"):
        a.loosen("cape", 1.0)


def test_neutral_lighting_gives_albedo_and_a_key_light_brightens(model):
    av = Avatar.create(model, body_crops=crops(1, model.cfg)[0], face_crops=crops(1, model.cfg)[1])
    base = av.decode().sh
    torch.testing.assert_close(base, av.canonical().sh, atol=1e-5, rtol=1e-5)
    lit = av.decode(lighting=Lighting(Lighting.neutral().env * 0.5, torch.tensor([0.0, 0.0, 1.0]), torch.ones(3))).sh
    front = av.canonical().means[:, 2] > 0.1
    dark = av.decode(lighting=Lighting(Lighting.neutral().env * 0.5)).sh
    assert (lit[front] >= dark[front] - 1e-6).all() and (lit[front] > dark[front] + 1e-3).any()


def test_config_survives_avatar_header(model):
    assert from_dict(ModelConfig, to_dict(model.cfg)) == model.cfg
    assert dataclasses.replace(model.cfg, name="x") != model.cfg
