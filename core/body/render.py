"""A quick look at the body without OpenGL: triangles filled far to near with OpenCV, coloured by part."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from core.body.parts import BODY_PART_NAMES
from core.io import save_image_bgr

# BGR colours per part (for cv2), in BODY_PART_NAMES order.
PART_COLOURS: tuple[tuple[int, int, int], ...] = (
    (180, 180, 60),  # head
    (80, 200, 255),  # face
    (40, 60, 160),  # hair
    (200, 120, 60),  # torso
    (90, 200, 90),  # arms
    (200, 80, 200),  # hands
    (60, 140, 230),  # legs
    (120, 120, 120),  # feet
)


def render_view(
    vertices: np.ndarray, faces: np.ndarray, labels: np.ndarray, yaw_deg: float, size: int = 400
) -> np.ndarray:
    """Orthographic shaded view from a camera turned yaw_deg about y (0 = the body's front) -> [H, W, 3] BGR.

    vertices [V, 3], faces [F, 3], labels [V]; triangles drawn far to near (painter's algorithm).
    """
    import cv2

    t = np.deg2rad(yaw_deg)
    R = np.array([[np.cos(t), 0, -np.sin(t)], [0, 1, 0], [np.sin(t), 0, np.cos(t)]])
    p = vertices @ R.T  # camera on +z looking toward -z; +z is toward the viewer
    lo, hi = vertices.min(0), vertices.max(0)
    scale = 0.9 * size / (hi[1] - lo[1])
    xy = np.stack([size / 2 + p[:, 0] * scale, size * 0.95 - (p[:, 1] - lo[1]) * scale], -1)
    tri = p[faces]  # [F, 3, 3]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-12
    shade = 0.35 + 0.65 * np.abs(normal[:, 2])
    colours = np.asarray(PART_COLOURS, np.float64)[labels[faces[:, 0]]] * shade[:, None]
    img = np.full((size, size, 3), 255, np.uint8)
    pts = np.round(xy[faces] * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    for f in np.argsort(tri[:, :, 2].mean(1)):
        cv2.fillConvexPoly(img, pts[f], colours[f].tolist(), cv2.LINE_AA, 4)
    return img


def render_parts_png(vertices: Tensor, faces: Tensor, labels: Tensor, path: str, size: int = 400) -> np.ndarray:
    """Front, side and back views with a legend, written to `path` -> the image [H, W, 3] BGR."""
    import cv2

    v = vertices.detach().double().cpu().numpy()
    lab = labels.cpu().numpy()
    f = faces.cpu().numpy()
    views = [render_view(v, f, lab, yaw, size) for yaw in (0.0, 90.0, 180.0)]
    img = np.concatenate(views, axis=1)
    legend = np.full((30, img.shape[1], 3), 255, np.uint8)
    x = 8
    for name, colour in zip(BODY_PART_NAMES, PART_COLOURS, strict=True):
        cv2.rectangle(legend, (x, 8), (x + 14, 22), colour, -1)
        cv2.putText(legend, name, (x + 18, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        x += 24 + 9 * len(name)
    img = np.concatenate([img, legend], axis=0)
    save_image_bgr(path, img)
    return img
