"""Typed configuration of the LCA model, one dataclass per concern; presets live in configs/model/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from core.config import ConfigError, check_divisible, check_range, load_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "model"
# Size limits (ConfigError beyond): several times the `large` preset, so that a hand-edited or crafted config
# (YAML, or stored in a checkpoint or avatar) cannot ask for a model that no machine holds.
MAX_WIDTH = 4096
MAX_DEPTH = 64
MAX_HEADS = 64
MAX_MLP_RATIO = 16.0
MAX_PATCH = 64
MAX_CROP = 2048  # pixels per side of the encoder's crops
MAX_ANCHORS = 1 << 17
MAX_NODES = 4096
MAX_GAUSSIANS = 1 << 22
MAX_PARAMETERS = 4_000_000_000


@dataclass(frozen=True)
class EncoderConfig:
    """ViT image encoder applied to every full-body crop and face crop."""

    patch_size: int = 8
    width: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    patch_padding: int = 0  # Sapiens' patch embedding pads by 2
    body_crop: tuple[int, int] = (64, 48)  # (H, W) of full-body crops
    face_crop: tuple[int, int] = (32, 32)  # (H, W) of face crops
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    weights: str | None = None  # local .safetensors/.pth checkpoint (DINOv2 or Sapiens); None trains from scratch
    weights_format: Literal["auto", "dinov2", "sapiens"] = "auto"
    freeze: bool = False

    def __post_init__(self) -> None:
        check_range("encoder.patch_size", self.patch_size, lo=1, hi=MAX_PATCH)
        check_range("encoder.width", self.width, lo=8, hi=MAX_WIDTH)
        check_range("encoder.depth", self.depth, lo=0, hi=MAX_DEPTH)
        check_range("encoder.heads", self.heads, lo=1, hi=MAX_HEADS)
        check_divisible("encoder.width", self.width, self.heads, "encoder.heads")
        check_range("encoder.mlp_ratio", self.mlp_ratio, lo=0.0, hi=MAX_MLP_RATIO, lo_open=True)
        check_range("encoder.patch_padding", self.patch_padding, lo=0, hi=MAX_PATCH)
        for name, (h, w) in (("body_crop", self.body_crop), ("face_crop", self.face_crop)):
            check_range(f"encoder.{name}", max(h, w), hi=MAX_CROP)
            if h + 2 * self.patch_padding < self.patch_size or w + 2 * self.patch_padding < self.patch_size:
                raise ConfigError(f"encoder.{name}: {h}x{w} is smaller than one patch ({self.patch_size})")
        for s in self.pixel_std:
            check_range("encoder.pixel_std", s, lo=0.0, lo_open=True)


@dataclass(frozen=True)
class TokensConfig:
    """Geometry tokens: anchors on the canonical body surface, Fourier positional encoding and an MLP."""

    num_anchors: int = 256
    frequencies: int = 6  # Fourier bands per axis
    seed: int = 0  # anchor sampling seed (same anchors for every avatar of a model)
    # Share of the anchors on the head (core.model.tokens.sample_anchors); null: its area's share (about 0.1).
    # A larger share gives the face denser Gaussians for finer features (the model must be trained with it).
    head_share: float | None = None
    # Pixel-aligned appearance (core.model.pixel_align): crop colour and encoder features sampled where each anchor
    # projects in each reference, pooled and added to the geometry tokens. Needs each reference's body estimate.
    pixel_aligned: bool = False
    pixel_albedo: float = 1.0  # initial weight of the sampled colour's logit in the canonical albedo (0: none)

    def __post_init__(self) -> None:
        check_range("tokens.num_anchors", self.num_anchors, lo=1, hi=MAX_ANCHORS)
        check_range("tokens.frequencies", self.frequencies, lo=0, hi=16)
        check_range("tokens.pixel_albedo", self.pixel_albedo, lo=0.0, hi=4.0)
        if self.head_share is not None:
            check_range("tokens.head_share", self.head_share, lo=0.01, hi=0.9)


@dataclass(frozen=True)
class TransformerConfig:
    """Blocks of image self-attention, geometry self-attention and geometry->image cross-attention."""

    width: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        check_range("transformer.width", self.width, lo=8, hi=MAX_WIDTH)
        check_range("transformer.depth", self.depth, lo=1, hi=MAX_DEPTH)
        check_range("transformer.heads", self.heads, lo=1, hi=MAX_HEADS)
        check_divisible("transformer.width", self.width, self.heads, "transformer.heads")
        check_range("transformer.mlp_ratio", self.mlp_ratio, lo=0.0, hi=MAX_MLP_RATIO, lo_open=True)


@dataclass(frozen=True)
class HeadsConfig:
    """Decoder heads: K Gaussians per anchor; dual (canonical + pose) or the single-branch ablation."""

    gaussians_per_anchor: int = 4
    hidden: int = 64
    decoder: Literal["dual", "single"] = "dual"
    max_offset: float = 0.08  # metres: bound of a Gaussian's canonical offset from its anchor
    max_pose_offset: float = 0.03  # metres: bound of the per-frame position delta

    def __post_init__(self) -> None:
        check_range("heads.gaussians_per_anchor", self.gaussians_per_anchor, lo=1, hi=64)
        check_range("heads.hidden", self.hidden, lo=1, hi=MAX_WIDTH)
        check_range("heads.max_offset", self.max_offset, lo=0.0, lo_open=True)
        check_range("heads.max_pose_offset", self.max_pose_offset, lo=0.0)


@dataclass(frozen=True)
class DeformerConfig:
    """Two-level deformer for loose garments (coarse nodes on the body, fine nodes on garments), of one of two kinds:
    "skinning", the paper's: learnable skinning weights W' = W(n) + H_skin(T^node), a post-training extension
    (core/model/skin_correction.py); "nodes": pose-driven rigid motions of the nodes blended onto the Gaussians
    before skinning (core/model/deformer.py), this project's earlier variant, kept as an option."""

    enabled: bool = False
    kind: Literal["nodes", "skinning"] = "nodes"
    max_weight_delta: float = 0.5  # bound of a node's correction of each skinning weight ("skinning")
    coarse_nodes: int = 16
    fine_nodes: int = 32
    neighbours: int = 4  # nodes blended per Gaussian
    graph_neighbours: int = 4  # edges per node in the ARAP graph
    hidden: int = 64
    max_translation: float = 0.1  # metres

    def __post_init__(self) -> None:
        check_range("deformer.coarse_nodes", self.coarse_nodes, lo=2, hi=MAX_NODES)
        check_range("deformer.fine_nodes", self.fine_nodes, lo=2, hi=MAX_NODES)
        check_range("deformer.neighbours", self.neighbours, lo=1, hi=64)
        check_range("deformer.graph_neighbours", self.graph_neighbours, lo=1, hi=64)
        check_range("deformer.hidden", self.hidden, lo=1, hi=MAX_WIDTH)
        check_range("deformer.max_translation", self.max_translation, lo=0.0)
        check_range("deformer.max_weight_delta", self.max_weight_delta, lo=0.0, hi=1.0)


@dataclass(frozen=True)
class AppearanceConfig:
    """Relightable appearance: albedo x degree-1 SH radiance transfer; per-frame lighting code for wild data."""

    lighting_code_dim: int = 8
    # Wild frames (unknown lighting) get a per-frame lighting code read off the frame by a small CNN
    # (appearance.LightingEstimator), learnt through the render loss; off: such frames are lit neutrally.
    lighting_estimator: bool = False

    def __post_init__(self) -> None:
        check_range("appearance.lighting_code_dim", self.lighting_code_dim, lo=0, hi=1024)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "tiny"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    tokens: TokensConfig = field(default_factory=TokensConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    deformer: DeformerConfig = field(default_factory=DeformerConfig)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    max_images: int = 16

    def __post_init__(self) -> None:
        check_range("max_images", self.max_images, lo=1, hi=64)
        check_range(
            "num_gaussians (tokens.num_anchors x heads.gaussians_per_anchor)", self.num_gaussians, hi=MAX_GAUSSIANS
        )
        params = self.approx_parameters
        if params > MAX_PARAMETERS:
            raise ConfigError(
                f"the model would hold about {params / 1e9:.1f} billion parameters (encoder and transformer widths "
                f"and depths), over the {MAX_PARAMETERS / 1e9:.0f} billion limit; lower their width or depth"
            )
        if self.deformer.enabled and self.deformer.coarse_nodes > self.tokens.num_anchors:
            raise ConfigError(
                f"deformer.coarse_nodes ({self.deformer.coarse_nodes}) exceeds tokens.num_anchors "
                f"({self.tokens.num_anchors}); lower it"
            )
        if self.tokens.pixel_aligned and self.tokens.pixel_albedo > 0 and self.heads.decoder != "dual":
            raise ConfigError(
                "tokens.pixel_albedo: the sampled-colour albedo prior needs heads.decoder 'dual' (the single branch "
                "decodes colour per frame); set tokens.pixel_albedo: 0 or use the dual decoder"
            )

    @property
    def num_gaussians(self) -> int:
        return self.tokens.num_anchors * self.heads.gaussians_per_anchor

    @property
    def approx_parameters(self) -> int:
        """Parameters of the encoder and transformer blocks (the bulk of the model), from widths and depths."""
        e, t = self.encoder, self.transformer
        enc = e.depth * (4 + 2 * e.mlp_ratio) * e.width**2
        trunk = t.depth * 3 * (4 + 2 * t.mlp_ratio) * t.width**2  # image, geometry and cross attention per layer
        return int(enc + trunk)


def stored_model_config(data: object) -> ModelConfig:
    """The model config stored in a checkpoint or avatar file, checked like a YAML config (ConfigError), and never
    allowed to point the program at another file: the encoder's pretrained-weights path is dropped (the file
    holds the trained weights), and freezing, which only matters with those weights, is cleared."""
    from core.config import from_dict

    if not isinstance(data, dict):
        raise ConfigError(f"the stored model config is not a mapping (got {type(data).__name__})")
    cfg = from_dict(ModelConfig, data)
    if cfg.encoder.weights is not None or cfg.encoder.freeze:
        cfg = replace(cfg, encoder=replace(cfg.encoder, weights=None, freeze=False))
    return cfg


def load_model_config(name_or_path: str | Path, overrides: dict | None = None) -> ModelConfig:
    """A preset name ('tiny', 'base', 'large') or a YAML path -> ModelConfig."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            presets = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
            raise FileNotFoundError(f"no model preset {name_or_path!r}; presets are {presets}")
    return load_config(ModelConfig, path, overrides)
