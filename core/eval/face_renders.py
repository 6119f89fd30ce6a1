"""Close-up face pictures of synthetic people (core.data) with known expression, head rotation and gaze:
the ground truth that the face template is built from and that face tracking accuracy is measured on."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from core.data.cameras import intrinsics, look_at_matrix, to_camera
from core.data.lighting import studio_lighting
from core.raster.lighting import Lighting


class SyntheticFaceCamera:
    """One synthetic identity filmed by a fixed camera at eye height, square in front of its neutral face.

    `render` poses the head bone, the expression coefficients and the gaze, as the studio's EditState does:
    head rotation is world-axis axis-angle in degrees (pose.head.x|y|z), gaze (yaw right+, pitch up+) degrees.
    """

    def __init__(self, seed: int, *, size: int = 256, distance: float = 0.55, detail: float = 1.0) -> None:
        from core.data.body_bridge import world_body
        from core.data.identity import build_identity
        from core.data.identity_spec import draw_identity_spec

        if size < 64:
            raise ValueError(f"size={size}: face pictures below 64 px are too small for the face mesh; use >= 128")
        self.body = world_body()
        self.spec = draw_identity_spec(seed)
        self.identity = build_identity(self.spec, self.body, detail=detail)
        self.size = size
        J, E = self.body.num_bones, len(self.body.expression_names)
        zero = torch.zeros(1, J, 3, dtype=torch.float64)
        posed = self.body.pose(self.spec.phenotype, zero, torch.zeros(1, 3), torch.zeros(1, E), torch.zeros(1, 2))
        eyes = posed.joints[0, [self.body.bone_index["eye.L"], self.body.bone_index["eye.R"]]].mean(0)
        target = eyes.numpy() - np.array([0.0, 0.035, 0.0])  # between the eyes and the mouth
        cam_pos = target + np.array([0.0, 0.0, distance])
        # The face (about 0.2 m tall) fills about 60 % of the picture.
        focal = 0.6 * size * distance / 0.2
        self.K = intrinsics(focal, size, size)
        self.T_cam_world = look_at_matrix(cam_pos, target)
        self._camera = to_camera(self.K[None], self.T_cam_world[None], size, size)
        self._head = self.body.bone_index["head"]
        self._expr = {n: i for i, n in enumerate(self.body.expression_names)}

    def render(
        self,
        expression: Mapping[str, float] | None = None,
        *,
        head_deg: tuple[float, float, float] = (0.0, 0.0, 0.0),
        gaze_deg: tuple[float, float] = (0.0, 0.0),
        lighting: Lighting | None = None,
        background: float = 0.45,
    ) -> np.ndarray:
        """The face picture [size, size, 3] uint8 RGB over a grey background."""
        from core.data.render import lit_gaussians, pose_identity, render_views

        J, E = self.body.num_bones, len(self._expr)
        rot = torch.zeros(1, J, 3, dtype=torch.float64)
        rot[0, self._head] = torch.tensor(head_deg, dtype=torch.float64) * (math.pi / 180.0)
        expr = torch.zeros(1, E, dtype=torch.float64)
        for name, v in (expression or {}).items():
            if name not in self._expr:
                raise ValueError(f"unknown expression {name!r}; the body model has {sorted(self._expr)}")
            expr[0, self._expr[name]] = float(v)
        gaze = torch.tensor([gaze_deg], dtype=torch.float64) * (math.pi / 180.0)
        posed = pose_identity(self.identity, self.body, rot, torch.zeros(1, 3, dtype=torch.float64), expr, gaze)
        g = lit_gaussians(self.identity, posed, 0, lighting or studio_lighting())
        colour, alpha, _ = render_views(g, self._camera, with_parts=False)
        img = colour[0] + (1.0 - alpha[0, ..., None]) * background
        return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
