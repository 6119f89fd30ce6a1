"""The avatar model poses and shapes its anchors exactly as core.body's BodyModel poses and shapes the body."""

import dataclasses

import pytest
import torch

from core.body.model import BodyModel
from core.body.records import BodyParams
from core.model.appearance import Lighting
from core.model.config import load_model_config
from core.model.crops import BodyEstimate, posed_joints
from core.model.drive import drive_gaussians
from core.model.model import LCAModel
from core.model.rig import rig_from_body_asset
from core.model.tokens import interpolate
from core.raster.types import Camera


@pytest.fixture(scope="module")
def body():
    return BodyModel("baked")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = load_model_config("tiny", {"tokens": {"num_anchors": 96}, "heads": {"gaussians_per_anchor": 2}})
    m = LCAModel(cfg, rig_from_body_asset()).eval()
    with torch.no_grad():
        m.pose_head.out.weight.zero_()  # no pose-dependent offsets: Gaussians stay on their anchors
    return m


def random_params(body: BodyModel, batch: int, seed: int) -> BodyParams:
    g = torch.Generator().manual_seed(seed)
    p = body.neutral_params(batch)
    return p.with_(
        shape=0.1 + 0.8 * torch.rand(p.shape.shape, generator=g),  # far from the default 0.5
        rotations=0.4 * torch.randn(p.rotations.shape, generator=g),
        expression=torch.rand(p.expression.shape, generator=g) * (torch.rand(p.expression.shape, generator=g) < 0.3),
        gaze=0.3 * torch.randn(batch, 2, generator=g),
        translation=0.5 * torch.randn(batch, 3, generator=g),
    )


def zero_offsets(state):
    can = state.canonical
    return dataclasses.replace(state, canonical=dataclasses.replace(can, offsets=torch.zeros_like(can.offsets)))


def test_driven_anchors_land_on_the_posed_body_surface(body, model):
    B = 3
    params = random_params(body, B, seed=1)
    cfg = model.cfg
    crops = (torch.rand(B, 1, 3, *cfg.encoder.body_crop), torch.rand(B, 1, 3, *cfg.encoder.face_crop))
    with torch.no_grad():
        states = model(*crops, params.shape)
        want = body(params).vertices  # [B, V, 3]
    a, A, K = model.anchors, cfg.tokens.num_anchors, cfg.heads.gaussians_per_anchor
    for b in range(B):
        with torch.no_grad():
            g = drive_gaussians(
                model,
                zero_offsets(states.select(b)),
                params.rotations[b],
                params.expression[b],
                params.gaze[b],
                Lighting.neutral(),
                params.translation[b],
            ).gaussians
        surface = interpolate(want[b], body.faces, a.face_idx, a.bary)  # [A, 3]
        err = (g.means.view(A, K, 3) - surface[:, None]).abs().max()
        assert err < 1e-4, f"identity {b}: Gaussians are {float(err):.2e} m off the posed body surface"


def test_identity_shape_follows_the_body_phenotype(body, model):
    params = random_params(body, 2, seed=2)
    neutral = body.neutral_params(2)
    with torch.no_grad():
        anchors, rest_poses, _ = model.shaped_rest(params.shape, 2)
        rest = body.impl.rest(params.shape, params.expression.new_zeros(params.expression.shape))
        default_anchors, _, _ = model.shaped_rest(neutral.shape, 2)
    torch.testing.assert_close(anchors, interpolate(rest[0], body.faces, model.anchors.face_idx, model.anchors.bary))
    torch.testing.assert_close(rest_poses, rest[1])
    assert (anchors - default_anchors).abs().max() > 0.01  # the shape really changes the body


def test_crops_use_the_body_joints_of_the_estimate(body, model):
    params = random_params(body, 1, seed=3)
    cam = Camera.look_at((0.0, 1.0, 3.0), (0.0, 0.9, 0.0), width=32, height=32)
    with torch.no_grad():
        joints = posed_joints(model.rig, BodyEstimate(params, cam))
        want = body(params).joints[0]
    torch.testing.assert_close(joints, want, atol=1e-5, rtol=0)
