"""Degradations of wild clips: motion blur, occluders, sensor noise, and tracker-like noise on body estimates."""

from __future__ import annotations

import cv2
import numpy as np


def motion_blur(img: np.ndarray, rng: np.random.Generator, *, max_len: int = 9) -> np.ndarray:
    """Blur [H, W, C] along a random direction with a line kernel of random length (1 = no blur)."""
    length = int(rng.integers(1, max_len + 1))
    if length <= 1:
        return img
    k = np.zeros((length, length), np.float32)
    angle = rng.uniform(0, np.pi)
    c = (length - 1) / 2
    for t in np.linspace(-c, c, 2 * length):
        k[int(round(c + t * np.sin(angle))), int(round(c + t * np.cos(angle)))] = 1
    k /= k.sum()
    out = cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)
    return out.reshape(img.shape)


def occluder(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A foreground object (pole, box or blob) in front of the person: colour [H, W, 3] and coverage [H, W]."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:  # vertical pole or door frame
        x0, w = rng.uniform(0.1, 0.9) * width, rng.uniform(0.04, 0.15) * width
        cov = (np.abs(xx - x0) < w / 2).astype(np.float32)
    elif kind == 1:  # box from the bottom edge (a table, a car bonnet)
        top = rng.uniform(0.6, 0.9) * height
        cov = (yy > top).astype(np.float32)
    else:  # blob (a plant, a passer-by's head)
        cx, cy = rng.uniform(0, 1) * width, rng.uniform(0.3, 1) * height
        r = rng.uniform(0.1, 0.25) * min(height, width)
        cov = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r).astype(np.float32)
    cov = cv2.GaussianBlur(cov, (0, 0), 0.7)
    col = np.broadcast_to(rng.uniform(0, 1, 3).astype(np.float32), (height, width, 3)).copy()
    col *= (1 + 0.08 * rng.normal(0, 1, (height, width, 1))).astype(np.float32)
    return np.clip(col, 0, 1), cov


def sensor_noise(
    img: np.ndarray, rng: np.random.Generator, *, gain: np.ndarray | None = None, sigma: float | None = None
) -> np.ndarray:
    """Shot-like noise and an exposure/white-balance error; pass the clip's `gain` [3] and `sigma` to keep them
    steady over frames (one camera), or leave them None to draw new ones."""
    gain = camera_response(rng)[0] if gain is None else gain
    sigma = camera_response(rng)[1] if sigma is None else sigma
    return np.clip(img * gain + rng.normal(0, sigma, img.shape), 0, 1).astype(np.float32)


def camera_response(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One camera's exposure/white-balance gain [3] and noise level."""
    gain = rng.uniform(0.85, 1.15) * np.clip(1 + rng.normal(0, 0.04, 3), 0.9, 1.1)
    return gain, float(rng.uniform(0.0, 0.03))


def tracker_noise(
    rng: np.random.Generator,
    pose: np.ndarray,  # [F, J, 3] axis-angle bone rotations
    translation: np.ndarray,  # [F, 3]
    shape: np.ndarray,  # [S] shape parameters in [0, 1]
    expression: np.ndarray,  # [F, E]
    *,
    level: float = 1.0,
) -> dict[str, np.ndarray]:
    """What a monocular tracker would report: a per-clip shape bias, slowly drifting pose error (larger on
    extremities than the torso would deserve, but kept simple: one sigma), per-frame jitter, depth error
    along the camera axis folded into translation, and damped expressions. Returns noisy copies.
    """
    F = pose.shape[0]

    def drift(shape_: tuple[int, ...], sigma: float) -> np.ndarray:
        walk = np.cumsum(rng.normal(0, sigma / np.sqrt(max(F, 1)), (F, *shape_)), axis=0)
        return walk + rng.normal(0, sigma, (1, *shape_))

    pose_n = pose + level * (drift(pose.shape[1:], 0.06) + rng.normal(0, 0.02, pose.shape))
    trans_n = translation + level * (drift((3,), 0.03) + rng.normal(0, 0.005, translation.shape))
    shape_n = np.clip(shape + level * rng.normal(0, 0.08, shape.shape), 0, 1)
    expr_n = np.clip(expression * rng.uniform(0.6, 1.0) + level * rng.normal(0, 0.05, expression.shape), 0, 1)
    return {"pose": pose_n, "translation": trans_n, "shape": shape_n, "expression": expr_n}
