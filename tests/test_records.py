"""The shared records: shape checks with readable errors, conversions, camera conventions."""

import pytest
import torch

from core.raster import Camera, Gaussians, rgb_to_sh0, sh0_to_rgb


def _gaussians(g: int = 5, k: int = 1) -> Gaussians:
    return Gaussians(
        means=torch.randn(g, 3),
        quats=torch.randn(g, 4),
        log_scales=torch.randn(g, 3),
        opacity_logits=torch.randn(g),
        sh=torch.randn(g, k, 3),
        parts=torch.zeros(g, dtype=torch.long),
    )


def test_gaussians_reject_wrong_shapes_naming_the_field():
    with pytest.raises(ValueError, match=r"Gaussians.quats.*\(5, 4\).*\(5, 3\)"):
        Gaussians(torch.zeros(5, 3), torch.zeros(5, 3), torch.zeros(5, 3), torch.zeros(5), torch.zeros(5, 1, 3))
    with pytest.raises(ValueError, match="SH coefficient count"):
        Gaussians(torch.zeros(5, 3), torch.zeros(5, 4), torch.zeros(5, 3), torch.zeros(5), torch.zeros(5, 2, 3))


def test_gaussians_cat_index_and_sh_padding():
    a, b = _gaussians(3, 1), _gaussians(4, 16)
    c = Gaussians.cat([a, b])
    assert c.num == 7 and c.sh_degree == 3
    assert torch.equal(c.sh[:3, 0], a.sh[:, 0]) and torch.all(c.sh[:3, 1:] == 0)
    sub = c.index(torch.tensor([0, 6]))
    assert sub.num == 2 and torch.equal(sub.means[1], b.means[3])


def test_from_rgb_round_trips_colour_scale_and_opacity():
    rgb = torch.rand(10, 3)
    scales = torch.rand(10, 3) + 0.01
    opac = torch.rand(10) * 0.9 + 0.05
    g = Gaussians.from_rgb(torch.zeros(10, 3), rgb, scales, opac)
    torch.testing.assert_close(sh0_to_rgb(g.sh[:, 0]), rgb)
    torch.testing.assert_close(g.scales, scales)
    torch.testing.assert_close(g.opacities, opac)
    torch.testing.assert_close(sh0_to_rgb(rgb_to_sh0(rgb)), rgb)


def test_look_at_puts_target_on_the_optical_axis_with_opencv_axes():
    cam = Camera.look_at((0.0, 1.0, 3.0), (0.0, 1.0, 0.0), width=64, height=48)
    p_world = torch.tensor([0.0, 1.0, 0.0, 1.0])
    p_cam = cam.T_cam_world @ p_world
    assert p_cam[2] == pytest.approx(3.0, abs=1e-5)  # z forward
    uv = (cam.K @ p_cam[:3]) / p_cam[2]
    assert uv[0] == pytest.approx(32.0) and uv[1] == pytest.approx(24.0)
    # world up (+y) projects upwards in the image (smaller v); world +x goes right for a camera on +z
    up = cam.K @ (cam.T_cam_world @ torch.tensor([0.0, 1.5, 0.0, 1.0]))[:3]
    right = cam.K @ (cam.T_cam_world @ torch.tensor([0.5, 1.0, 0.0, 1.0]))[:3]
    assert up[1] / up[2] < 24.0 and right[0] / right[2] > 32.0
    torch.testing.assert_close(cam.position, torch.tensor([0.0, 1.0, 3.0]))


def test_camera_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="batch"):
        Camera(torch.eye(3).expand(2, 3, 3), torch.eye(4), 10, 10)
    with pytest.raises(ValueError, match="positive"):
        Camera(torch.eye(3), torch.eye(4), 0, 10)
