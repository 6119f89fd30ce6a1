"""Multimodal transformer: image self-attention, geometry self-attention, geometry->image cross-attention."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from core.model.config import TransformerConfig
from core.model.encoder import Mlp


class CrossAttention(nn.Module):
    """Queries from one token set, keys/values from another (scaled_dot_product_attention)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, ctx: Tensor) -> Tensor:
        B, T, D = x.shape
        S = ctx.shape[1]
        h, hd = self.heads, D // self.heads
        q = self.q(x).view(B, T, h, hd).transpose(1, 2)  # (B, h, T, hd)
        # unbind, not kv[0], kv[1]: its gradient is one stack instead of two zero-filled copies summed
        k, v = self.kv(ctx).view(B, S, 2, h, hd).permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, S, hd) each
        y = F.scaled_dot_product_attention(q, k, v)  # (B, h, T, hd)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class SelfAttention(CrossAttention):
    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, x)


class MultimodalBlock(nn.Module):
    """Pre-norm block: images attend to images, geometry to geometry, then geometry queries the images."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.img_norm1 = nn.LayerNorm(dim)
        self.img_attn = SelfAttention(dim, heads)
        self.img_norm2 = nn.LayerNorm(dim)
        self.img_mlp = Mlp(dim, hidden)
        self.geo_norm1 = nn.LayerNorm(dim)
        self.geo_attn = SelfAttention(dim, heads)
        self.geo_norm_q = nn.LayerNorm(dim)
        self.geo_norm_kv = nn.LayerNorm(dim)
        self.cross_attn = CrossAttention(dim, heads)
        self.geo_norm2 = nn.LayerNorm(dim)
        self.geo_mlp = Mlp(dim, hidden)

    def forward(self, img: Tensor, geo: Tensor) -> tuple[Tensor, Tensor]:
        """img [B, T, D] image tokens, geo [B, A, D] geometry tokens -> both updated."""
        img = img + self.img_attn(self.img_norm1(img))
        img = img + self.img_mlp(self.img_norm2(img))
        geo = geo + self.geo_attn(self.geo_norm1(geo))
        geo = geo + self.cross_attn(self.geo_norm_q(geo), self.geo_norm_kv(img))
        geo = geo + self.geo_mlp(self.geo_norm2(geo))
        return img, geo


class MultimodalTransformer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([MultimodalBlock(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, img: Tensor, geo: Tensor) -> Tensor:
        """img [B, T, D], geo [B, A, D] -> geometry features [B, A, D]."""
        for blk in self.blocks:
            img, geo = blk(img, geo)
        return self.norm(geo)
