"""A coarse body estimate for a photo from its person box alone: the template body standing in its reference
pose, seen from the photo's view (front, side, back), with a camera whose focal length and principal point put
the body's projected outline on the box. What personalisation needs when no body tracker has run on the photo."""

from __future__ import annotations

import math

import torch

from core.model.crops import BodyEstimate
from core.model.rig import BodyRig
from core.raster.types import Camera

VIEW_YAW_DEG = {"front": 0.0, "side": 90.0, "back": 180.0, "unknown": 0.0}
DISTANCE = 3.0  # metres from the camera to the body's centre


def box_estimate(
    rig: BodyRig,
    box: tuple[float, float, float, float],  # x0, y0, x1, y1 pixels of the whole person
    size: tuple[int, int],  # (H, W) of the photo
    view: str = "front",
    shape: torch.Tensor | None = None,  # [S] identity shape; None: the template's
) -> BodyEstimate:
    """The body estimate whose rest-pose outline, projected by its camera, fills `box` (height-fitted, centred)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    H, W = size
    if not (x1 > x0 and y1 > y0) or H < 1 or W < 1:
        raise ValueError(
            f"box_estimate: expected a box x0 < x1, y0 < y1 inside a photo of H, W >= 1, got {box}, {size}"
        )
    if view not in VIEW_YAW_DEG:
        raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEW_YAW_DEG)}")
    params = rig.neutral_params(1)
    if shape is not None:
        params = params.with_(shape=shape.reshape(1, -1).to(params.shape))
    verts = rig.rest(params.shape if rig.num_shape else None)[0][0].to(torch.float64)  # [V, 3]
    lo, hi = verts.min(0).values, verts.max(0).values
    centre = (lo + hi) / 2
    yaw = math.radians(VIEW_YAW_DEG[view])
    eye = centre + DISTANCE * torch.tensor([math.sin(yaw), 0.0, math.cos(yaw)], dtype=torch.float64)
    cam = Camera.look_at(tuple(eye.tolist()), tuple(centre.tolist()), width=W, height=H, dtype=torch.float64)
    T = cam.T_cam_world
    pc = verts @ T[:3, :3].T + T[:3, 3]  # [V, 3] camera frame
    xn, yn = pc[:, 0] / pc[:, 2], pc[:, 1] / pc[:, 2]  # normalised image coordinates
    f = (y1 - y0) / float(yn.max() - yn.min())  # the body's projected height fills the box's
    cx = (x0 + x1) / 2 - f * float(xn.max() + xn.min()) / 2
    cy = (y0 + y1) / 2 - f * float(yn.max() + yn.min()) / 2
    K = torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], dtype=torch.float32)
    return BodyEstimate(params, Camera(K, T.to(torch.float32), W, H))
