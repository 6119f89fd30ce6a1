"""Gaussian splats and cameras, and the two rasterisers behind one `rasterize()`."""

from core.raster.ply import load_ply, save_ply
from core.raster.rasterize import RasterOutput, rasterize
from core.raster.types import PART_NAMES, SH_C0, Camera, Gaussians, rgb_to_sh0, sh0_to_rgb

__all__ = [
    "PART_NAMES",
    "SH_C0",
    "Camera",
    "Gaussians",
    "RasterOutput",
    "load_ply",
    "rasterize",
    "rgb_to_sh0",
    "save_ply",
    "sh0_to_rgb",
]
