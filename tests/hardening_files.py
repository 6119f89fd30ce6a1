"""Small objects shared by the hardening tests."""

from __future__ import annotations

import torch

from core.raster.types import Gaussians


def tiny_gaussians() -> Gaussians:
    """Four small Gaussians at the origin, DC colour only."""
    n = 4
    return Gaussians(
        means=torch.zeros(n, 3), quats=torch.tensor([[1.0, 0, 0, 0]] * n), log_scales=torch.full((n, 3), -3.0),
        opacity_logits=torch.zeros(n), sh=torch.zeros(n, 1, 3),
    )  # fmt: skip
