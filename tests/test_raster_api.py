"""`rasterize()` front door: output records, backend choice, and errors that say what to fix."""

import pytest
import torch

from core.raster import Camera, Gaussians, RasterOutput, rasterize
from core.raster.gsplat_backend import gsplat_available
from core.raster.rasterize import resolve_backend


def _one() -> Gaussians:
    return Gaussians.from_rgb(
        torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[0.8, 0.2, 0.1]]), torch.full((1, 3), 0.1), torch.tensor([0.7])
    )


def _cam(**kw) -> Camera:
    return Camera.look_at((0.0, 1.0, 3.0), (0.0, 1.0, 0.0), width=24, height=16, **kw)


def test_unbatched_camera_gives_one_image_of_the_camera_size():
    out = rasterize(_one(), _cam(), backend="torch")
    assert isinstance(out, RasterOutput)
    assert out.color.shape == (1, 16, 24, 3) and out.alpha.shape == (1, 16, 24, 1) and out.depth.shape == (1, 16, 24, 1)
    assert out.alpha.max() > 0.5  # the splat sits in front of the camera, at the image centre
    assert out.depth.max().item() == pytest.approx(3.0, abs=1e-4)


def test_empty_gaussian_set_renders_background():
    empty = _one().index(torch.zeros(1, dtype=torch.bool))
    out = rasterize(empty, _cam(), background=(0.1, 0.2, 0.3), backend="torch")
    torch.testing.assert_close(out.color[0, 5, 5], torch.tensor([0.1, 0.2, 0.3]))
    assert out.alpha.abs().max() == 0


def test_auto_backend_is_torch_on_cpu():
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    with pytest.raises(ValueError, match="backend must be"):
        resolve_backend("opengl", torch.device("cpu"))


def test_a_batch_of_sets_needs_cameras_per_set():
    g = _one()
    batched = Gaussians(g.means[None], g.quats[None], g.log_scales[None], g.opacity_logits[None], g.sh[None])
    with pytest.raises(ValueError, match=r"needs cameras K \[B=1, C, 3, 3\]"):
        rasterize(batched, _cam())
    flat = Gaussians(g.means[None, None], g.quats[None, None], g.log_scales[None, None], g.opacity_logits[None, None],
                     g.sh[None, None])  # fmt: skip
    with pytest.raises(ValueError, match="flatten the leading dims"):
        rasterize(flat, _cam())


def test_a_batch_of_sets_renders_like_one_set_at_a_time():
    """B sets of Gaussians, each with its own cameras, in one call equal B calls (torch reference; features too)."""
    gen = torch.Generator().manual_seed(1)
    B, C, n = 3, 2, 40
    g = Gaussians(
        means=torch.randn(B, n, 3, generator=gen) * 0.2 + torch.tensor([0.0, 1.0, 0.0]),
        quats=torch.randn(B, n, 4, generator=gen),
        log_scales=torch.full((B, n, 3), -2.5) + 0.2 * torch.randn(B, n, 3, generator=gen),
        opacity_logits=torch.randn(B, n, generator=gen),
        sh=torch.randn(B, n, 1, 3, generator=gen),
    )
    feats = torch.rand(B, n, 2, generator=gen)
    cams = [Camera.look_at((0.3 * c - 0.2 * b, 1.0, 3.0), (0.0, 1.0, 0.0), width=24, height=16) for b in range(B)
            for c in range(C)]  # fmt: skip
    K = torch.stack([c.K for c in cams]).view(B, C, 3, 3)
    T = torch.stack([c.T_cam_world for c in cams]).view(B, C, 4, 4)
    out = rasterize(g, Camera(K, T, 24, 16), background=(0.1, 0.2, 0.3), backend="torch", features=feats)
    assert out.color.shape == (B, C, 16, 24, 3) and out.features.shape == (B, C, 16, 24, 2)
    for b in range(B):
        one = Gaussians(g.means[b], g.quats[b], g.log_scales[b], g.opacity_logits[b], g.sh[b])
        ref = rasterize(one, Camera(K[b], T[b], 24, 16), background=(0.1, 0.2, 0.3), backend="torch", features=feats[b])
        for name in ("color", "alpha", "depth", "features"):
            torch.testing.assert_close(getattr(out, name)[b], getattr(ref, name))


def test_rasterize_rejects_two_level_camera_batches():
    c = _cam()
    cams = Camera(c.K.expand(2, 3, 3, 3), c.T_cam_world.expand(2, 3, 4, 4), c.width, c.height)
    with pytest.raises(ValueError, match="flatten the cameras"):
        rasterize(_one(), cams)


def test_rasterize_rejects_camera_on_another_device():
    with pytest.raises(ValueError, match="camera.K is on meta"):
        rasterize(_one(), _cam(device="meta"))


def test_rasterize_rejects_bad_background_and_planes():
    with pytest.raises(ValueError, match="background"):
        rasterize(_one(), _cam(), background=(0.0, 1.0))
    with pytest.raises(ValueError, match="near < far"):
        rasterize(_one(), _cam(), near=2.0, far=1.0)


def test_gsplat_backend_on_cpu_tensors_says_what_to_do():
    err = ValueError if gsplat_available() else RuntimeError
    with pytest.raises(err, match="(needs CUDA tensors|backend='torch')"):
        rasterize(_one(), _cam(), backend="gsplat")


def test_feature_channels_render_like_colour_in_the_same_pass_and_carry_gradients():
    """A per-Gaussian value rendered as a feature equals the same value rendered as a colour over black."""
    gen = torch.Generator().manual_seed(0)
    n = 300
    g = Gaussians(
        means=torch.randn(n, 3, generator=gen) * 0.3 + torch.tensor([0.0, 1.0, 0.0]),
        quats=torch.randn(n, 4, generator=gen),
        log_scales=torch.full((n, 3), -3.0),
        opacity_logits=torch.randn(n, generator=gen),
        sh=0.3 * torch.randn(n, 1, 3, generator=gen),
    )
    feats = torch.rand(n, 5, generator=gen).requires_grad_(True)
    cam = Camera.look_at((0.0, 1.0, 3.0), (0.0, 1.0, 0.0), width=40, height=32)
    out = rasterize(g, cam, background=(0.2, 0.3, 0.4), backend="torch", features=feats)
    plain = rasterize(g, cam, background=(0.2, 0.3, 0.4), backend="torch")
    torch.testing.assert_close(out.color, plain.color)  # the colour pass is unchanged
    torch.testing.assert_close(out.alpha, plain.alpha)
    assert out.features.shape == (1, 32, 40, 5)
    for i in range(0, 5, 3):  # the old way: three feature channels at a time as a colour (0.5 + C0 * sh)
        chans = feats[:, i : i + 3].detach()
        sh = ((torch.nn.functional.pad(chans, (0, 3 - chans.shape[1])) - 0.5) / 0.28209479177387814).unsqueeze(1)
        as_colour = rasterize(g.replace(sh=sh), cam, background=(0.0, 0.0, 0.0), backend="torch").color
        torch.testing.assert_close(out.features[..., i : i + 3], as_colour[..., : chans.shape[1]], atol=1e-5, rtol=1e-4)
    out.features.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert rasterize(g, cam, backend="torch").features is None
    with pytest.raises(ValueError, match="features"):
        rasterize(g, cam, backend="torch", features=torch.zeros(n + 1, 2))
