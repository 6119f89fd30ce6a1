"""A fixed set of Gaussians as an avatar (an example figure or a loaded .ply): lighting, view modes and part edits
apply; pose and expression have nothing to drive."""

from __future__ import annotations

import torch

from core.body.frame import Controls, DriveFrame
from core.raster.lighting import SHADING_GREY, shade
from core.raster.parts import apply_part_edits, face_centre
from core.raster.project import quat_to_rotmat
from core.raster.types import Gaussians, rgb_to_sh0, sh0_to_rgb


def normals_from_quats(g: Gaussians) -> torch.Tensor:  # [G, 3]
    """Each splat's thinnest axis, oriented away from the body's vertical axis."""
    R = quat_to_rotmat(g.quats)  # [G, 3, 3]
    thin = g.log_scales.argmin(-1)  # [G]
    n = R.gather(-1, thin[:, None, None].expand(-1, 3, 1))[..., 0]  # column of the thinnest axis
    outward = g.means.clone()
    outward[:, 1] = 0.0
    sign = torch.where((n * outward).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(n)
    return n * sign


class StaticAvatar:
    """Fixed Gaussians: `drive` lights them (Lambertian, normals from each splat's thinnest axis) and edits parts."""

    def __init__(self, gaussians: Gaussians, *, name: str, description: str) -> None:
        if gaussians.means.dim() != 2:
            raise ValueError(f"StaticAvatar needs an unbatched set (means [G, 3]), got {tuple(gaussians.means.shape)}")
        self._g = gaussians.detach().to(torch.float32)
        self.name = name
        self.description = description
        self.controls = Controls()
        self._albedo = sh0_to_rgb(self._g.sh[:, 0, :]).clamp(0, 1)  # [G, 3]
        self._normals = normals_from_quats(self._g)

    def canonical(self) -> Gaussians:
        return self._g

    def face_target(self) -> tuple[float, float, float]:
        return face_centre(self._g, quantile=0.93)

    def drive(self, frame: DriveFrame) -> Gaussians:
        g = self._g
        if frame.lit:
            albedo = torch.full_like(self._albedo, SHADING_GREY) if frame.shading_only else self._albedo
            sh = torch.zeros_like(g.sh)
            sh[:, 0, :] = rgb_to_sh0(shade(albedo, self._normals, frame.lighting))
            g = g.replace(sh=sh)
        return apply_part_edits(g, frame.parts)
