import dataclasses

import pytest
import torch

from core.model.avatar import Avatar
from core.model.config import load_model_config
from core.model.crops import BodyEstimate, crop_inputs
from core.model.deformer import NodeMotion, arap_energy
from core.model.model import LCAModel
from core.model.personalise import personalise
from core.model.rig import toy_rig
from core.model.skinning import axis_angle_to_matrix, matrix_to_quat, quat_to_matrix
from core.raster.types import Camera


def _fk_reference(R_local, joints, parents):
    """Joint-by-joint kinematic chain, written the plain way."""
    J = len(parents)
    G = [None] * J
    for j in range(J):
        T = torch.eye(4, dtype=R_local.dtype)
        T[:3, :3] = R_local[j]
        T[:3, 3] = joints[j] - (joints[parents[j]] if parents[j] >= 0 else 0)
        G[j] = T if parents[j] < 0 else G[parents[j]] @ T
    out = []
    for j in range(J):
        rest = torch.eye(4, dtype=R_local.dtype)
        rest[:3, 3] = -joints[j]
        out.append(G[j] @ rest)
    return torch.stack(out)


def test_toy_rig_posed_through_core_body_matches_the_joint_by_joint_chain():
    rig = toy_rig(dtype=torch.float64)
    R = axis_angle_to_matrix(torch.randn(7, 3, dtype=torch.float64))
    T, W = rig.pose(R[None], rig.chain(rig.rest_poses), torch.tensor([[0.1, -0.2, 0.3]], dtype=torch.float64))
    want = _fk_reference(R, rig.rest_joints, rig.parents)
    want[:, :3, 3] += torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    torch.testing.assert_close(T[0], want)
    torch.testing.assert_close(W[0, :, :3, 3], (want[:, :3, :3] @ rig.rest_joints[..., None])[..., 0] + want[:, :3, 3])


def test_toy_rig_linear_shape_moves_vertices_and_bone_heads_together():
    rig = toy_rig(dtype=torch.float64)
    shape = torch.tensor([[0.5, -0.3]], dtype=torch.float64)
    verts, poses = rig.rest(shape)
    torch.testing.assert_close(verts[0], rig.vertices + torch.einsum("s,svc->vc", shape[0], rig.shape_basis))
    torch.testing.assert_close(
        poses[0, :, :3, 3], rig.rest_joints + torch.einsum("s,sjc->jc", shape[0], rig.shape_joint_basis)
    )
    torch.testing.assert_close(poses[0, :, :3, :3], rig.rest_poses[:, :3, :3])


def test_matrix_quaternion_round_trip_covers_every_branch():
    aa = torch.randn(500, 3, dtype=torch.float64) * 2.0
    aa[:4] = torch.tensor([[3.1, 0, 0], [0, 3.1, 0], [0, 0, 3.1], [0, 0, 0]], dtype=torch.float64)
    R = axis_angle_to_matrix(aa)
    torch.testing.assert_close(quat_to_matrix(matrix_to_quat(R)), R, atol=1e-9, rtol=1e-9)


def test_arap_is_zero_for_a_rigid_motion_of_all_nodes():
    pos = torch.randn(10, 3, dtype=torch.float64)
    edges = torch.tensor([[i, (i + 1) % 10] for i in range(10)])
    rv = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    R = axis_angle_to_matrix(rv).expand(10, 3, 3)
    t = pos @ R[0].T - pos + torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)  # x' = R p + c
    motion = NodeMotion(rotvec=rv.expand(10, 3), translation=t)
    assert arap_energy(pos, R, motion.translation, edges) < 1e-20
    assert arap_energy(pos, R, torch.randn(10, 3, dtype=torch.float64), edges) > 1e-3


def _scene(rig, n=2, size=48):
    cams = [Camera.look_at((2.5 * torch.sin(torch.tensor(a)).item(), 1.0, 2.5 * torch.cos(torch.tensor(a)).item()),
                           (0.0, 0.9, 0.0), width=size, height=size) for a in (0.0, 0.8)[:n]]  # fmt: skip
    params = rig.neutral_params(len(cams)).with_(shape=torch.tensor([[0.1, 0.0]]).expand(len(cams), 2))
    return BodyEstimate.split(params, cams)


def test_crops_frame_the_person_and_the_head():
    rig, cfg = toy_rig(), load_model_config("tiny").encoder
    ests = _scene(rig, n=1, size=96)
    image = torch.zeros(3, 96, 96)
    head = rig.rest(ests[0].params.shape)[1][0, 4, :3, 3]  # the shaped head joint (reference pose = rest here)
    uv = ests[0].camera.K @ (ests[0].camera.T_cam_world[:3, :3] @ head + ests[0].camera.T_cam_world[:3, 3])
    u, v = int(uv[0] / uv[2]), int(uv[1] / uv[2])
    image[:, v - 2 : v + 2, u - 2 : u + 2] = 1.0  # a bright patch at the head joint
    body, face = crop_inputs([image], ests, rig, cfg)
    assert body.shape == (1, 3, 64, 48) and face.shape == (1, 3, 32, 32)
    c = face[0, 0, 12:20, 12:20].mean()
    assert c > 0.2 and face[0, 0, :4].mean() < c  # the head joint sits at the face crop's centre


def test_body_estimate_rejects_batched_params_and_splits_a_batch():
    rig = toy_rig()
    cam = Camera.look_at((0.0, 1.0, 2.5), (0.0, 0.9, 0.0), width=16, height=16)
    try:
        BodyEstimate(rig.neutral_params(2), cam)
    except ValueError as e:
        assert "batch of 1" in str(e) or "batch 1" in str(e)
    else:
        raise AssertionError("a batch of 2 was accepted as one photo's estimate")
    ests = BodyEstimate.split(rig.neutral_params(3).with_(translation=torch.arange(9.0).view(3, 3)), [cam] * 3)
    assert len(ests) == 3 and ests[2].translation.tolist() == [6.0, 7.0, 8.0] and ests[1].pose.shape == (7, 3)


def _tiny_avatar(images: torch.Tensor):
    """(model, the scene's two estimates, a tiny avatar made from `images` [2, 3, 24, 24]) for the refinement tests."""
    torch.manual_seed(0)
    rig = toy_rig()
    cfg = load_model_config("tiny", {"tokens": {"num_anchors": 32}, "heads": {"gaussians_per_anchor": 2}})
    model = LCAModel(cfg, rig).eval()
    ests = _scene(rig, size=24)
    body, face = crop_inputs(list(images), ests, rig, cfg.encoder)
    return model, ests, Avatar.create(model, body_crops=body, face_crops=face)


def test_personalise_lowers_the_photo_loss():
    images = torch.zeros(2, 3, 24, 24)
    images[:, 0] = 0.8  # the person should render red on black
    model, ests, av = _tiny_avatar(images)
    refined, losses = personalise(av, images, ests, steps=10, lr=0.05)
    assert sum(losses[-4:]) < sum(losses[:4]) * 0.9
    assert refined.state.canonical.albedo[..., 0].mean() > av.state.canonical.albedo[..., 0].mean()


def test_personalise_leaves_the_shared_model_without_gradients_and_unchanged():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 24, 24)
    model, ests, av = _tiny_avatar(images)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    refined, _ = personalise(av, images, ests, steps=2, lr=0.05)
    with_grad = [n for n, p in model.named_parameters() if p.grad is not None]
    assert not with_grad, f"personalising left gradients on the shared model: {with_grad}"
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"personalising changed the shared model's {k}"
    assert refined.model is model, "the refined avatar drives with the same (shared) model"
    assert all(p.requires_grad for p in model.parameters()), "the shared model's own flags are left alone"


def test_personalise_with_masks_fits_coverage_so_dark_stray_gaussians_do_not_survive():
    """On black, a dark Gaussian off the person costs nothing in colour; with the person masks its coverage does."""
    from core.model.personalise import render_through

    images = torch.zeros(2, 3, 24, 24)  # nothing but black where the avatar is
    model, ests, av = _tiny_avatar(images)
    can = av.state.canonical  # a black avatar: on black it is already right in colour
    av = Avatar(model, dataclasses.replace(av.state, canonical=dataclasses.replace(can, albedo=can.albedo * 0.0)))
    coverage = lambda a: sum(float(render_through(a, e)[1].sum()) for e in ests)  # noqa: E731
    colour_only, _ = personalise(av, images, ests, steps=12, lr=0.05)
    with_masks, _ = personalise(av, images, ests, steps=12, lr=0.05, masks=torch.zeros(2, 24, 24))
    assert coverage(av) > 1.0, "the test avatar covers no pixel to begin with"
    assert coverage(colour_only) > 0.95 * coverage(av), "on black, colour alone already charged the dark avatar"
    assert coverage(with_masks) < 0.7 * coverage(av), "the masks' empty silhouettes did not clear the dark avatar"
    with pytest.raises(ValueError, match="masks"):
        personalise(av, images, ests, steps=1, masks=torch.zeros(2, 12, 12))


def test_off_person_gaussians_are_found_by_their_coverage_and_pruned():
    """Every Gaussian a view sees lies off an empty mask (share 1) and on a full one (share 0); unseen ones are
    nan; pruning above the threshold leaves nothing to render, and nothing when all lie on the person."""
    from core.model.personalise import off_person_share, prune_off_person, render_through

    torch.manual_seed(0)
    model, ests, av = _tiny_avatar(torch.rand(2, 3, 24, 24))
    off = off_person_share(av, ests, torch.zeros(2, 24, 24))
    on = off_person_share(av, ests, torch.ones(2, 24, 24))
    seen = ~torch.isnan(off)
    assert off.shape == av.state.canonical.opacity_logits.shape and seen.float().mean() > 0.5
    assert torch.allclose(off[seen], torch.ones(())) and torch.allclose(on[seen], torch.zeros(()))
    cleared, n = prune_off_person(av, off)
    assert n == int(seen.sum())
    assert all(float(render_through(cleared, e)[1].max()) < 1e-3 for e in ests), "a pruned Gaussian still shows"
    kept, n_kept = prune_off_person(av, on)
    assert n_kept == 0 and torch.equal(kept.state.canonical.opacity_logits, av.state.canonical.opacity_logits)
    padding = off_person_share(av, ests, torch.zeros(2, 24, 24), valid=torch.zeros(2, 24, 24, dtype=torch.bool))
    assert torch.isnan(padding).all(), "a Gaussian seen only in letterbox padding is unseen, not off the person"
    with pytest.raises(ValueError, match="masks"):
        off_person_share(av, ests, torch.zeros(3, 24, 24))


def test_personalise_leaves_pixels_outside_valid_out_of_colour_and_silhouette():
    """Letterbox padding is no evidence: an avatar that covers only invalid pixels gets no gradient from the colour
    and silhouette terms (unchanged), while the same views without `valid` pull it towards their empty pixels."""
    from core.model.personalise import render_through

    torch.manual_seed(0)
    images = torch.rand(2, 3, 24, 24)
    model, ests, av = _tiny_avatar(images)
    alpha = torch.stack([render_through(av, e)[1] for e in ests])  # [2, 24, 24]
    valid = alpha == 0  # valid only where the avatar puts nothing
    assert valid.any() and (~valid).float().mean() > 0.1, "the test avatar must cover some pixels and leave some"
    kw = dict(steps=4, lr=0.05, acap_weight=0.0, masks=torch.zeros(2, 24, 24))
    padded, losses = personalise(av, images, ests, valid=valid, **kw)
    can, new = av.state.canonical, padded.state.canonical
    for k in ("offsets", "albedo", "opacity_logits", "quats", "log_scales"):
        assert torch.equal(getattr(new, k), getattr(can, k)), f"invalid pixels moved the avatar's {k}"
    whole, _ = personalise(av, images, ests, **kw)
    assert not torch.equal(whole.state.canonical.opacity_logits, can.opacity_logits), "the test cannot fail"
    with pytest.raises(ValueError, match="valid"):
        personalise(av, images, ests, steps=1, valid=torch.ones(2, 12, 12, dtype=torch.bool))
