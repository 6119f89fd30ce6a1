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
    anchors: dict[str, Tensor] | None = None,  # spec["anchors"] as tensors on params' device (avoids copies)
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
    for feature, values in spec["anchors"].items():
        a = anchors[feature] if anchors is not None else params.new_tensor(values)
        per_feature[feature] = interpolation_weights(value(feature), a)
    # Race shares are the three values normalised to sum to one (1/3 each when all are zero).
    race = torch.stack([value(r) for r in spec["race"]], dim=1)  # [B, 3]
    total = race.sum(1, keepdim=True)
    per_feature["race"] = torch.where(total > 0, race / total.clamp_min(1e-12), torch.full_like(race, 1 / 3))
    columns = torch.stack([per_feature[f][:, k] for f, k in spec["columns"]], dim=1)  # [B, C]
    mask = mask.to(params.dtype)
    return torch.prod(columns[:, None, :] * mask[None] + (1.0 - mask[None]), dim=-1)


def column_table(spec: dict[str, Any], dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Per-column tensors for `phenotype_target_weights_fast` (anny's anchors are evenly spaced: hat functions)."""
    names: list[str] = spec["names"]
    src, fixed, anchor, spacing, lo, hi, race_slot = [], [], [], [], [], [], []
    for feature, k in spec["columns"]:
        if feature == "race":
            src.append(-1), fixed.append(0.0), anchor.append(0.0), spacing.append(1.0), lo.append(0.0), hi.append(1.0)
            race_slot.append(int(k))
            continue
        a = [float(x) for x in spec["anchors"][feature]]
        steps = [b - c for b, c in zip(a[1:], a[:-1], strict=True)]
        if max(steps) - min(steps) > 1e-9 * max(steps):
            raise ValueError(f"phenotype anchors of {feature!r} are not evenly spaced: {a}")
        src.append(names.index(feature) if feature in names else -1)
        fixed.append(float(spec["fixed"].get(feature, 0.5)))
        anchor.append(a[k]), spacing.append(steps[0]), lo.append(a[0]), hi.append(a[-1])
        race_slot.append(-1)
    race_src = [names.index(r) if r in names else -1 for r in spec["race"]]
    race_fixed = [float(spec["fixed"].get(r, 0.5)) for r in spec["race"]]

    def f(x: list[float]) -> Tensor:
        return torch.tensor(x, dtype=dtype)

    return {
        "src": torch.tensor(src),
        "fixed": f(fixed),
        "anchor": f(anchor),
        "spacing": f(spacing),
        "lo": f(lo),
        "hi": f(hi),
        "race_slot": torch.tensor(race_slot),
        "race_src": torch.tensor(race_src),
        "race_fixed": f(race_fixed),
    }


def _gather_values(params: Tensor, src: Tensor, fixed: Tensor) -> Tensor:
    """params [B, P] -> [B, n]: params[:, src] where src >= 0, else the fixed value."""
    taken = params[:, src.clamp_min(0)]
    return torch.where(src >= 0, taken, fixed.to(params.dtype))


def phenotype_target_weights_fast(params: Tensor, table: dict[str, Tensor], mask: Tensor) -> Tensor:
    """Same as `phenotype_target_weights` in a dozen kernel launches (for the GPU). params [B, P] -> [B, K]."""
    dt = params.dtype
    x = _gather_values(params, table["src"], table["fixed"])  # [B, C]
    x = torch.minimum(torch.maximum(x, table["lo"].to(dt)), table["hi"].to(dt))
    hat = (1.0 - (x - table["anchor"].to(dt)).abs() / table["spacing"].to(dt)).clamp_min(0.0)
    race = _gather_values(params, table["race_src"], table["race_fixed"])  # [B, 3]
    total = race.sum(1, keepdim=True)
    share = torch.where(total > 0, race / total.clamp_min(1e-12), torch.full_like(race, 1 / 3))
    columns = torch.where(table["race_slot"] >= 0, share[:, table["race_slot"].clamp_min(0)], hat)  # [B, C]
    mask = mask.to(dt)
    return torch.prod(columns[:, None, :] * mask[None] + (1.0 - mask[None]), dim=-1)
