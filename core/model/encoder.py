"""ViT image encoder (DINOv2 parameter names) and a loader for local DINOv2 and Sapiens checkpoints."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.constants import device_constant
from core.model.config import EncoderConfig

log = logging.getLogger(__name__)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention` (flash/memory-efficient kernels)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x [B, T, D]; mask [T, T] additive attention bias (or bool, True: may attend) or None -> [B, T, D]."""
        B, T, D = x.shape
        # unbind, not qkv[:, :, 0] ...: its gradient is one stack instead of three zero-filled copies summed
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).unbind(2)  # (B, T, h, hd) each
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))  # y (B, h, T, hd)


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, qkv_bias)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), mask))
        return x + self.ls2(self.mlp(self.norm2(x)))


class ViTEncoder(nn.Module):
    """Patch embedding + class token + learned positions + pre-norm blocks; returns patch tokens [B, T, D].

    The learned position table is stored for a square `pos_grid` (as in DINOv2) and resampled bicubically to
    each crop's patch grid, so full-body and face crops of different shapes share one encoder.
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        D = cfg.width
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, D, cfg.patch_size, cfg.patch_size, padding=cfg.patch_padding)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_grid = self.patch_grid(*cfg.body_crop)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + self.pos_grid[0] * self.pos_grid[1], D) * 0.02)
        self.blocks = nn.ModuleList([ViTBlock(D, cfg.heads, cfg.mlp_ratio, cfg.qkv_bias) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(D, eps=1e-6)
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(1, 3, 1, 1), persistent=False)
        if cfg.weights:
            load_vit_weights(self, cfg.weights, fmt=cfg.weights_format)
        if cfg.freeze:
            if not cfg.weights:
                log.warning(
                    "encoder.freeze is set but encoder.weights is empty: the frozen image encoder keeps its random "
                    "initialisation (set encoder.weights to a Sapiens / DINOv2 file, or freeze: false)"
                )
            self.requires_grad_(False)

    def patch_grid(self, h: int, w: int) -> tuple[int, int]:
        """(gh, gw) patches of an h x w image."""
        p, pad = self.cfg.patch_size, self.cfg.patch_padding
        return (h + 2 * pad - p) // p + 1, (w + 2 * pad - p) // p + 1

    def positions(self, grid: tuple[int, int]) -> Tensor:
        """Learned patch positions resampled to `grid` -> [1, gh*gw, D] (class-token position excluded)."""
        table = self.pos_embed[:, 1:]
        if grid == self.pos_grid:
            return table
        return resample_positions(table, self.pos_grid, grid)

    def embed(self, images: Tensor) -> Tensor:
        """images [B, 3, H, W] in [0, 1] -> patch embeddings with their positions [B, gh*gw, D]."""
        x = self.patch_embed.proj((images - self.pixel_mean) / self.pixel_std)  # (B, D, gh, gw)
        grid = (x.shape[-2], x.shape[-1])
        return x.flatten(2).transpose(1, 2) + self.positions(grid)  # (B, T, D)

    def forward(self, images: Tensor) -> Tensor:
        """images [B, 3, H, W] in [0, 1] -> patch tokens [B, gh*gw, D]."""
        B = images.shape[0]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(B, -1, -1)
        x = torch.cat([cls, self.embed(images)], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 1:]

    def forward_joint(self, *images: Tensor) -> Tensor:
        """Sets of images of one count B and different sizes ([B, 3, H_i, W_i] in [0, 1]) -> their patch tokens
        side by side [B, T_1 + T_2 + ..., D], each set's as `forward` gives them, in one pass: the sets' tokens in
        one sequence (then their class tokens) with attention kept within each set by a block-diagonal mask, so
        a block's launches serve all the sets at once."""
        B = images[0].shape[0]
        parts = [self.embed(im) for im in images]  # (B, T_i, D)
        sizes = tuple(p.shape[1] for p in parts)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(B, len(parts), -1)  # one class token per set
        x = torch.cat([*parts, cls], dim=1)  # (B, sum T_i + n, D)
        dev = x.device.type  # the mask in the dtype the attention's inputs will have (bf16 under autocast)
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
        mask = _joint_mask(sizes, x.device, dtype)
        for blk in self.blocks:
            x = blk(x, mask)
        return self.norm(x)[:, : sum(sizes)]


@device_constant
def _joint_mask(sizes: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Tensor:
    """[L, L] attention bias, L = sum(sizes) + len(sizes): 0 where token i may attend to token j (both of one set;
    set s: its `sizes[s]` patch tokens, in order, and its class token, the s-th of the trailing ones), -inf
    elsewhere. Additive, in the attention's dtype and with rows 16-aligned in memory, as the memory-efficient
    kernel takes it: a boolean mask would be converted and padded again at every call."""
    group = torch.cat([torch.full((t,), s) for s, t in enumerate(sizes)] + [torch.arange(len(sizes))])  # [L]
    L = group.shape[0]
    bias = torch.zeros(L, L + (-L) % 16, dtype=dtype)
    bias[:, :L].masked_fill_(group[:, None] != group[None, :], float("-inf"))
    return bias.to(device)[:, :L]


def resample_positions(table: Tensor, src: tuple[int, int], dst: tuple[int, int]) -> Tensor:
    """Bicubic resampling of a position table [1, sh*sw, D] from grid `src` to `dst` -> [1, dh*dw, D]."""
    D = table.shape[-1]
    if table.shape[1] != src[0] * src[1]:
        raise ValueError(f"position table has {table.shape[1]} entries, not {src[0]}x{src[1]}")
    img = table.reshape(1, src[0], src[1], D).permute(0, 3, 1, 2)
    img = F.interpolate(img.float(), size=dst, mode="bicubic", align_corners=False).to(table.dtype)
    return img.permute(0, 2, 3, 1).reshape(1, dst[0] * dst[1], D)


# ----------------------------------------------------------------------------------------------------------
# Checkpoint loading
# ----------------------------------------------------------------------------------------------------------

# Keys that checkpoints carry but a feature encoder does not use.
_IGNORED = re.compile(r"^(mask_token|head\..*|decode_head\..*|neck\..*|data_preprocessor\..*|fc_norm\..*)$")

# Sapiens (mmpretrain VisionTransformer) -> our (DINOv2) names.
_SAPIENS_RULES = [
    (r"^patch_embed\.projection\.", "patch_embed.proj."),
    (r"^layers\.(\d+)\.ln1\.", r"blocks.\1.norm1."),
    (r"^layers\.(\d+)\.ln2\.", r"blocks.\1.norm2."),
    (r"^layers\.(\d+)\.attn\.qkv\.", r"blocks.\1.attn.qkv."),
    (r"^layers\.(\d+)\.attn\.proj\.", r"blocks.\1.attn.proj."),
    (r"^layers\.(\d+)\.ffn\.layers\.0\.0\.", r"blocks.\1.mlp.fc1."),
    (r"^layers\.(\d+)\.ffn\.layers\.1\.", r"blocks.\1.mlp.fc2."),
    (r"^layers\.(\d+)\.ffn\.gamma2$", r"blocks.\1.ls2.gamma"),
    (r"^layers\.(\d+)\.attn\.gamma1$", r"blocks.\1.ls1.gamma"),
    (r"^ln1\.", "norm."),  # mmpretrain's final norm
    (r"^pre_norm\.", "pre_norm."),
]


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a .safetensors or .pth/.pt checkpoint (torch.load with weights_only=True; no pickle code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights {path} do not exist; set encoder.weights to a local file or null")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model", "teacher", "student"):
            if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ValueError(f"{path}: expected a mapping of parameter names to tensors")
    return sd


def detect_format(sd: dict[str, Tensor]) -> str:
    keys = list(sd)
    if any(k.startswith(("backbone.layers.", "layers.")) or "patch_embed.projection" in k for k in keys):
        return "sapiens"
    if any(k.startswith("blocks.") or k.startswith("backbone.blocks.") for k in keys):
        return "dinov2"
    raise ValueError("could not tell the checkpoint format (neither DINOv2 'blocks.*' nor Sapiens 'layers.*' keys)")


def convert_state_dict(sd: dict[str, Tensor], fmt: str) -> dict[str, Tensor]:
    """Rename a DINOv2 or Sapiens state dict to this encoder's names (positions keep their source grid)."""
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        k = key
        for prefix in ("backbone.", "module.", "encoder."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        if _IGNORED.match(k):
            continue
        if fmt == "sapiens":
            for pattern, repl in _SAPIENS_RULES:
                new = re.sub(pattern, repl, k)
                if new != k:
                    k = new
                    break
        out[k] = value
    return out


def _source_grid(n: int, hint: tuple[int, int]) -> tuple[int, int]:
    """Grid shape of a position table with n patch entries: square, else the aspect ratio of `hint`."""
    s = int(round(math.sqrt(n)))
    if s * s == n:
        return s, s
    ratio = hint[0] / hint[1]
    h = int(round(math.sqrt(n * ratio)))
    for hh in (h - 1, h, h + 1):
        if hh > 0 and n % hh == 0:
            return hh, n // hh
    raise ValueError(f"cannot infer the grid of a position table with {n} entries; it is neither square nor {hint}")


def load_vit_weights(encoder: ViTEncoder, path: str | Path, fmt: str = "auto") -> None:
    """Load a local DINOv2 or Sapiens checkpoint into `encoder`; shapes and missing keys are checked."""
    sd = read_state_dict(path)
    fmt = detect_format(sd) if fmt == "auto" else fmt
    if fmt not in ("dinov2", "sapiens"):
        raise ValueError(f"weights_format must be 'auto', 'dinov2' or 'sapiens', got {fmt!r}")
    sd = convert_state_dict(sd, fmt)
    if "pre_norm.weight" in sd:
        raise ValueError(f"{path}: checkpoint uses a pre-norm after the patch embedding, which this encoder lacks")
    if any(k.startswith("register_tokens") for k in sd):
        raise ValueError(f"{path}: DINOv2 checkpoints with register tokens are not supported; use one without")
    own = encoder.state_dict()
    # Position table: drop or add the class-token row, then resample to our grid.
    if "pos_embed" in sd:
        pe = sd["pos_embed"]
        if pe.dim() == 2:
            pe = pe[None]
        n = pe.shape[1]
        has_cls = _has_class_row(n, encoder.pos_grid)
        patches = pe[:, 1:] if has_cls else pe
        cls_pos = pe[:, :1] if has_cls else torch.zeros_like(pe[:, :1])
        src = _source_grid(patches.shape[1], encoder.pos_grid)
        patches = resample_positions(patches, src, encoder.pos_grid) if src != encoder.pos_grid else patches
        sd["pos_embed"] = torch.cat([cls_pos, patches], dim=1)
    if "cls_token" not in sd:
        sd["cls_token"] = torch.zeros_like(own["cls_token"])
    missing = sorted(k for k in own if k not in sd and not k.endswith(".gamma"))
    unexpected = sorted(k for k in sd if k not in own)
    if missing or unexpected:
        raise ValueError(
            f"{path}: {fmt} checkpoint does not match encoder (width {encoder.cfg.width}, depth {encoder.cfg.depth}); "
            f"missing {missing[:6]}{'...' if len(missing) > 6 else ''}, "
            f"unexpected {unexpected[:6]}{'...' if len(unexpected) > 6 else ''}"
        )
    for k, v in sd.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(
                f"{path}: {k} has shape {tuple(v.shape)} but the encoder expects {tuple(own[k].shape)}; "
                "set encoder width/patch_size/heads to match the checkpoint"
            )
    encoder.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in sd.items()}})
    log.info("loaded %s encoder weights from %s (%d tensors)", fmt, path, len(sd))


def _has_class_row(n: int, grid: tuple[int, int]) -> bool:
    """Whether a position table of n entries carries a class-token row before its patch grid."""

    def fits(m: int) -> bool:
        try:
            _source_grid(m, grid)
            return True
        except ValueError:
            return False

    if fits(n):
        return False
    if fits(n - 1):
        return True
    raise ValueError(f"position table with {n} entries matches no patch grid (with or without a class token)")
