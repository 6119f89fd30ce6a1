"""Optimiser construction: AdamW with layer-wise learning-rate decay (post-training, paper gamma 0.65)."""

from __future__ import annotations

import math
import re

import torch

_BLOCK_RE = re.compile(r"(?:^|\.)(?:blocks|layers)\.(\d+)\.")

# Per-frame decoder modules: the heads and what only they use. They sit at the output end of the network and
# get the full learning rate. The pose-conditioning network (`pose_encoder`) is one of them: it reads only the
# body pose, expression and gaze (no image features) and exists to condition the pose head, so it belongs with the
# head it feeds, not with the input stems (which is where a name-based rule had put it, at gamma ** (L + 1)).
DECODER_PREFIXES = (
    "canonical_head.", "pose_encoder.", "pose_head.", "deformer.", "skin_correction.", "lighting_code.", "light_estimator."
)  # fmt: skip
# The fusion transformer's inputs: the image MLP and crop embeddings on the encoder's tokens, the geometry tokens and
# the pixel-aligned path; with the encoder's final norm they form the stem of the transformer.
FUSION_STEM_PREFIXES = ("encoder.norm.", "image_mlp.", "crop_embed", "geometry.", "pixel_appearance.")


def layer_depths(names: list[str]) -> tuple[dict[str, int], int]:
    """Depth of every parameter name of an `LCAModel` (or any module with `encoder.blocks.i` / `transformer.blocks.i`
    / `blocks.i` names), and the maximum depth.

    The network read from input to output, one depth per block (as BEiT / MAE do for a ViT):
      0                  the image encoder's stem (patch embedding, class token, position embedding)
      1 .. E             encoder block i -> i + 1 (E encoder blocks)
      E + 1              the fusion stem (FUSION_STEM_PREFIXES)
      E + 2 .. E + 1 + T transformer block i -> E + 2 + i (T transformer blocks)
      E + T + 2          the decoder (DECODER_PREFIXES) and anything else after the transformer
    So encoder block i and transformer block i get distinct depths. A module with plain `blocks.i` (no encoder /
    transformer prefix) numbers them from 1, stems 0, heads last.
    """

    def block(prefix: str) -> int:
        ids = [int(m.group(1)) for n in names if n.startswith(prefix) and (m := _BLOCK_RE.search(n))]
        return max(ids, default=-1) + 1

    E, T = block("encoder."), block("transformer.")
    plain = block("") if not (E or T) else 0
    top = E + T + 2 if (E or T) else plain + 1
    out = {}
    for n in names:
        m = _BLOCK_RE.search(n)
        if n.startswith("encoder."):
            d = int(m.group(1)) + 1 if m else (E + 1 if n.startswith("encoder.norm.") else 0)
        elif n.startswith("transformer."):
            d = E + 2 + int(m.group(1)) if m else E + 1 + T  # its final norm closes the last block
        elif n.startswith(FUSION_STEM_PREFIXES):
            d = E + 1
        elif n.startswith(DECODER_PREFIXES) or "head" in n:
            d = top
        elif m is not None:
            d = int(m.group(1)) + 1
        else:
            d = 0 if (n.startswith(("embed", "patch", "pos_", "cls")) or "embed" in n) else top
        out[n] = d
    return out, top


def llrd_param_groups(model: torch.nn.Module, *, lr: float, weight_decay: float, gamma: float = 1.0) -> list[dict]:
    """Parameter groups where a parameter at depth d (`layer_depths`) gets lr * gamma ** (top - d).

    The convention is BEiT's and MAE's (`layer_decay`): gamma is the factor per block, so gamma = 1 means no decay
    and smaller gamma decays more; the decoder (depth `top`) always gets lr. The paper's 0.65 is read in this
    convention (its "decay of 0.65"), which is the one of the ViT fine-tuning recipes it follows; read the other
    way (1 - gamma per block, 0 = no decay) it would be 0.35 here. Biases, norms and embeddings get no weight
    decay. Frozen parameters are left out.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    depths, top = layer_depths([n for n, _ in named])
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in named:
        d = depths[name]
        no_decay = p.dim() < 2 or "norm" in name or "embed" in name or name.endswith(".bias")
        key = (d, no_decay)
        if key not in groups:
            scale = gamma ** (top - d)
            groups[key] = {
                "params": [],
                "lr": lr * scale,
                "lr_scale": scale,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "name": f"depth{d}{'-nodecay' if no_decay else ''}",
            }
        groups[key]["params"].append(p)
    return [groups[k] for k in sorted(groups)]


def merge_equal_groups(groups: list[dict]) -> list[dict]:
    """Parameter groups of equal learning-rate scale and weight decay joined into one (in order of first
    appearance): each group costs the optimiser its own pass (Python and kernel launches) every step, and with
    gamma = 1 every depth has the same rate, so the 2 x depth groups become 2."""
    out: dict[tuple[float, float], dict] = {}
    for g in groups:
        key = (g["lr_scale"], g["weight_decay"])
        if key in out:
            out[key]["params"] += g["params"]
            out[key]["name"] += f",{g['name']}"
        else:
            out[key] = {**g, "params": list(g["params"])}
    return list(out.values())


def make_optimizer(model: torch.nn.Module, *, lr: float, weight_decay: float, gamma: float = 1.0, betas=(0.9, 0.99)):
    groups = merge_equal_groups(llrd_param_groups(model, lr=lr, weight_decay=weight_decay, gamma=gamma))
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
