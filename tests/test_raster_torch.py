"""Pure-torch rasteriser: footprints, occlusion, compositing, background, depth, gradients."""

import math

import pytest
import torch

from core.raster import Camera, Gaussians, rasterize
from core.raster.torch_ref import TorchRasterSettings


def _camera(size=32, f=40.0, c=None, dtype=torch.float64) -> Camera:
    c = size / 2 if c is None else c
    K = torch.tensor([[f, 0, c], [0, f, c], [0, 0, 1]], dtype=dtype)
    return Camera(K, torch.eye(4, dtype=dtype), size, size)


def _gaussians(means, rgb, scale, opacity, dtype=torch.float64) -> Gaussians:
    means = torch.tensor(means, dtype=dtype)
    g = len(means)
    return Gaussians.from_rgb(
        means,
        torch.tensor(rgb, dtype=dtype),
        torch.full((g, 3), float(scale), dtype=dtype),
        torch.tensor(opacity, dtype=dtype),
    )


def test_isotropic_gaussian_footprint_matches_analytic_2d_gaussian():
    f, z, s, op = 40.0, 2.0, 0.05, 0.8
    cam = _camera(size=32, f=f, c=16.5)  # principal point on pixel (16, 16)'s centre
    out = rasterize(_gaussians([[0.0, 0.0, z]], [[1.0, 1.0, 1.0]], s, [op]), cam, backend="torch")
    alpha = out.alpha[0, :, :, 0]
    assert torch.isclose(alpha[16, 16], torch.tensor(op, dtype=alpha.dtype), atol=1e-9)
    sigma2 = (f * s / z) ** 2 + 0.3  # projected variance plus the 0.3 px^2 low-pass
    for k in range(1, 6):
        want = op * math.exp(-0.5 * k * k / sigma2)
        if want >= 1 / 255:
            assert alpha[16, 16 + k].item() == pytest.approx(want, rel=1e-6)
            assert alpha[16 - k, 16].item() == pytest.approx(want, rel=1e-6)
        else:
            assert alpha[16, 16 + k].item() == 0.0  # below 1/255: skipped


def test_projected_centre_lands_where_intrinsics_say():
    f, z = 40.0, 3.0
    cam = _camera(size=32, f=f)
    x, y = 0.4, -0.25
    u, v = f * x / z + 16, f * y / z + 16  # K @ [x/z, y/z, 1]
    out = rasterize(_gaussians([[x, y, z]], [[1.0, 1.0, 1.0]], 0.15, [0.9]), cam, backend="torch")
    a = out.alpha[0, :, :, 0]
    grid = torch.arange(32, dtype=a.dtype) + 0.5
    cu = (a.sum(0) * grid).sum() / a.sum()
    cv = (a.sum(1) * grid).sum() / a.sum()
    assert cu.item() == pytest.approx(u, abs=5e-3)
    assert cv.item() == pytest.approx(v, abs=5e-3)
    assert out.depth[0, int(v), int(u), 0].item() == pytest.approx(z, abs=1e-9)


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_near_red_occludes_far_blue_in_any_input_order(order):
    means = [[0.0, 0.0, 2.0], [0.0, 0.0, 4.0]]
    rgb = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    g = _gaussians([means[i] for i in order], [rgb[i] for i in order], 0.2, [0.999, 0.999])
    out = rasterize(g, _camera(), backend="torch")
    centre = out.color[0, 16, 16]
    assert centre[0] > 0.98 and centre[2] < 0.02
    assert out.depth[0, 16, 16, 0].item() == pytest.approx(2.0, abs=0.05)


def test_two_overlapping_translucent_gaussians_accumulate_alpha():
    a1, a2 = 0.3, 0.5
    c1, c2 = torch.tensor([1.0, 0.2, 0.0]), torch.tensor([0.0, 0.4, 1.0])
    g = _gaussians([[0.0, 0.0, 3.0], [0.0, 0.0, 2.0]], [c2.tolist(), c1.tolist()], 0.1, [a2, a1])
    out = rasterize(g, _camera(c=16.5), backend="torch")
    assert out.alpha[0, 16, 16, 0].item() == pytest.approx(1 - (1 - a1) * (1 - a2), abs=1e-9)
    want = a1 * c1 + (1 - a1) * a2 * c2  # front (z=2) first, over a black background
    torch.testing.assert_close(out.color[0, 16, 16].float(), want, atol=1e-6, rtol=0)
    want_depth = (a1 * 2.0 + (1 - a1) * a2 * 3.0) / (1 - (1 - a1) * (1 - a2))
    assert out.depth[0, 16, 16, 0].item() == pytest.approx(want_depth, abs=1e-9)


def test_background_fills_what_the_splats_leave_uncovered():
    g = _gaussians([[0.0, 0.0, 3.0]], [[0.2, 0.9, 0.1]], 0.1, [0.6])
    cam = _camera()
    bg = (0.25, 0.5, 0.75)
    black = rasterize(g, cam, backend="torch")
    lit = rasterize(g, cam, background=bg, backend="torch")
    torch.testing.assert_close(lit.color[0, 0, 0], torch.tensor(bg, dtype=torch.float64))
    assert black.alpha[0, 0, 0, 0] == 0 and black.depth[0, 0, 0, 0] == 0
    torch.testing.assert_close(lit.color - black.color, (1 - black.alpha) * torch.tensor(bg, dtype=torch.float64))


def test_gaussians_behind_the_camera_or_past_far_are_not_drawn():
    g = _gaussians([[0.0, 0.0, -2.0], [0.0, 0.0, 0.005], [0.0, 0.0, 50.0]], [[1.0, 1.0, 1.0]] * 3, 0.5, [0.9] * 3)
    out = rasterize(g, _camera(), backend="torch", far=10.0)
    assert out.alpha.abs().max() == 0


def _random_scene(n, seed, dtype=torch.float64, sh_k=4):
    gen = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=gen, dtype=dtype) * torch.tensor([1.6, 1.6, 1.0], dtype=dtype)
    means = means + torch.tensor([-0.8, -0.8, 2.0], dtype=dtype)
    return Gaussians(
        means=means,
        quats=torch.randn(n, 4, generator=gen, dtype=dtype),
        log_scales=torch.log(0.02 + 0.08 * torch.rand(n, 3, generator=gen, dtype=dtype)),
        opacity_logits=torch.randn(n, generator=gen, dtype=dtype),
        sh=0.3 * torch.randn(n, sh_k, 3, generator=gen, dtype=dtype),
    )


def test_image_does_not_depend_on_tile_size_or_chunking():
    g = _random_scene(300, seed=1)
    cam = _camera(size=40)  # not a multiple of 16: exercises the cropped border tiles
    base = rasterize(g, cam, backend="torch", torch_settings=TorchRasterSettings(tile_size=16))
    for s in (TorchRasterSettings(tile_size=8, depth_block=4, chunk_elements=2048), TorchRasterSettings(tile_size=32)):
        other = rasterize(g, cam, backend="torch", torch_settings=s)
        torch.testing.assert_close(other.color, base.color, atol=1e-12, rtol=0)
        torch.testing.assert_close(other.alpha, base.alpha, atol=1e-12, rtol=0)


def test_torch_rasteriser_passes_float64_gradcheck():
    g0 = _random_scene(4, seed=3)
    cam = _camera(size=10, f=12.0)
    weights = torch.rand(1, 10, 10, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    settings = TorchRasterSettings(tile_size=4, depth_block=2)

    def render(means, quats, log_scales, opacity_logits, sh):
        g = Gaussians(means, quats, log_scales, opacity_logits, sh)
        out = rasterize(g, cam, background=(0.1, 0.2, 0.3), backend="torch", torch_settings=settings)
        return (torch.cat([out.color, out.alpha, out.depth], dim=-1) * weights).sum(dim=(1, 2))

    inputs = tuple(
        t.clone().requires_grad_(True) for t in (g0.means, g0.quats, g0.log_scales, g0.opacity_logits, g0.sh)
    )
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gradients_reach_every_gaussian_field():
    g0 = _random_scene(50, seed=4, dtype=torch.float32)
    leaves = [t.clone().requires_grad_(True) for t in (g0.means, g0.quats, g0.log_scales, g0.opacity_logits, g0.sh)]
    out = rasterize(Gaussians(*leaves), _camera(size=24, dtype=torch.float32), backend="torch")
    (out.color.square().sum() + out.depth.sum()).backward()
    for name, t in zip(("means", "quats", "log_scales", "opacity_logits", "sh"), leaves, strict=True):
        assert t.grad is not None and torch.isfinite(t.grad).all(), name
        assert t.grad.abs().sum() > 0, name


def test_batched_cameras_render_like_separate_calls():
    g = _random_scene(100, seed=5)
    a, b = _camera(), _camera(f=30.0)
    b = Camera(b.K, b.T_cam_world.clone(), b.width, b.height)
    b.T_cam_world[0, 3] = 0.2
    both = rasterize(g, Camera(torch.stack([a.K, b.K]), torch.stack([a.T_cam_world, b.T_cam_world]), 32, 32))
    assert both.color.shape == (2, 32, 32, 3) and both.alpha.shape == (2, 32, 32, 1)
    for i, cam in enumerate((a, b)):
        torch.testing.assert_close(both.color[i], rasterize(g, cam).color[0])


def test_early_stop_behind_opaque_layers_changes_nothing():
    n = 40  # a stack of opaque layers: every pixel saturates after a few, so later blocks are skipped
    means = [[0.0, 0.0, 2.0 + 0.1 * i] for i in range(n)]
    rgb = [[i / n, 1 - i / n, 0.5] for i in range(n)]
    g = _gaussians(means, rgb, 1.0, [0.97] * n)
    cam = _camera(size=16)
    step = rasterize(g, cam, backend="torch", torch_settings=TorchRasterSettings(depth_block=2))
    whole = rasterize(g, cam, backend="torch", torch_settings=TorchRasterSettings(depth_block=1000))
    torch.testing.assert_close(step.color, whole.color, atol=1e-12, rtol=0)
    assert step.alpha.min() > 0.99  # every pixel saturated, so the early stop really ran
