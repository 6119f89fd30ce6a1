"""Camera rigs and paths of the synthetic world: handheld wild paths and calibrated studio domes.

All cameras look at the person standing at the origin (y-up, facing +z) in the OpenCV convention.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from core.raster.types import Camera


def look_at_matrix(eye: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """World-to-camera [4, 4] for a camera at `eye` [3] looking at `target` [3] (OpenCV axes, world y-up)."""
    up = np.array([0.0, 1.0, 0.0]) if up is None else up
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-8:
        x = np.cross(z, np.array([0.0, 0.0, 1.0]))
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z])
    T[:3, 3] = -T[:3, :3] @ eye
    return T


def intrinsics(
    focal_px: float, width: int, height: int, cx: float | None = None, cy: float | None = None
) -> np.ndarray:
    """Pinhole K [3, 3] with square pixels."""
    return np.array(
        [
            [focal_px, 0.0, width / 2 if cx is None else cx],
            [0.0, focal_px, height / 2 if cy is None else cy],
            [0, 0, 1.0],
        ]
    )


def _roll(T: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    R = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    return R @ T


def wild_camera_path(
    rng: np.random.Generator, num_frames: int, width: int, height: int, *, body_height: float = 1.7
) -> tuple[np.ndarray, np.ndarray]:
    """A handheld-looking monocular path: random focal (25-85 mm equiv.), distance, height, slow orbit,
    drift, shake and roll; framing from full body to upper body (truncation happens naturally).

    Returns K [F, 3, 3] and T_cam_world [F, 4, 4].
    """
    focal_mm = rng.uniform(24, 85)
    focal_px = focal_mm / 36.0 * max(width, height)
    # Distance so the framed height covers from 45% (upper body) to 120% of the person.
    framed = rng.uniform(0.45, 1.2) * body_height
    fov_h = 2 * math.atan(0.5 * height / focal_px)
    dist = framed / (2 * math.tan(fov_h / 2))
    target_y = body_height * (1 - framed / body_height / 2) if framed < body_height else body_height * 0.5
    target_y = float(np.clip(target_y + rng.normal(0, 0.05), 0.3, body_height - 0.1))
    az0 = rng.uniform(-1.3, 1.3)  # mostly frontal, some profiles
    az_speed = rng.uniform(-0.6, 0.6)  # radians over the clip
    cam_h = target_y + rng.uniform(-0.4, 0.5)
    drift = rng.normal(0, 0.15, 3)
    shake = rng.uniform(0.002, 0.02)
    roll0 = rng.normal(0, 0.04)
    Ks, Ts = [], []
    t = np.linspace(0, 1, num_frames)
    shake_path = np.cumsum(rng.normal(0, shake, (num_frames, 3)), axis=0) * 0.3
    for i, ti in enumerate(t):
        az = az0 + az_speed * ti
        eye = np.array([dist * math.sin(az), cam_h, dist * math.cos(az)]) + drift * ti + shake_path[i]
        target = np.array([0.0, target_y, 0.0]) + shake_path[i] * 0.5
        T = _roll(look_at_matrix(eye, target), roll0 + rng.normal(0, shake))
        Ts.append(T)
        Ks.append(intrinsics(focal_px, width, height))
    return np.stack(Ks), np.stack(Ts)


def studio_rig(
    rng: np.random.Generator, num_cameras: int, width: int, height: int, *, body_height: float = 1.7
) -> tuple[np.ndarray, np.ndarray]:
    """A calibrated dome: `num_cameras` (8 to 32) on three rings around the person, full body in frame.

    Returns K [C, 3, 3] and T_cam_world [C, 4, 4].
    """
    if not 1 <= num_cameras <= 64:
        raise ValueError(f"studio rigs have 1 to 64 cameras, got {num_cameras}")
    focal_px = rng.uniform(1.1, 1.5) * max(width, height)
    fov_h = 2 * math.atan(0.5 * height / focal_px)
    dist = 1.15 * body_height / (2 * math.tan(fov_h / 2))
    rings = [(0.35, 0.25), (0.9, 0.45), (1.6, 0.3)]  # (camera height / body height, share of cameras)
    counts = [max(1, round(num_cameras * s)) for _, s in rings]
    counts[1] += num_cameras - sum(counts)
    Ks, Ts = [], []
    offset = rng.uniform(0, 2 * math.pi)
    for (h, _), n in zip(rings, counts, strict=False):
        for k in range(n):
            az = offset + 2 * math.pi * (k + 0.5 * (h > 1)) / n
            eye = np.array([dist * math.sin(az), h * body_height, dist * math.cos(az)])
            target = np.array([0.0, 0.5 * body_height, 0.0])
            Ts.append(look_at_matrix(eye, target))
            Ks.append(intrinsics(focal_px, width, height))
    return np.stack(Ks), np.stack(Ts)


def orbit_views(
    num_views: int, width: int, height: int, *, body_height: float = 1.7, elevation: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Evenly spaced full-body views around the person (novel-view targets of the benchmarks).

    Returns K [C, 3, 3] and T_cam_world [C, 4, 4].
    """
    focal_px = 1.3 * max(width, height)
    fov_h = 2 * math.atan(0.5 * height / focal_px)
    dist = 1.15 * body_height / (2 * math.tan(fov_h / 2))
    Ks, Ts = [], []
    for k in range(num_views):
        az = 2 * math.pi * k / num_views
        eye = np.array([dist * math.sin(az), 0.5 * body_height + elevation * dist, dist * math.cos(az)])
        Ts.append(look_at_matrix(eye, np.array([0.0, 0.5 * body_height, 0.0])))
        Ks.append(intrinsics(focal_px, width, height))
    return np.stack(Ks), np.stack(Ts)


def to_camera(K: np.ndarray, T_cam_world: np.ndarray, width: int, height: int) -> Camera:
    """numpy K [..., 3, 3] and T_cam_world [..., 4, 4] -> the project's `Camera` record (float32)."""
    return Camera(
        torch.as_tensor(K, dtype=torch.float32), torch.as_tensor(T_cam_world, dtype=torch.float32), width, height
    )


def project(points: np.ndarray, K: np.ndarray, T_cam_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points [P, 3] -> pixels [P, 2] and depth [P] for one camera (K [3, 3], T [4, 4])."""
    pc = points @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    z = pc[:, 2]
    uv = (pc[:, :2] / np.maximum(z[:, None], 1e-6)) @ K[:2, :2].T + K[:2, 2]
    return uv, z
