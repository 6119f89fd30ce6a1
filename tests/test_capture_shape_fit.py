"""One body shape shared by all photos of a person (core.capture.shape_fit): the fit's body landmarks and shaped
rest body are the body model's, a synthetic person of known non-template shape (rendered through the capture
assistant's own silhouettes, landmarks placed as the tracker's skeleton places them) pulls the one shared shape
towards the truth while every photo's silhouette IoU rises, the silhouette term raises IoU beyond what the landmarks
alone give, a clothed person (mask wider than the body) is covered by the clothing allowance rather than by a heavier
phenotype, a photo with a bad mask cannot drag it past its bound, and creation through the capture assistant (one
photo or two) carries the shape into every estimate."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from core.capture.garment import GARMENT_REGIONS, garment_offsets
from core.capture.photo_fit import body_silhouette, fit_photo, mask_iou, refit_photo
from core.capture.shape_fit import (
    PhotoTarget,
    ShapeFitConfig,
    fit_shared_shape,
    landmark_ids,
    landmarks_uv,
    shaped_rest,
)
from core.model.crops import BodyEstimate
from core.raster.types import Camera

SIZE = (160, 120)  # (H, W) of the synthetic photos
FAST = ShapeFitConfig(rounds=2, pose_steps=10)
NAKED = dataclasses.replace(FAST, garment=0.0)  # no clothing allowance: the shape alone meets the outline
POSED = {"root": 0.3, "upperarm01.L": 0.5, "upperarm01.R": 0.5, "lowerarm01.L": 0.4, "upperleg01.L": 0.3,
         "lowerleg01.R": 0.3, "spine03": 0.15}  # fmt: skip


@pytest.fixture(scope="module")
def rig():
    from core.model.rig import rig_from_body_asset

    return rig_from_body_asset()


def _skeleton(rig, shape: torch.Tensor):
    """The tracker's skeleton (reference-pose bone heads) of the body with `shape` [S]."""
    from core.tracking.body_skeleton import Skeleton

    names = list(rig.phenotype.bone_names)
    _, rest_poses = rig.rest(shape[None])
    _, W = rig.pose(torch.eye(3).expand(1, len(names), 3, 3), rig.chain(rest_poses))
    return Skeleton(tuple(names), rig.parents, W[0, :, :3, 3].double().numpy())


def _photo(rig, shape: torch.Tensor, seed: int):
    """A photo of the body with `shape` in a random pose: (true estimate, landmarks [33, 4], world landmarks
    [33, 3] as the tracker gives them, person mask [H, W])."""
    from core.body.frame import BodyArrays
    from core.data.video_fit import R_CAM_WORLD, assumed_intrinsics, landmarks_of_body, project_points
    from core.tracking.body_landmarks import HIP, world_to_mediapipe

    rng = np.random.default_rng(seed)
    names = list(rig.phenotype.bone_names)
    pose = np.zeros((len(names), 3))
    for n, s in POSED.items():
        pose[names.index(n)] = rng.normal(0, s, 3)
    pose[0, 1] = rng.uniform(-0.6, 0.6)
    H, W = SIZE
    K = assumed_intrinsics((W, H), 1.2)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R_CAM_WORLD, [0.0, 0.9, 4.0]
    params = rig.neutral_params(1).with_(shape=shape[None].float(), rotations=torch.tensor(pose[None]).float())
    est = BodyEstimate(params, Camera(torch.tensor(K).float(), torch.tensor(T).float(), W, H))
    pts = landmarks_of_body(_skeleton(rig, shape), BodyArrays(pose, np.zeros(52), np.zeros(2), np.zeros(3)))
    uv = project_points(pts, K, T) / np.array([W, H])
    landmarks = np.concatenate([uv, np.zeros((33, 1)), np.ones((33, 1))], 1).astype(np.float32)
    world = world_to_mediapipe(pts - (pts[HIP["L"]] + pts[HIP["R"]]) / 2)
    return est, landmarks, world, body_silhouette(rig, est, SIZE)


def _own_fits(rig, shape: torch.Tensor, seeds):
    """Each photo's own landmark fit (template shape), as the capture assistant makes it, with its mask."""
    H, W = SIZE
    out = []
    for s in seeds:
        _, lm, world, mask = _photo(rig, shape, s)
        out.append((fit_photo(rig, SIZE, (0, 0, W, H), "front", lm, world, mask), mask))
    return out


def test_body_landmarks_are_where_the_trackers_skeleton_puts_them(rig):
    from core.body.frame import BodyArrays
    from core.data.video_fit import landmarks_of_body, project_points
    from core.tracking.body_skeleton import default_skeleton

    est, *_ = _photo(rig, rig.default_shape, 3)
    cam = est.camera
    pose = est.params.rotations[0].double().numpy()
    pts = landmarks_of_body(default_skeleton(), BodyArrays(pose, np.zeros(52), np.zeros(2), np.zeros(3)))
    want = project_points(pts, cam.K.double().numpy(), cam.T_cam_world.double().numpy())
    ids = list(landmark_ids())
    np.testing.assert_allclose(landmarks_uv(rig, est)[ids], want[ids], atol=1e-2)
    assert np.isnan(landmarks_uv(rig, est)[32]).all(), "landmarks the fit does not use are NaN"


def test_shaped_rest_is_the_bodys_and_has_finite_gradients(rig):
    from core.body.lbs import axis_angle_to_matrix, polar_rotation, special_procrustes

    shape = torch.tensor([0.2, 0.6, 0.3, 0.9, 0.7, 0.2], requires_grad=True)
    verts, frames = shaped_rest(rig, shape)
    want_v, want_f = rig.rest(shape.detach()[None])
    torch.testing.assert_close(verts, want_v)
    torch.testing.assert_close(frames, want_f, atol=1e-5, rtol=0)
    (grad,) = torch.autograd.grad(verts.square().sum() + frames.square().sum(), shape)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0  # the SVD's gradient here is NaN
    M = axis_angle_to_matrix(torch.randn(8, 3, dtype=torch.float64)) * torch.rand(8, 3, 1, dtype=torch.float64).add(0.5)
    torch.testing.assert_close(polar_rotation(M), special_procrustes(M))


def test_joint_fit_pulls_one_shared_shape_towards_a_known_one_and_every_iou_rises(rig):
    truth = torch.tensor([0.5, 0.5, 0.5, 0.9, 0.5, 0.5])  # a heavier body than the template
    own = _own_fits(rig, truth, (0, 1))
    targets = [PhotoTarget(f.estimate, f.landmarks, m, f.person_px) for f, m in own]
    result = fit_shared_shape(rig, targets, NAKED)
    template = rig.default_shape
    assert result.garment is None
    assert (result.shape - truth).norm() < (template - truth).norm() - 0.03, result.shape
    assert ((result.shape - template).abs() <= FAST.bound + 1e-6).all()
    for est, (fit, mask) in zip(result.estimates, own, strict=True):
        torch.testing.assert_close(est.shape, result.shape)  # one shape for all photos
        refit = refit_photo(rig, fit, est, mask)
        assert refit.iou > fit.iou + 0.02 and refit.reproj_px < fit.reproj_px, refit.summary()
        assert refit.before is fit and "->" in refit.summary()
    assert sum(result.after.values()) < sum(result.before.values())


def test_the_silhouette_term_raises_iou_beyond_the_landmarks_alone(rig):
    truth = torch.tensor([0.5, 0.5, 0.5, 0.9, 0.5, 0.5])
    own = []
    for s in (2, 3):  # the tracker does not see the elbows and wrists: only the person mask can place the arms
        _, lm, world, mask = _photo(rig, truth, s)
        lm[[13, 14, 15, 16], 3] = 0.0
        own.append((fit_photo(rig, SIZE, (0, 0, SIZE[1], SIZE[0]), "front", lm, world, mask), mask))
    targets = [PhotoTarget(f.estimate, f.landmarks, m, f.person_px) for f, m in own]
    with_sil = fit_shared_shape(rig, targets, NAKED)
    without = fit_shared_shape(rig, targets, dataclasses.replace(NAKED, silhouette=0.0))
    for a, b, (fit, mask) in zip(with_sil.estimates, without.estimates, own, strict=True):
        iou_with, iou_without = refit_photo(rig, fit, a, mask).iou, refit_photo(rig, fit, b, mask).iou
        assert iou_with > max(iou_without, fit.iou) + 0.05, (fit.iou, iou_without, iou_with)


def test_the_clothing_allowance_pushes_the_surface_outwards(rig):
    est, *_ = _photo(rig, rig.default_shape, 4)
    body = body_silhouette(rig, est, SIZE) > 127
    zero = np.zeros(len(GARMENT_REGIONS), np.float32)
    np.testing.assert_array_equal(body_silhouette(rig, est, SIZE, zero) > 127, body)
    clothed = body_silhouette(rig, est, SIZE, np.full(len(GARMENT_REGIONS), 0.03, np.float32)) > 127
    assert clothed[body].mean() > 0.99 and clothed.sum() > 1.15 * body.sum()  # covers the body, and more of it
    torso = np.zeros(len(GARMENT_REGIONS), np.float32)
    torso[list(GARMENT_REGIONS).index("torso")] = 0.05
    off = garment_offsets(rig, torso).norm(dim=-1)  # [V] metres
    head = rig.weights[:, list(rig.phenotype.bone_names).index("head")] > 0.99
    assert off.max() <= 0.05 + 1e-6 and off[head].max() < 1e-6  # only the torso's skin moves


def test_clothes_go_into_the_allowance_not_into_a_heavier_body(rig):
    own = _own_fits(rig, rig.default_shape, (0, 1))  # the template's body ...
    loose = [cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))) for _, m in own]  # ... clothed
    targets = [PhotoTarget(f.estimate, f.landmarks, m, f.person_px) for (f, _), m in zip(own, loose, strict=True)]
    naked = fit_shared_shape(rig, targets, NAKED)
    dressed = fit_shared_shape(rig, targets, FAST)
    g = dressed.garment
    assert g is not None and g.shape == (len(GARMENT_REGIONS),) and float(g.max()) > 0.01, g
    bounds = torch.tensor([b for _, b in GARMENT_REGIONS.values()])
    assert ((g >= 0) & (g <= bounds + 1e-6)).all()
    template = rig.default_shape
    assert (dressed.shape - template).norm() < (naked.shape - template).norm(), (dressed.shape, naked.shape)
    for a, b, (fit, _), mask in zip(naked.estimates, dressed.estimates, own, loose, strict=True):
        bare, covered = refit_photo(rig, fit, a, mask), refit_photo(rig, fit, b, mask, g.numpy())
        assert covered.iou > bare.iou + 0.02, (bare.iou, covered.iou)
        assert covered.iou_body < covered.iou and "clothing" in covered.summary()


def test_a_photo_with_a_bad_mask_cannot_drag_the_shape_past_its_bound(rig):
    truth = torch.tensor([0.5, 0.5, 0.5, 0.9, 0.5, 0.5])
    own = _own_fits(rig, truth, (0, 1))
    (bad_fit, bad_mask), good = own[1], own[0]
    fat = cv2.dilate(bad_mask, np.ones((41, 41), np.uint8))  # a segmentation that took in the background
    targets = [PhotoTarget(f.estimate, f.landmarks, m, f.person_px) for f, m in (good, (bad_fit, fat))]
    result = fit_shared_shape(rig, targets, FAST)
    moved = (result.shape - rig.default_shape).abs()
    assert (moved <= FAST.bound + 1e-6).all(), result.shape
    good_iou = mask_iou(body_silhouette(rig, result.estimates[0], SIZE), good[1])
    assert good_iou > good[0].iou, "the good photo's fit still improves"


class _Finder:
    """A stand-in person finder that returns the synthetic person's landmarks and mask."""

    def __init__(self, found: dict) -> None:
        self.found = found  # photo sum -> PersonFound

    def __call__(self, rgb):
        return self.found[int(rgb.sum())]


def _creation_photos(rig, tmp_path, monkeypatch, count: int):  # -> (found by the _Finder, photo paths, model)
    """`count` photos of one synthetic person (the same shape) written to tmp_path, what a person finder finds on
    each, and a tiny creation model and the test rig patched into the capture assistant."""
    from core.capture import photos
    from core.data.person import PersonFound
    from core.model.config import load_model_config
    from core.model.model import LCAModel

    torch.manual_seed(0)
    model = LCAModel(load_model_config("tiny"), rig).eval()
    monkeypatch.setattr(photos, "creation_model", lambda: (model, "tiny test model"))
    monkeypatch.setattr(photos, "_fit_rig", lambda: rig)
    truth = torch.tensor([0.5, 0.5, 0.5, 0.9, 0.5, 0.5])
    found, paths = {}, []
    for s in range(count):
        _, lm, world, mask = _photo(rig, truth, s)
        rgb = np.where(mask[..., None] > 0, np.array([200, 80, 40], np.uint8), np.uint8(30 + s))
        ys, xs = np.nonzero(mask)
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        found[int(rgb.sum())] = PersonFound(box, None, lm, world, "pose", 1.0, mask, "front", 0.0, {"legs": True})
        paths.append(str(tmp_path / f"p{s}.png"))
        cv2.imwrite(paths[-1], cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return found, paths, model


def test_creation_carries_the_shared_shape_from_one_photo_or_two(rig, tmp_path, monkeypatch):
    from core.capture import photos

    found, paths, model = _creation_photos(rig, tmp_path, monkeypatch, 2)
    for n in (1, 2):
        assistant = photos.CaptureAssistant(detector=_Finder(found))
        assistant.shape_config = ShapeFitConfig(rounds=1, pose_steps=6, steps=6)  # creation, not the fit, is tested
        for p in paths[:n]:
            assistant.add(p)
        own = [c.fit for c in assistant.checks]
        created = assistant.create()
        assert created.avatar is not None and created.name == f"from {n} photo{'s' if n > 1 else ''}"
        assert assistant.shape is not None and not torch.equal(assistant.shape, rig.default_shape)
        for c, before in zip(assistant.checks, own, strict=True):
            assert c.fit.before is before and c.fit.iou > before.iou
            torch.testing.assert_close(c.estimate.shape, assistant.shape)
        # The avatar's body is the shared shape's: its rest anchors are the shaped body's, not the template's.
        want, *_ = model.shaped_rest(assistant.shape[None], 1)
        torch.testing.assert_close(created.avatar.state.anchors, want[0])
        again = assistant.fit_shape()  # starts again from the photos' own fits, not from the last refit
        assert all(c.fit.before is b for c, b in zip(assistant.checks, own, strict=True)) and again is not None


def test_create_refine_refines_through_the_shared_shape_fit(rig, tmp_path, monkeypatch):
    """`main.py create --refine`: the photos are refined through the poses, cameras and shape the shared fit left
    them with (not through their own fits, from before creation)."""
    import argparse

    from core.capture import cli
    from core.data import person

    found, paths, _ = _creation_photos(rig, tmp_path, monkeypatch, 3)
    monkeypatch.setattr(person, "PersonFinder", lambda: _Finder(found))
    seen = {}

    def refine(avatar, refs, steps, holdout):
        seen["refs"] = refs
        return avatar, None

    monkeypatch.setattr(cli, "_refine", refine)
    parser = argparse.ArgumentParser()
    run = cli.add_create_cli(parser)
    assert run(parser.parse_args([*paths, "--refine", "1", "--out", str(tmp_path / "a.safetensors")])) == 0
    refs = seen["refs"]
    assert len(refs) == 3
    shape = refs.estimates[0].params.shape[0]
    assert not torch.equal(shape, rig.default_shape.to(shape))  # the shared shape, not the template's
    for est in refs.estimates:
        torch.testing.assert_close(est.params.shape[0], shape)
