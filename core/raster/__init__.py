"""Gaussian splats and cameras, and the two rasterisers behind one `rasterize()`."""

from core.raster.types import PART_NAMES, SH_C0, Camera, Gaussians, rgb_to_sh0, sh0_to_rgb

__all__ = ["PART_NAMES", "SH_C0", "Camera", "Gaussians", "rgb_to_sh0", "sh0_to_rgb"]
