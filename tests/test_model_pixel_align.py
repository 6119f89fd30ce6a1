"""The pixel-aligned appearance path: anchors projected into reference crops, pooled samples, the zero-initialised
token projection, the albedo prior, a training step with it, and initialising from a checkpoint without it."""

import dataclasses

import pytest
import torch

from core.body.lbs import skin_points
from core.io import FileFormatError
from core.model.config import ModelConfig, TokensConfig, load_model_config
from core.model.crops import BodyEstimate, crop_views, fit_crop_matrix, fit_crops
from core.model.model import LCAModel
from core.model.pixel_align import ReferenceViews, pool_views, project_anchors, reference_uv
from core.model.rig import rig_from_body_asset
from core.raster.types import Camera
from core.train.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def rig():
    return rig_from_body_asset()


def _cfg(pixel: bool, albedo: float = 1.0) -> ModelConfig:
    cfg = load_model_config("tiny")
    return dataclasses.replace(cfg, tokens=dataclasses.replace(cfg.tokens, pixel_aligned=pixel, pixel_albedo=albedo))


def _estimates(rig, n: int) -> list[BodyEstimate]:
    """n photos of a posed body from cameras around it (yaw 0, 90, 180, ... degrees)."""
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(n):
        p = rig.neutral_params(1)
        rot = p.rotations.clone()
        rot[0, 1:] = 0.15 * torch.randn(rot.shape[1] - 1, 3, generator=g)
        p = p.with_(rotations=rot, translation=torch.tensor([[0.1 * i, 0.0, 0.0]], dtype=rot.dtype))
        yaw = torch.tensor(i * torch.pi / 2)
        eye = (0.1 * i + 3.0 * float(torch.sin(yaw)), 1.0, 3.0 * float(torch.cos(yaw)))
        cam = Camera.look_at(eye, (0.1 * i, 0.9, 0.0), width=96, height=128)
        out.append(BodyEstimate(p, cam))
    return out


def _views(rig, ests, cfg: ModelConfig) -> ReferenceViews:
    return crop_views(ests, rig, cfg.encoder)


def test_projected_anchors_land_on_the_posed_body_in_each_crop(rig):
    cfg = _cfg(True)
    model = LCAModel(cfg, rig)
    ests = _estimates(rig, 4)
    views = _views(rig, ests, cfg)
    H, W = cfg.encoder.body_crop
    _, rest_poses, support = model.shaped_rest(None, 1)
    uv, weight = reference_uv(model, support, rest_poses, views.map(lambda t: t[None]), (H, W))
    assert uv.shape == (1, 4, cfg.tokens.num_anchors, 2) and weight.shape == (1, 4, cfg.tokens.num_anchors)
    for i, est in enumerate(ests):
        # The body's silhouette in the crop, from the rig's own posing of every vertex (an independent path).
        rot = rig.bone_rotations(est.params.rotations.float(), est.params.gaze.float())
        T, _ = rig.pose(rot, rig.chain(rig.rest_poses[None].float()), est.params.translation.float())
        verts = skin_points(rig.vertices[None].float(), rig.weights.float(), T)[0][0]
        cam = views.T_cam_world[i]
        pix = (verts @ cam[:3, :3].T + cam[:3, 3]) @ views.K[i].T
        pix = (pix[:, :2] / pix[:, 2:]).floor().long()
        mask = torch.zeros(H + 2, W + 2, dtype=torch.bool)
        ok = (pix[:, 0] >= 0) & (pix[:, 0] < W) & (pix[:, 1] >= 0) & (pix[:, 1] < H)
        for dy in (0, 1, 2):  # dilate by a pixel: vertices are sparse at this crop size
            for dx in (0, 1, 2):
                mask[pix[ok, 1] + dy, pix[ok, 0] + dx] = True
        mask = mask[1:-1, 1:-1]
        seen = weight[0, i] > 0
        assert seen.float().mean() > 0.3  # about half the body faces each camera
        px = ((uv[0, i, seen] + 1) / 2 * torch.tensor([W, H])).floor().long()
        on_body = mask[px[:, 1].clamp(0, H - 1), px[:, 0].clamp(0, W - 1)]
        assert on_body.float().mean() > 0.97


def test_anchors_facing_away_or_outside_the_crop_get_no_weight():
    points = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])  # [A=3, 3]
    normals = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    K = torch.tensor([[50.0, 0.0, 32.0], [0.0, 50.0, 32.0], [0.0, 0.0, 1.0]])
    T = torch.eye(4)
    T[2, 3] = 2.0  # camera 2 m in front (at z = -2), looking along +z
    uv, w = project_anchors(points, normals, K, T, (64, 64))
    torch.testing.assert_close(uv[0], torch.zeros(2))
    assert w[0] == pytest.approx(1.0) and w[1] == 0.0 and w[2] == 0.0


def test_pooled_samples_do_not_depend_on_the_order_of_the_references():
    g = torch.Generator().manual_seed(0)
    values, weight = torch.rand(2, 5, 7, 4, generator=g), torch.rand(2, 5, 7, generator=g)
    weight[:, :, 0] = 0.0  # anchor 0 seen by no view
    mean, seen = pool_views(values, weight)
    order = torch.tensor([3, 0, 4, 1, 2])
    mean2, seen2 = pool_views(values[:, order], weight[:, order])
    torch.testing.assert_close(mean, mean2)
    assert torch.equal(seen, seen2) and seen[:, 0].eq(0).all() and seen[:, 1:].eq(1).all()
    assert mean[:, 0].eq(0).all()
    expected = (values[:, :, 1] * weight[:, :, 1, None]).sum(1) / weight[:, :, 1].sum(1)[:, None]
    torch.testing.assert_close(mean[:, 1], expected)


def test_model_output_does_not_depend_on_the_order_of_the_references(rig):
    torch.manual_seed(0)
    cfg = _cfg(True)
    model = LCAModel(cfg, rig).eval()
    torch.nn.init.normal_(model.pixel_appearance.proj.weight, std=0.1)
    ests = _estimates(rig, 3)
    views = _views(rig, ests, cfg).map(lambda t: t[None])
    body = torch.rand(1, 3, 3, *cfg.encoder.body_crop)
    face = torch.rand(1, 3, 3, *cfg.encoder.face_crop)
    order = torch.tensor([2, 0, 1])
    with torch.no_grad():
        a = model(body, face, None, views).canonical
        b = model(body[:, order], face[:, order], None, views.map(lambda t: t[:, order])).canonical
    torch.testing.assert_close(a.albedo, b.albedo, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a.offsets, b.offsets, atol=1e-5, rtol=1e-4)


def test_zero_initialised_pixel_path_starts_where_the_model_without_it_is(rig):
    torch.manual_seed(0)
    off = LCAModel(_cfg(False), rig).eval()
    on = LCAModel(_cfg(True, albedo=0.0), rig).eval()
    missing = on.load_state_dict(off.state_dict(), strict=False).missing_keys
    assert sorted(missing) == [
        "pixel_appearance.albedo_gate",
        "pixel_appearance.proj.bias",
        "pixel_appearance.proj.weight",
    ]
    cfg = on.cfg
    views = _views(rig, _estimates(rig, 2), cfg).map(lambda t: t[None])
    body, face = torch.rand(1, 2, 3, *cfg.encoder.body_crop), torch.rand(1, 2, 3, *cfg.encoder.face_crop)
    with torch.no_grad():
        a, b = off(body, face), on(body, face, None, views)
    for k, v in a.tensors().items():
        torch.testing.assert_close(b.tensors()[k], v, atol=1e-6, rtol=1e-5)


def test_albedo_prior_gives_the_reference_colour_from_the_first_step(rig):
    torch.manual_seed(0)
    cfg = _cfg(True)
    on, off = LCAModel(cfg, rig).eval(), LCAModel(_cfg(False), rig).eval()
    ests = _estimates(rig, 4)
    views = _views(rig, ests, cfg).map(lambda t: t[None])
    red = torch.tensor([0.9, 0.1, 0.15])
    body = red.view(1, 1, 3, 1, 1).expand(1, 4, 3, *cfg.encoder.body_crop).clone()
    face = torch.rand(1, 4, 3, *cfg.encoder.face_crop)
    with torch.no_grad():
        c_on, c_off = on(body, face, None, views).canonical, off(body, face).canonical
        c_blind = on(body, face).canonical  # no views: the path sees nothing (warned)
    err_on = (c_on.albedo[0] - red).abs().mean(-1)  # [A, K]
    err_off = (c_off.albedo[0] - red).abs().mean(-1)
    assert err_on.median() < 0.05 and err_off.median() > 0.3
    torch.testing.assert_close(c_blind.albedo, c_off.albedo, atol=0.05, rtol=0)


def test_fit_crop_matrix_follows_fit_crops():
    img = torch.zeros(1, 1, 3, 40, 40)
    img[..., 25, 13] = 1.0  # pixel centre (13.5, 25.5)
    out = fit_crops(img, (32, 24))[0, 0, 0]
    M = fit_crop_matrix((40, 40), (32, 24))
    p = M @ torch.tensor([13.5, 25.5, 1.0])
    ys, xs = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(24) + 0.5, indexing="ij")
    centre = torch.stack([(xs * out).sum(), (ys * out).sum()]) / out.sum()
    torch.testing.assert_close(centre, p[:2], atol=0.3, rtol=0)


def test_training_step_with_the_pixel_path_reaches_its_projection(shards):
    from core.data.loader import LoaderConfig, ShardDataset, collate, to_float_images
    from core.train.config import LossConfig
    from core.train.step import TrainStep

    torch.manual_seed(0)
    model = LCAModel(_cfg(True), rig_from_body_asset())
    ds = ShardDataset(shards, cfg=LoaderConfig(num_refs=2, num_targets=1, crop_size=32, face_size=16), shuffle=False)
    batch = to_float_images(collate([next(iter(ds))]))
    out = TrainStep(model, LossConfig(perceptual=0.0), render_size=24, perceptual=None)(batch)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert model.pixel_appearance.proj.weight.grad.abs().sum() > 0
    assert model.pixel_appearance.albedo_gate.grad.abs() > 0


def test_init_from_a_checkpoint_without_the_pixel_path_and_strict_resume(rig, tmp_path):
    torch.manual_seed(0)
    off = LCAModel(_cfg(False), rig)
    path = save_checkpoint(tmp_path / "off.safetensors", model=off, step=5, config={})
    on = LCAModel(_cfg(True, albedo=0.0), rig)
    with pytest.raises(FileFormatError, match="missing"):
        load_checkpoint(path, model=on)  # resume: strict
    state = load_checkpoint(path, model=on, allow_missing=on.new_layer_prefixes)
    assert state.step == 5
    torch.testing.assert_close(on.canonical_head.mlp.out.weight, off.canonical_head.mlp.out.weight)
    assert on.pixel_appearance.proj.weight.abs().sum() == 0
    path_on = save_checkpoint(tmp_path / "on.safetensors", model=on, step=6, config={})
    with pytest.raises(FileFormatError, match="unexpected"):
        load_checkpoint(path_on, model=LCAModel(_cfg(False), rig), allow_missing=("pixel_appearance.",))


def test_pixel_albedo_needs_the_dual_decoder():
    from core.config import ConfigError
    from core.model.config import HeadsConfig

    with pytest.raises(ConfigError, match="dual"):
        ModelConfig(tokens=TokensConfig(pixel_aligned=True), heads=HeadsConfig(decoder="single"))
    ModelConfig(tokens=TokensConfig(pixel_aligned=True, pixel_albedo=0.0), heads=HeadsConfig(decoder="single"))


def test_example_files_carry_reference_views_to_a_pixel_aligned_model(rig, tmp_path):
    from core.model.examples import ExampleInputs, load_example, save_example

    cfg = _cfg(True)
    ests = _estimates(rig, 2)
    views = _views(rig, ests, cfg).cropped(fit_crop_matrix(tuple(cfg.encoder.body_crop), (64, 64)).inverse())
    ex = ExampleInputs("x", torch.full((2, 3, 64, 64), 200, dtype=torch.uint8), torch.zeros(2, 3, 32, 32, dtype=torch.uint8),
                       rig.default_shape.float(), "test", views)  # fmt: skip
    back = load_example(save_example(tmp_path / "x.safetensors", ex))
    torch.testing.assert_close(back.views.K, views.K)
    torch.manual_seed(0)
    avatar = back.create(LCAModel(cfg, rig).eval())
    assert (avatar.state.canonical.albedo - 200 / 255).abs().mean(-1).median() < 0.05


def test_hidden_anchors_and_anchors_outside_the_person_mask_take_no_colour():
    from core.model.pixel_align import visible_anchors

    # a wall of anchors 3 m away, and a smaller wall 0.3 m in front of its centre, seen by a camera at the origin
    ys, xs = torch.meshgrid(torch.linspace(-0.9, 0.9, 40), torch.linspace(-0.9, 0.9, 40), indexing="ij")
    back = torch.stack([xs.flatten(), ys.flatten(), torch.full((1600,), 3.0)], -1)
    front = back[(back[:, 0].abs() < 0.3) & (back[:, 1].abs() < 0.3)] * torch.tensor([0.9, 0.9, 0.9])
    pts = torch.cat([back, front])[None]
    uv = pts[..., :2] / pts[..., 2:] / 0.35  # a pinhole of half-width 0.35 in normalised units
    vis = visible_anchors(pts, uv, torch.eye(4)[None])[0]
    behind = (back[:, 0].abs() < 0.25) & (back[:, 1].abs() < 0.25)
    assert vis[1600:].all()  # the near wall is seen
    assert vis[:1600][behind].sum() == 0  # what it hides is not
    assert vis[:1600][(back[:, 0].abs() > 0.4) | (back[:, 1].abs() > 0.4)].all()  # the rest of the far wall is


def test_person_masks_gate_the_views(rig):
    cfg = _cfg(True)
    model = LCAModel(cfg, rig)
    ests = _estimates(rig, 2)
    views = _views(rig, ests, cfg).map(lambda t: t[None])
    H, W = cfg.encoder.body_crop
    _, rest_poses, support = model.shaped_rest(None, 1)
    _, w_all = reference_uv(model, support, rest_poses, views, (H, W))
    mask = torch.ones(1, 2, H, W)
    mask[:, 1] = 0  # the second photo's person mask is empty: it gives no colour
    mask[:, 0, :, : W // 2] = 0  # the first photo's left half is background
    uv, w = reference_uv(model, support, rest_poses, views.with_masks(mask), (H, W))
    assert w[0, 1].sum() == 0
    right = uv[0, 0, :, 0] > 0.1
    left = uv[0, 0, :, 0] < -0.1
    assert torch.allclose(w[0, 0, right], w_all[0, 0, right]) and w[0, 0, left].sum() == 0


def test_bone_trust_keeps_misplaced_regions_from_a_view(rig):
    cfg = _cfg(True)
    model = LCAModel(cfg, rig)
    views = _views(rig, _estimates(rig, 2), cfg).map(lambda t: t[None])
    H, W = cfg.encoder.body_crop
    _, rest_poses, support = model.shaped_rest(None, 1)
    _, w_all = reference_uv(model, support, rest_poses, views, (H, W))
    J = model.num_joints
    trust = torch.ones(1, 2, J)
    arm = [i for i, n in enumerate(rig_bone_names(rig)) if n.startswith(("lowerarm", "wrist", "finger", "metacarpal"))]
    trust[0, 0, arm] = 0  # the fit put the forearms and hands elsewhere in the first photo
    _, w = reference_uv(model, support, rest_poses, views.with_trust(trust), (H, W))
    on_arm = model.anchor_weights[:, arm].sum(-1) > 0.99
    assert on_arm.any() and w[0, 0, on_arm].sum() == 0 and torch.allclose(w[0, 1], w_all[0, 1])
    off_arm = model.anchor_weights[:, arm].sum(-1) < 1e-6
    assert torch.allclose(w[0, 0, off_arm], w_all[0, 0, off_arm])


def rig_bone_names(rig):
    from core.data.body_bridge import world_body

    names = list(world_body().bone_names)
    assert len(names) == len(rig.parents)
    return names


def test_bundle_examples_takes_any_identity_of_a_benchmark(tmp_path, bench_root):
    """`python -m core.eval.bundle_examples --only studio-test --index 1`: the second identity, its own name and file;
    an index past the benchmark writes nothing."""
    from core.data.benchmarks import load_benchmark, write_benchmark
    from core.data.synth import SynthConfig
    from core.eval.bundle_examples import examples_from_benchmarks, main
    from core.model.examples import load_example

    shards = write_benchmark(bench_root, "studio-test", 2, SynthConfig(32, 32, detail=0.08))
    (ex,) = examples_from_benchmarks(bench_root, 64, 32, index=1, benchmarks=("studio-test",))
    assert ex.name == "studio-test #1" and ex.source.startswith(shards[1].name)
    truth = torch.as_tensor(load_benchmark(shards[1])[0].arrays["est_shape"]).float()
    torch.testing.assert_close(ex.shape, truth)
    assert main(["--bench", str(bench_root), "--only", "studio-test", "--index", "1", "--out", str(tmp_path)]) == 0
    assert load_example(tmp_path / "studio-test-1.safetensors").name == "studio-test #1"
    assert examples_from_benchmarks(bench_root, 64, 32, index=5, benchmarks=("studio-test",)) == []
    with pytest.raises(ValueError, match="unknown benchmark"):
        examples_from_benchmarks(bench_root, index=0, benchmarks=("studio",))
