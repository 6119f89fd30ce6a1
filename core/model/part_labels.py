"""Garment labels that follow the garment's real extent, from the avatar's own colours.

A young part head paints "upper garment" down to the wrists and "lower garment" down to the ankles even where the
decoded colours show bare forearms under short sleeves or bare shins under shorts; recolouring the top then dyes
the skin. Each garment's Gaussians are split into two colour clusters, one started at the avatar's skin colour and
one at the garment's own colour; anchors whose Gaussians mostly fall in the skin cluster (after a vote among
neighbouring anchors, so single speckles neither punch holes nor leave islands) are relabelled as skin.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.raster.types import PART_NAMES

SKIN, FACE = PART_NAMES.index("skin"), PART_NAMES.index("face")
GARMENTS = (PART_NAMES.index("upper_garment"), PART_NAMES.index("lower_garment"))
MIN_SEPARATION = (
    0.12  # distance (in `_features` space) between skin and garment colour below which the two cannot be told apart
)
NEIGHBOURS = 12  # anchors that vote on each anchor's label
MIN_OPACITY = 0.2  # fainter Gaussians carry little colour evidence


def _skin_colour(albedo: Tensor, parts: Tensor, opacity: Tensor) -> Tensor | None:  # [3]
    """Median albedo of the visible Gaussians labelled skin (else face); None when there are none."""
    for label in (SKIN, FACE):
        sel = (parts == label) & (opacity > MIN_OPACITY)
        if int(sel.sum()) >= 16:
            return albedo[sel].median(0).values
    return None


def _features(rgb: Tensor) -> Tensor:  # [..., 3]
    """An opponent colour space that weighs hue over brightness (shading darkens skin without making it cloth)."""
    r, g, b = rgb.unbind(-1)
    return torch.stack([0.5 * (r + g + b) / 3, r - g, (r + g) / 2 - b], -1)


def _skin_cluster(colours: Tensor, skin: Tensor, k: int = 4, steps: int = 10) -> tuple[Tensor, Tensor]:
    """k-means on `colours` [M, 3] (RGB) in `_features` space with the first centre started at `skin`.

    Returns (is_skin [M] bool: nearest to a centre within MIN_SEPARATION of the skin-started one, the distance from
    the skin centre to the farthest centre that holds at least a tenth of the colours)."""
    x, s = _features(colours), _features(skin)
    centres = [s]
    for _ in range(1, k):  # each next centre: a colour far from all centres so far (a high quantile, not an outlier)
        d = torch.cdist(x, torch.stack(centres)).min(-1).values
        centres.append(x[(d - d.quantile(0.9)).abs().argmin()])
    c = torch.stack(centres)
    for _ in range(steps):
        assign = torch.cdist(x, c).argmin(-1)
        for j in range(k):
            if bool((assign == j).any()):
                c[j] = x[assign == j].mean(0)
    assign = torch.cdist(x, c).argmin(-1)
    counts = torch.bincount(assign, minlength=k)
    dist = (c - c[0]).norm(dim=-1)  # [k]
    gap = max((float(dist[j]) for j in range(1, k) if counts[j] >= 0.1 * len(x)), default=0.0)
    return dist[assign] < MIN_SEPARATION, gap


def _neighbour_vote(points: Tensor, values: Tensor, k: int, chunk: int = 2048) -> Tensor:  # [M]
    """Mean of `values` [M] over each point's k nearest points (itself included) among `points` [M, 3]."""
    k = min(k, points.shape[0])
    out = torch.empty_like(values)
    for s in range(0, points.shape[0], chunk):
        idx = torch.cdist(points[s : s + chunk], points).topk(k, largest=False).indices  # [c, k]
        out[s : s + chunk] = values[idx].mean(-1)
    return out


@torch.no_grad()
def garment_extent_parts(
    albedo: Tensor,  # [A, K, 3] in [0, 1]
    opacity_logits: Tensor,  # [A, K]
    parts: Tensor,  # [A, K] int64 index into PART_NAMES
    anchors: Tensor,  # [A, 3] rest anchor positions
) -> Tensor:  # [A, K] int64
    """`parts` with each garment's skin-coloured anchors relabelled as skin (garments as short as they look)."""
    A, K = parts.shape
    if albedo.shape != (A, K, 3) or opacity_logits.shape != (A, K) or anchors.shape != (A, 3):
        raise ValueError(
            f"garment_extent_parts: expected albedo [A, K, 3], opacity [A, K], anchors [A, 3] for parts {(A, K)}, "
            f"got {tuple(albedo.shape)}, {tuple(opacity_logits.shape)}, {tuple(anchors.shape)}"
        )
    albedo, anchors = albedo.float(), anchors.float()
    opacity = torch.sigmoid(opacity_logits.float())
    skin = _skin_colour(albedo, parts, opacity)
    out = parts.clone()
    if skin is None:
        return out
    for garment in GARMENTS:
        sel = (parts == garment) & (opacity > MIN_OPACITY)
        if int(sel.sum()) < 32:
            continue
        is_skin, gap = _skin_cluster(albedo[sel], skin)
        if gap < MIN_SEPARATION:
            continue  # a skin-coloured garment: the colours cannot say where it ends
        # per anchor: the opacity-weighted share of its garment Gaussians that look like skin
        vote = torch.zeros(A, K, device=albedo.device)
        vote[sel] = is_skin.float()
        weight = torch.where(sel, opacity, torch.zeros_like(opacity))
        mine = weight.sum(-1) > 0  # anchors with visible Gaussians of this garment
        share = (vote * weight).sum(-1)[mine] / weight.sum(-1)[mine]
        smooth = _neighbour_vote(anchors[mine], share, NEIGHBOURS)
        bare = torch.zeros(A, dtype=torch.bool, device=albedo.device)
        bare[mine] = smooth > 0.5
        out[bare[:, None] & (parts == garment)] = SKIN
    return out


def relabelled_logits(part_logits: Tensor, parts: Tensor) -> Tensor:  # [..., P]
    """`part_logits` [..., P] changed only where `parts` [...] differs from their argmax, so argmax == parts."""
    current = part_logits.argmax(-1)
    changed = current != parts
    if not bool(changed.any()):
        return part_logits
    out = part_logits.clone()
    top = part_logits.max(-1).values
    out[changed] = out[changed].scatter(-1, parts[changed][:, None], (top[changed] + 1.0)[:, None])
    return out


def with_garment_extent(state):  # IdentityState -> IdentityState (one identity, no batch dim)
    """`state` whose part logits label skin-coloured garment regions as skin (see `garment_extent_parts`)."""
    import dataclasses

    c = state.canonical
    parts = garment_extent_parts(c.albedo, c.opacity_logits, c.part_logits.argmax(-1), state.anchors)
    logits = relabelled_logits(c.part_logits, parts.to(c.part_logits.device))
    if logits is c.part_logits:
        return state
    return dataclasses.replace(state, canonical=dataclasses.replace(c, part_logits=logits))
