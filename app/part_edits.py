"""Per-part appearance edits on a set of Gaussians: hide, recolour (hue/saturation/brightness).

Used for avatars whose model does not apply these edits itself (the static example figures). The colour
maths is small and local here; it belongs in `core.model` next to the avatar's own part operations.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from app.state import PartEdit
from core.raster.types import PART_NAMES, Gaussians, rgb_to_sh0, sh0_to_rgb


def hue_saturation_matrix(hue_turns: float, saturation: float, brightness: float) -> Tensor:  # [3, 3]
    """Linear RGB map: rotate hue about the grey axis, scale chroma, then scale brightness."""
    a = 2 * math.pi * hue_turns
    k = torch.full((3,), 1 / math.sqrt(3.0), dtype=torch.float64)
    K = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=torch.float64)
    rot = torch.eye(3, dtype=torch.float64) + math.sin(a) * K + (1 - math.cos(a)) * (K @ K)
    grey = torch.outer(k, k)  # projection onto the grey axis
    sat = grey + saturation * (torch.eye(3, dtype=torch.float64) - grey)
    return brightness * sat @ rot


def apply_part_edits(
    gaussians: Gaussians,  # unbatched, parts [G] required for any edit
    edits: tuple[PartEdit, ...],  # one per PART_NAMES entry
) -> Gaussians:
    """Hidden parts are removed; recoloured parts get their DC colour (and higher SH bands) remapped."""
    if len(edits) != len(PART_NAMES):
        raise ValueError(f"expected {len(PART_NAMES)} part edits (one per part), got {len(edits)}")
    if all(e.is_identity for e in edits):
        return gaussians
    if gaussians.parts is None:
        raise ValueError("this avatar carries no part labels, so parts cannot be hidden or recoloured")
    g = gaussians
    sh = g.sh
    for i, e in enumerate(edits):
        if e.hue == 0.0 and e.saturation == 1.0 and e.brightness == 1.0:
            continue
        sel = g.parts == i
        if not bool(sel.any()):
            continue
        M = hue_saturation_matrix(e.hue, e.saturation, e.brightness).to(sh)
        if sh is g.sh:
            sh = sh.clone()
        rgb = sh0_to_rgb(sh[sel, 0, :]) @ M.T
        new = sh[sel]
        new[:, 0, :] = rgb_to_sh0(rgb.clamp(0.0, 1.0))
        if new.shape[1] > 1:
            new[:, 1:, :] = new[:, 1:, :] @ M.T
        sh[sel] = new
    if sh is not g.sh:
        g = g.replace(sh=sh)
    hidden = [i for i, e in enumerate(edits) if not e.visible]
    if hidden:
        keep = ~torch.isin(g.parts, torch.tensor(hidden, device=g.parts.device))
        g = g.index(keep)
    return g


def part_counts(gaussians: Gaussians) -> dict[str, int]:
    """How many Gaussians carry each part label."""
    if gaussians.parts is None:
        return {}
    counts = torch.bincount(gaussians.parts.flatten(), minlength=len(PART_NAMES))
    return {name: int(counts[i]) for i, name in enumerate(PART_NAMES)}
