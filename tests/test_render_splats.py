"""The OpenGL splat renderer (Mesa EGL on CPU) against the pure-torch reference rasteriser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.raster.types import Camera, Gaussians
from render.scenes import avatar_like_scene, front_camera

moderngl = pytest.importorskip("moderngl")


@pytest.fixture(scope="module")
def ctx():
    from render.gl_context import create_context

    try:
        context = create_context("egl")
    except Exception as e:  # noqa: BLE001 - no EGL on this machine: the GL tests cannot run
        pytest.skip(f"no headless OpenGL: {e}")
    yield context
    context.release()


@pytest.fixture
def renderer(ctx):
    from render.splat_renderer import SplatRenderer

    r = SplatRenderer(ctx, width=96, height=72)
    yield r
    r.release()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def reference(g: Gaussians, cam: Camera, background=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    from core.raster.rasterize import rasterize

    out = rasterize(g, cam, background=background, backend="torch")
    return out.color[0].numpy(), out.alpha[0, ..., 0].numpy()


@pytest.mark.parametrize(
    ("count", "yaw", "distance", "sh_degree"),
    [(2000, 0.0, 3.0, 3), (2000, 70.0, 1.8, 3), (4000, 180.0, 1.0, 1), (1500, 200.0, 2.5, 0)],
)
def test_render_matches_torch_reference_psnr(renderer, count, yaw, distance, sh_degree):
    g = avatar_like_scene(count, seed=3, sh_degree=sh_degree)
    cam = front_camera(128, 96, yaw_deg=yaw, distance=distance)
    ref_rgb, ref_alpha = reference(g, cam)
    renderer.set_gaussians(g)
    img = renderer.render(cam, background=(1.0, 1.0, 1.0))
    assert img.shape == (96, 128, 4)
    assert ref_alpha.max() > 0.5  # the figure is in view
    assert psnr(img[..., :3], ref_rgb) >= 35.0
    assert np.abs(img[..., 3] - ref_alpha).mean() < 0.01


def test_render_single_gaussian_lands_on_same_pixel_as_reference(renderer):
    # An off-centre, off-axis point: any flip of x or y, or a half-pixel shift, moves the peak.
    g = Gaussians.from_rgb(
        means=torch.tensor([[0.31, 1.12, 0.2]]),
        rgb=torch.tensor([[1.0, 1.0, 1.0]]),
        scales=torch.full((1, 3), 0.004),
        opacities=torch.tensor([0.9]),
    )
    cam = front_camera(96, 72, yaw_deg=25.0)
    _, ref_alpha = reference(g, cam, background=(0.0, 0.0, 0.0))
    renderer.set_gaussians(g)
    img = renderer.render(cam)
    peak_gl = np.unravel_index(np.argmax(img[..., 3]), img.shape[:2])
    peak_ref = np.unravel_index(np.argmax(ref_alpha), ref_alpha.shape)
    assert peak_gl == peak_ref
    # And where K says it should be.
    p = cam.T_cam_world[:3, :3] @ g.means[0] + cam.T_cam_world[:3, 3]
    uv = (cam.K @ p)[:2] / p[2]
    assert (peak_gl[1], peak_gl[0]) == (int(uv[0]), int(uv[1]))
    assert np.abs(img[..., 3] - ref_alpha).max() < 0.01


def test_render_empty_scene_is_background(renderer):
    g = avatar_like_scene(0)
    renderer.set_gaussians(g)
    img = renderer.render(front_camera(64, 48), background=(0.2, 0.4, 0.6))
    np.testing.assert_allclose(img[..., :3], np.broadcast_to([0.2, 0.4, 0.6], (48, 64, 3)), atol=2e-3)
    assert img[..., 3].max() == 0.0


def test_render_resizes_to_the_camera_and_back(renderer):
    renderer.set_gaussians(avatar_like_scene(500))
    small = renderer.render(front_camera(40, 30))
    large = renderer.render(front_camera(120, 90))
    again = renderer.render(front_camera(40, 30))
    assert small.shape == (30, 40, 4) and large.shape == (90, 120, 4)
    np.testing.assert_array_equal(small, again)
    assert large[..., 3].max() > 0.5


def test_set_gaussians_uploads_only_changed_attributes(renderer):
    g = avatar_like_scene(300)
    assert set(renderer.set_gaussians(g)) == {"mean", "cov", "sh"}
    assert renderer.set_gaussians(g) == ()
    assert renderer.set_gaussians(g.replace(sh=g.sh * 0.5)) == ("sh",)
    assert renderer.set_gaussians(g.replace(sh=g.sh * 0.5, means=g.means + 0.01)) == ("mean",)
    assert renderer.set_gaussians(g.replace(sh=g.sh * 0.5, means=g.means + 0.01, quats=-g.quats)) == ("cov",)


def test_sort_is_skipped_when_view_and_positions_are_unchanged(renderer):
    g = avatar_like_scene(300)
    renderer.set_gaussians(g)
    cam = front_camera(32, 24)
    renderer.draw(cam)
    assert renderer.stats.sorted
    renderer.draw(cam)
    assert not renderer.stats.sorted
    renderer.set_gaussians(g.replace(means=g.means + 0.001))
    renderer.draw(cam)
    assert renderer.stats.sorted
    renderer.draw(front_camera(32, 24, yaw_deg=10.0))
    assert renderer.stats.sorted


def test_gpu_compute_sort_matches_cpu_sort(ctx):
    from render.gl_context import has_compute
    from render.splat_renderer import SplatRenderer

    if not has_compute(ctx):
        pytest.skip("no OpenGL 4.3 compute shaders")
    g = avatar_like_scene(3000, seed=5)
    cam = front_camera(96, 72, yaw_deg=40.0)
    images = []
    for mode in ("cpu", "gpu"):
        r = SplatRenderer(ctx, sort=mode)
        r.set_gaussians(g)
        images.append(r.render(cam))
        assert r.stats.sort_path == mode
        r.release()
    assert psnr(images[0][..., :3], images[1][..., :3]) > 45.0


def test_part_colour_mode_changes_the_image(renderer):
    g = avatar_like_scene(800)
    renderer.set_gaussians(g)
    cam = front_camera(48, 36)
    shaded = renderer.render(cam)
    renderer.color_mode = "parts"
    parts = renderer.render(cam)
    renderer.color_mode = "sh"
    assert np.abs(shaded[..., :3] - parts[..., :3]).max() > 0.2
    np.testing.assert_allclose(shaded[..., 3], parts[..., 3], atol=1e-3)


def test_render_a_million_gaussians_does_not_crash(ctx):
    from render.splat_renderer import SplatRenderer

    n = 1_000_000
    g = Gaussians(
        means=torch.rand(n, 3) * torch.tensor([0.6, 1.7, 0.3]) - torch.tensor([0.3, 0.0, 0.15]),
        quats=torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(n, 4),
        log_scales=torch.full((n, 3), -6.0),
        opacity_logits=torch.zeros(n),
        sh=torch.zeros(n, 1, 3),
    )
    r = SplatRenderer(ctx)
    r.set_gaussians(g)
    img = r.render(front_camera(32, 24))
    assert np.isfinite(img).all() and img[..., 3].max() > 0.5
    r.release()


def test_render_matches_torch_reference_on_a_decoded_avatar(renderer):
    """An avatar decoded by the model (tiny config on the real body rig), posed, with an expression."""
    from core.model.avatar import Avatar
    from core.model.config import load_model_config
    from core.model.model import LCAModel
    from core.model.rig import rig_from_body_asset

    torch.manual_seed(0)
    cfg = load_model_config("tiny")
    rig = rig_from_body_asset()
    model = LCAModel(cfg, rig).eval()
    gen = torch.Generator().manual_seed(0)
    body = torch.rand(2, 3, *cfg.encoder.body_crop, generator=gen)
    face = torch.rand(2, 3, *cfg.encoder.face_crop, generator=gen)
    avatar = Avatar.create(model, body_crops=body, face_crops=face)
    pose = torch.zeros(rig.num_joints, 3)
    pose[rig.num_joints // 2, 2] = 1.0  # bend one bone of the chain
    expression = torch.zeros(rig.num_expressions)
    g = avatar.decode(pose, expression)
    cam = front_camera(128, 96, distance=3.2)
    ref_rgb, ref_alpha = reference(g, cam)
    renderer.set_gaussians(g)
    img = renderer.render(cam, background=(1.0, 1.0, 1.0))
    assert ref_alpha.max() > 0.9 and (ref_alpha > 0.5).mean() > 0.02  # the person fills part of the frame
    assert psnr(img[..., :3], ref_rgb) >= 35.0
    assert np.abs(img[..., 3] - ref_alpha).mean() < 0.01


def test_top_row_first_target_reads_back_the_same_image_without_a_flip(ctx):
    from render.splat_renderer import SplatRenderer

    g = avatar_like_scene(1500, seed=2)
    cam = front_camera(64, 48, yaw_deg=30.0)
    images = []
    for top in (False, True):
        r = SplatRenderer(ctx, top_row_first=top)
        r.set_gaussians(g)
        r.draw(cam, background=(0.2, 0.3, 0.4))
        rgb = np.empty((48, 64, 3), dtype=np.float32)
        r.read_into(rgb)
        np.testing.assert_array_equal(rgb, r.read()[..., :3])
        images.append(rgb)
        r.release()
    np.testing.assert_allclose(images[0], images[1], atol=1.5 / 255)


def test_viewport_image_is_the_renderers_picture_in_the_display_format(ctx):
    from app.viewport import BACKGROUND, Viewport

    g = avatar_like_scene(1500, seed=4)
    cam = front_camera(64, 48)
    vp = Viewport(64, 48, backend="egl", raster="gl")
    image = vp.render(g, cam)
    assert image.shape == (48, 64, 3) and image.dtype == np.float32 and image.flags.c_contiguous
    assert image is vp.render(g, cam)  # one buffer, reused every frame
    with vp.ctx:
        expected = vp.renderer.render(cam, background=BACKGROUND)[..., :3]
    np.testing.assert_allclose(image, expected, atol=1e-6)
    half = vp.render(g, cam, scale=0.5)  # a reduced preview still fills the whole display image
    assert half.shape == (48, 64, 3) and psnr(half, expected) > 20.0
    vp.release()


# CUDA and CPU packing round differently in the last bits: a few pixels may land one 8-bit step apart.
ONE_STEP = 1.01 / 255


def _cuda_or_skip():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")


@pytest.mark.gpu
@pytest.mark.parametrize("transfer", ["pinned", "interop"])
def test_cuda_gaussians_reach_the_textures_like_host_ones(ctx, transfer):
    from render.splat_renderer import SplatRenderer

    _cuda_or_skip()
    g = avatar_like_scene(3000, seed=6)
    cam = front_camera(96, 72, yaw_deg=20.0)
    with ctx:  # current again after other tests' contexts came and went
        host = SplatRenderer(ctx)
        host.set_gaussians(g)
        expected = host.render(cam)
        r = SplatRenderer(ctx, transfer=transfer)
        try:
            r.set_gaussians(g.to("cuda"))
        except RuntimeError as e:
            pytest.skip(f"{transfer} unavailable: {e}")
        assert r.stats.transfer == transfer
        np.testing.assert_allclose(r.render(cam), expected, atol=ONE_STEP)
        moved = g.replace(means=g.means + 0.02)
        assert r.set_gaussians(moved.to("cuda")) == ("mean",)
        host.set_gaussians(moved)
        np.testing.assert_allclose(r.render(cam), host.render(cam), atol=ONE_STEP)
        r.release()
        host.release()


@pytest.mark.gpu
def test_gsplat_preview_matches_the_torch_reference():
    _cuda_or_skip()
    from app.viewport import BACKGROUND, Viewport

    g = avatar_like_scene(2000, seed=3)
    cam = front_camera(128, 96, yaw_deg=70.0, distance=1.8)
    ref_rgb, _ = reference(g, cam, background=BACKGROUND)
    vp = Viewport(128, 96, backend="egl")
    image = vp.render(g.to("cuda"), cam)
    assert vp.path == "gsplat"
    assert psnr(image, ref_rgb) >= 35.0
    parts = vp.render(g.to("cuda"), cam, parts_view=True)
    assert np.abs(parts - ref_rgb).max() > 0.2
    vp.release()


@pytest.mark.gpu
def test_gl_preview_of_cuda_gaussians_matches_host_gaussians():
    _cuda_or_skip()
    from app.viewport import Viewport

    g = avatar_like_scene(3000, seed=8)
    cam = front_camera(96, 72, yaw_deg=-30.0)
    vp = Viewport(96, 72, backend="egl", raster="gl")
    host = vp.render(g, cam).copy()
    device = vp.render(g.to("cuda"), cam)
    assert vp.path == "gl"
    np.testing.assert_allclose(device, host, atol=ONE_STEP)
    vp.release()


def test_viewport_lends_each_frame_its_own_image_until_it_is_recycled(ctx):
    from app.viewport import Viewport

    g = avatar_like_scene(500, seed=1)
    cam = front_camera(32, 24)
    vp = Viewport(32, 24, backend="egl", raster="gl", lend_images=True)
    first = vp.render(g, cam)
    kept = first.copy()
    second = vp.render(g.replace(means=g.means + 0.05), cam)
    assert second is not first
    np.testing.assert_array_equal(first, kept)  # a lent image is never drawn over
    vp.recycle(first)
    assert vp.render(g, cam) is first  # handed back images are reused: no allocation per frame
    vp.release()
