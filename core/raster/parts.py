"""Per-part edits of a set of Gaussians, the one implementation every avatar kind uses: hide, recolour
(hue/saturation/brightness), swap a part for another avatar's; and the face centre of a labelled set."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from core.raster.types import PART_NAMES, Gaussians, rgb_to_sh0, sh0_to_rgb


@dataclass(frozen=True)
class PartEdit:
    """Per-part appearance edits (one per entry of PART_NAMES)."""

    visible: bool = True
    hue: float = 0.0  # turns in [-0.5, 0.5]
    saturation: float = 1.0  # multiplier
    brightness: float = 1.0  # multiplier
    looseness: float = 1.0  # deformer strength for loose garments (0 = pure skinning)
    swap_from: str = ""  # avatar file whose part replaces this one ("" = keep own)

    @property
    def is_identity(self) -> bool:
        return (
            self.visible
            and self.hue == 0.0
            and self.saturation == 1.0
            and self.brightness == 1.0
            and not self.swap_from
        )


NO_PART_EDITS: tuple[PartEdit, ...] = tuple(PartEdit() for _ in PART_NAMES)


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


def swap_parts(
    gaussians: Gaussians,  # unbatched, parts [G]
    donors: dict[int, Gaussians],  # part index -> the donor avatar's Gaussians driven the same way (parts required)
) -> Gaussians:
    """Each part in `donors` replaced by the donor's Gaussians of that part."""
    if not donors or gaussians.parts is None:
        return gaussians
    g = gaussians
    pieces = [g.index(~torch.isin(g.parts, torch.tensor(list(donors), device=g.parts.device)))]
    for i, theirs in donors.items():
        if theirs.parts is None:
            raise ValueError(f"the donor of {PART_NAMES[i]} has no part labels")
        pieces.append(theirs.to(g.means.device).index(theirs.parts == i))
    return Gaussians.cat(pieces)


def face_centre(gaussians: Gaussians, quantile: float = 0.95) -> tuple[float, float, float]:
    """The middle of the face: the mean of the face-labelled Gaussians, else of those above the height `quantile`."""
    g = gaussians
    face = g.means[g.parts == PART_NAMES.index("face")] if g.parts is not None else g.means[:0]
    c = face.mean(0) if face.shape[0] else g.means[g.means[:, 1] > g.means[:, 1].quantile(quantile)].mean(0)
    return (float(c[0]), float(c[1]), float(c[2]))
