"""Head close-ups of target frames: each frame's own camera (same pose, same extrinsics) with its intrinsics zoomed
so that the padded head box fills an N x N image. Only K differs from the full frame, so a renderer that poses the
frame's Gaussians once can draw both; only the head region is rendered at N px, never the whole frame."""

from __future__ import annotations

import cv2
import numpy as np

from core.data.cameras import to_camera
from core.data.render import render_views
from core.raster.types import Gaussians

CLOSEUP_PAD = 0.6  # the head box's longer side padded 1.6x, so hair and chin fit
MIN_SIDE_PX = 4.0  # a head box smaller than this (or empty: head behind the camera) still gives a usable K


def closeup_intrinsics(
    head_box: np.ndarray,  # [..., 4] pixel box x0, y0, x1, y1 of the head in the full frame
    K: np.ndarray,  # [..., 3, 3] the full frame's intrinsics
    size: int,
    *,
    pad: float = CLOSEUP_PAD,
) -> np.ndarray:
    """Intrinsics [..., 3, 3] of the size x size close-up centred on the padded square around `head_box`: the full
    frame's K followed by the scale-and-shift that maps the square onto the close-up (`loader.crop_matrix`)."""
    if head_box.shape[-1] != 4 or K.shape[-2:] != (3, 3) or head_box.shape[:-1] != K.shape[:-2]:
        raise ValueError(f"closeup_intrinsics: head_box [..., 4] and K [..., 3, 3] of one batch, got "
                         f"{head_box.shape} and {K.shape}")  # fmt: skip
    box = head_box.astype(np.float64)
    cx, cy = (box[..., 0] + box[..., 2]) / 2, (box[..., 1] + box[..., 3]) / 2
    side = np.maximum(np.maximum(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1]) * (1 + pad), MIN_SIDE_PX)
    s = size / side
    A = np.zeros((*box.shape[:-1], 3, 3))
    A[..., 0, 0], A[..., 1, 1], A[..., 2, 2] = s, s, 1.0
    A[..., 0, 2], A[..., 1, 2] = size / 2 - s * cx, size / 2 - s * cy
    return (A @ K.astype(np.float64)).astype(np.float32)


def frame_to_closeup(K: np.ndarray, K_closeup: np.ndarray) -> np.ndarray:
    """The 2x3 affine map from full-frame pixels to close-up pixels (K [3, 3] -> K_closeup [3, 3])."""
    return (K_closeup.astype(np.float64) @ np.linalg.inv(K.astype(np.float64)))[:2]


def warp_to_closeup(img: np.ndarray, K: np.ndarray, K_closeup: np.ndarray, size: int) -> np.ndarray:
    """A full-frame image [H, W, ...] (background, occluder) as the close-up camera sees it [size, size, ...]."""
    return cv2.warpAffine(
        img, frame_to_closeup(K, K_closeup), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    ).reshape(size, size, *img.shape[2:])


def render_closeups(
    gaussians: Gaussians,  # one frame's lit Gaussians
    K: np.ndarray,  # [C, 3, 3] the full frames' intrinsics
    K_closeup: np.ndarray,  # [C, 3, 3]
    T_cam_world: np.ndarray,  # [C, 4, 4]
    size: int,
    background: np.ndarray,  # [H, W, 3] float, the full frames' backdrop (warped into each close-up)
    *,
    occluder: tuple[np.ndarray, np.ndarray] | None = None,  # full-frame colour [H, W, 3] and coverage [H, W]
) -> tuple[np.ndarray, np.ndarray]:
    """Colour [C, size, size, 3] float in [0, 1] over the warped backdrop (and occluder), and person alpha
    [C, size, size] float, of one frame seen by C close-up cameras (one rasteriser call)."""
    col, alpha, _ = render_views(gaussians, to_camera(K_closeup, T_cam_world, size, size), with_parts=False)
    rgb = np.empty_like(col)
    for c in range(len(K_closeup)):
        bg = warp_to_closeup(background, K[c], K_closeup[c], size)
        rgb[c] = col[c] + (1 - alpha[c, ..., None]) * bg
        if occluder is not None:
            occ_col = warp_to_closeup(occluder[0], K[c], K_closeup[c], size)
            occ_cov = warp_to_closeup(occluder[1], K[c], K_closeup[c], size)
            rgb[c] = rgb[c] * (1 - occ_cov[..., None]) + occ_col * occ_cov[..., None]
            alpha[c] = alpha[c] * (1 - occ_cov)
    return rgb, alpha


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8."""
    return np.round(x * 255).clip(0, 255).astype(np.uint8)
