"""Camera conventions at the OpenCV -> OpenGL boundary, the orbit controller and overlay geometry."""

from __future__ import annotations

import numpy as np
import torch

from core.raster.types import Camera
from render.gl_camera import camera_params, gl_view_projection
from render.orbit import OrbitController
from render.overlays import grid_segments, skeleton_segments, wireframe_segments


def test_gl_projection_maps_points_to_the_pixels_k_gives():
    cam = Camera.look_at((0.4, 1.3, 2.5), (0.0, 0.9, 0.0), width=200, height=120, fov_y_deg=50.0)
    cam = Camera(cam.K.clone(), cam.T_cam_world, 200, 120)
    cam.K[0, 2] += 7.0  # an off-centre principal point must survive the conversion
    params = camera_params(cam)
    M = gl_view_projection(params, near=0.1, far=50.0)
    pts = np.array([[0.1, 1.0, 0.2], [-0.3, 0.5, -0.1], [0.0, 1.6, 0.0]])
    clip = (M @ np.c_[pts, np.ones(3)].T).T
    ndc = clip[:, :3] / clip[:, 3:]
    window = np.stack([(ndc[:, 0] + 1) * 100, (ndc[:, 1] + 1) * 60], -1)  # GL window coords, origin bottom-left
    p_cam = (cam.T_cam_world.double().numpy() @ np.c_[pts, np.ones(3)].T).T[:, :3]
    uv = (cam.K.double().numpy() @ p_cam.T).T
    uv = uv[:, :2] / uv[:, 2:]
    np.testing.assert_allclose(window[:, 0], uv[:, 0], atol=1e-4)
    np.testing.assert_allclose(window[:, 1], 120 - uv[:, 1], atol=1e-4)
    assert np.all(np.abs(ndc[:, 2]) < 1)  # inside near/far


def test_orbit_controller_front_view_matches_look_at():
    orbit = OrbitController(target=np.array([0.0, 0.9, 0.0]), distance=3.0)
    cam = orbit.camera(64, 48)
    ref = Camera.look_at((0.0, 0.9, 3.0), (0.0, 0.9, 0.0), width=64, height=48, fov_y_deg=orbit.fov_y_deg)
    torch.testing.assert_close(cam.T_cam_world, ref.T_cam_world, atol=1e-5, rtol=0)
    torch.testing.assert_close(cam.K, ref.K)


def test_orbit_controller_orbit_zoom_pan_focus_move_the_camera():
    orbit = OrbitController.default()
    eye0 = orbit.eye()
    orbit.orbit(100, 0)
    assert not np.allclose(orbit.eye(), eye0)
    d = orbit.distance
    orbit.zoom(2)
    assert orbit.distance < d
    t = orbit.target.copy()
    orbit.pan(10, 0, 480)
    assert not np.allclose(orbit.target, t)
    orbit.focus(np.array([[0.0, 0.0, 0.0], [0.0, 1.8, 0.0]]))
    np.testing.assert_allclose(orbit.target, [0.0, 0.9, 0.0])
    orbit.preset("side")
    assert orbit.eye()[0] > 2.9  # looking from +x


def test_overlay_segments_have_expected_counts():
    joints = np.array([[0, 0, 0], [0, 1, 0], [0, 2, 0], [1, 1, 0]], dtype=np.float32)
    seg = skeleton_segments(joints, np.array([-1, 0, 1, 1]))
    assert seg.shape == (3, 2, 3)
    np.testing.assert_array_equal(seg[2], [[0, 1, 0], [1, 1, 0]])
    quad = wireframe_segments(np.eye(4, 3), np.array([[0, 1, 2, 3]]))
    assert quad.shape == (4, 2, 3)
    tris = wireframe_segments(np.eye(4, 3), np.array([[0, 1, 2], [0, 2, 3]]))
    assert tris.shape == (5, 2, 3)  # the shared diagonal once
    grid = grid_segments(1.0, 0.5)
    assert grid.shape == (10, 2, 3) and np.all(grid[..., 1] == 0)
