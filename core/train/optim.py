"""Optimiser construction: AdamW with layer-wise learning-rate decay (post-training, paper gamma 0.65)."""

from __future__ import annotations

import math
import re

import torch

_LAYER_RE = re.compile(r"(?:^|\.)(?:blocks|layers)\.(\d+)\.")


def layer_id(name: str, num_layers: int) -> int:
    """Depth of a parameter: 0 for embeddings/encoder stems, i+1 for transformer block i, num_layers+1 for heads.

    Encoder blocks and fusion-transformer blocks share one numbering by their prefix order: the caller passes
    names as they appear in `named_parameters()`, where `encoder.` comes before `transformer.` and heads last.
    """
    m = _LAYER_RE.search(name)
    if m is not None:
        return min(int(m.group(1)) + 1, num_layers)
    if any(k in name for k in ("head", "deformer", "appearance")):
        return num_layers + 1
    return 0


def llrd_param_groups(model: torch.nn.Module, *, lr: float, weight_decay: float, gamma: float = 1.0) -> list[dict]:
    """Parameter groups where a parameter at depth d gets lr * gamma ** (L + 1 - d); gamma 1 disables the decay.

    Biases, norms and embeddings get no weight decay. Frozen parameters are left out.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    depths = [int(m.group(1)) + 1 for n, _ in named if (m := _LAYER_RE.search(n))]
    num_layers = max(depths, default=0)
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in named:
        d = layer_id(name, num_layers)
        no_decay = p.dim() < 2 or "norm" in name or "embed" in name or name.endswith(".bias")
        key = (d, no_decay)
        if key not in groups:
            scale = gamma ** (num_layers + 1 - d)
            groups[key] = {
                "params": [],
                "lr": lr * scale,
                "lr_scale": scale,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "name": f"depth{d}{'-nodecay' if no_decay else ''}",
            }
        groups[key]["params"].append(p)
    return [groups[k] for k in sorted(groups)]


def make_optimizer(model: torch.nn.Module, *, lr: float, weight_decay: float, gamma: float = 1.0, betas=(0.9, 0.99)):
    groups = llrd_param_groups(model, lr=lr, weight_decay=weight_decay, gamma=gamma)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    fused = all(p.is_cuda for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused or None)


def lr_at(step: int, *, base_lr: float, warmup: int, total: int, min_ratio: float = 0.05) -> float:
    """Linear warm-up then cosine decay to `min_ratio * base_lr`."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
