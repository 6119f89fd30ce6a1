"""Orbit / pan / zoom camera controller (pyrr) that produces the project's OpenCV `Camera`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyrr
import torch

from core.raster.types import Camera

# name -> (yaw, pitch, distance, target height): front, side, back, face close-up.
PRESETS: dict[str, tuple[float, float, float, float]] = {
    "front": (0.0, 0.0, 3.0, 0.9),
    "side": (90.0, 0.0, 3.0, 0.9),
    "back": (180.0, 0.0, 3.0, 0.9),
    "face": (0.0, 0.0, 0.7, 1.6),
}


@dataclass
class OrbitController:
    """A camera on a sphere around `target`; yaw 0 looks at the figure's front (from +z), pitch up positive."""

    target: np.ndarray
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    distance: float = 3.0
    fov_y_deg: float = 40.0

    @classmethod
    def default(cls) -> OrbitController:
        return cls(target=np.array([0.0, 0.9, 0.0]))

    def preset(self, name: str) -> None:
        if name not in PRESETS:
            raise ValueError(f"unknown camera preset {name!r}; choose one of {', '.join(PRESETS)}")
        self.yaw_deg, self.pitch_deg, self.distance, height = PRESETS[name]
        self.target = np.array([0.0, height, 0.0])

    def orbit(self, dx_px: float, dy_px: float, degrees_per_px: float = 0.3) -> None:
        self.yaw_deg -= dx_px * degrees_per_px
        self.pitch_deg = float(np.clip(self.pitch_deg + dy_px * degrees_per_px, -89.0, 89.0))

    def zoom(self, steps: float) -> None:
        self.distance = float(np.clip(self.distance * 0.9**steps, 0.05, 100.0))

    def pan(self, dx_px: float, dy_px: float, viewport_height: int) -> None:
        """Move the target in the view plane so the scene follows the mouse."""
        metres_per_px = 2.0 * self.distance * math.tan(math.radians(self.fov_y_deg) / 2) / max(viewport_height, 1)
        T_world_cam = np.linalg.inv(self.T_cam_world())
        right, down = T_world_cam[:3, 0], T_world_cam[:3, 1]
        self.target = self.target - right * dx_px * metres_per_px - down * dy_px * metres_per_px

    def focus(self, points: np.ndarray) -> None:
        """Centre on `points` [P, 3] and back off until their bounding sphere fits the view."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if len(points) == 0:
            return
        lo, hi = points.min(0), points.max(0)
        self.target = 0.5 * (lo + hi)
        radius = max(0.5 * float(np.linalg.norm(hi - lo)), 1e-3)
        self.distance = radius / math.sin(math.radians(self.fov_y_deg) / 2) * 1.05

    def eye(self) -> np.ndarray:  # [3]
        yaw, pitch = math.radians(self.yaw_deg), math.radians(self.pitch_deg)
        offset = np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
        return self.target + self.distance * offset

    def T_cam_world(self) -> np.ndarray:  # [4, 4] OpenCV world -> camera
        # pyrr builds the OpenGL look-at (row-vector convention); flip y and z into OpenCV axes.
        gl_view = np.asarray(pyrr.matrix44.create_look_at(self.eye(), self.target, np.array([0.0, 1.0, 0.0]))).T
        return np.diag([1.0, -1.0, -1.0, 1.0]) @ gl_view

    def camera(self, width: int, height: int) -> Camera:
        f = 0.5 * height / math.tan(math.radians(self.fov_y_deg) / 2)
        K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float32)
        return Camera(K, torch.as_tensor(self.T_cam_world(), dtype=torch.float32), int(width), int(height))
