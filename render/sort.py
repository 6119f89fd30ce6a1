"""Back-to-front depth order for splats: CPU (numpy radix sort), torch (CUDA tensors) and GL compute paths."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# Depth keys are quantised to 16 bits so numpy can use its O(G) radix sort (6x faster than argsort on
# float32); 1/65535 of the visible depth range is far below what changes an image.
KEY_LEVELS = 65535


def camera_depths(
    means: np.ndarray,  # [G, 3] world positions
    T_cam_world: np.ndarray,  # [4, 4]
) -> np.ndarray:  # [G] float32 camera-space z (OpenCV: forward)
    row = T_cam_world[2].astype(np.float32)
    return means @ row[:3] + row[3]


def back_to_front(depths: np.ndarray) -> np.ndarray:
    """[G] depths -> [G] uint32 indices, farthest first (quantised keys, stable among equal keys)."""
    if depths.size == 0:
        return np.zeros(0, dtype=np.uint32)
    lo, hi = float(depths.min()), float(depths.max())
    scale = KEY_LEVELS / (hi - lo) if hi > lo else 0.0
    keys = ((hi - depths) * scale).astype(np.uint16)  # 0 = farthest
    return np.argsort(keys, kind="stable").astype(np.uint32)


def back_to_front_exact(depths: np.ndarray) -> np.ndarray:
    """[G] depths -> [G] uint32 indices, farthest first, full float precision (slower reference)."""
    return np.argsort(-depths, kind="stable").astype(np.uint32)


def back_to_front_torch(
    means: Tensor,  # [G, 3] on any device
    T_cam_world: np.ndarray,  # [4, 4]
) -> Tensor:  # [G] int32 indices on means.device, farthest first
    row = torch.as_tensor(T_cam_world[2], dtype=means.dtype, device=means.device)
    depths = means.detach() @ row[:3] + row[3]
    return torch.argsort(depths, descending=True).to(torch.int32)


class CachedOrder:
    """Remembers the last order and recomputes it only when the view or the positions changed."""

    def __init__(self) -> None:
        self._key: tuple[bytes, int] | None = None
        self.order: np.ndarray | None = None
        self.recomputed = False

    def get(self, means: np.ndarray, means_version: int, T_cam_world: np.ndarray) -> np.ndarray:
        """[G] uint32 back-to-front order of `means` [G, 3] for the camera `T_cam_world` [4, 4]."""
        key = (np.asarray(T_cam_world, dtype=np.float64).tobytes(), means_version)
        self.recomputed = key != self._key or self.order is None
        if self.recomputed:
            self.order = back_to_front(camera_depths(means, T_cam_world))
            self._key = key
        return self.order

    def invalidate(self) -> None:
        self._key = None
