"""Before a run: parameter count, memory (weights, gradients, optimiser, EMA, activations) and time, from configs.

Pure arithmetic on the model config and the batch, so the studio can show it while a form is edited without
building a model (building `large` takes half a minute). Activations follow the usual transformer rule of thumb
(about 34 bytes per token and channel per layer in 16-bit, Korthikanti et al. 2022) plus the per-Gaussian decode
and the loss renders; attention matrices count only on the CPU, where PyTorch's math kernel keeps them.
Checked against the `base` pre-training run on an H100 (docs/training/pretrain-base_metrics.jsonl: 4.04 GiB peak).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.model.config import ModelConfig

GIB = 2**30
ACT_PER_TOKEN_CHANNEL = 17  # saved activation elements per token and channel per layer (34 bytes in 16-bit)
PER_GAUSSIAN = 64  # float32 values per Gaussian per decode besides the head's hidden layer (pose, skinning, shading)
PER_PIXEL = {"cuda": 32, "cpu": 256}  # values per rendered pixel saved for backward (gsplat vs. torch reference)


@dataclass(frozen=True)
class ParamCount:
    total: int
    trainable: int
    encoder: int


def count_parameters(cfg: ModelConfig, *, freeze_encoder: bool = False) -> ParamCount:
    """Parameters of `LCAModel(cfg)`: exact for the encoder, image MLP and transformer; the small heads, geometry
    MLP and deformer (a few percent of the total) by a fit to `tiny` and `base`."""
    e, t, h = cfg.encoder, cfg.transformer, cfg.heads
    De, Dt, p = e.width, t.width, e.patch_size
    encoder = 3 * p * p * De + De + e.depth * (12 * De * De + 15 * De) + 2 * De
    image_mlp = De * Dt + Dt
    transformer = t.depth * (28 * Dt * Dt + 34 * Dt) + 2 * Dt
    rest = 20 * h.hidden**2 + (9 * h.hidden**2 if cfg.deformer.enabled else 0) + De
    total = encoder + image_mlp + transformer + rest
    frozen = encoder if (freeze_encoder or e.freeze) else 0
    return ParamCount(total=total, trainable=total - frozen, encoder=encoder)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per training process."""

    weights: int
    gradients: int
    optimiser: int  # AdamW: two moments per trainable parameter
    ema: int  # the EMA copy of the weights
    perceptual: int  # the frozen encoder copy the perceptual loss uses
    activations: int  # kept for backward, for the whole batch

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimiser + self.ema + self.perceptual + self.activations

    def summary(self) -> str:
        g = lambda b: f"{b / GIB:.2f}"  # noqa: E731
        static = self.weights + self.gradients + self.optimiser + self.ema + self.perceptual
        return (
            f"memory: about {g(self.total)} GiB per process (weights+grads+AdamW+EMA {g(static)}, "
            f"activations {g(self.activations)})"
        )


def activation_elements(
    cfg: ModelConfig,
    *,
    num_refs: int,
    num_targets: int,
    render_size: int,
    device: Literal["cpu", "cuda"],
    perceptual: bool = True,
) -> int:
    """Activation values kept for backward for ONE identity of a training step."""
    e, t = cfg.encoder, cfg.transformer
    tb = (e.body_crop[0] // e.patch_size) * (e.body_crop[1] // e.patch_size)  # tokens of a body crop
    tf = (e.face_crop[0] // e.patch_size) * (e.face_crop[1] // e.patch_size)
    cpu = device == "cpu"
    enc_layer = (tb + tf) * ACT_PER_TOKEN_CHANNEL * e.width + (2 * e.heads * (tb * tb + tf * tf) if cpu else 0)
    encoder = 0 if e.freeze else num_refs * e.depth * enc_layer
    if perceptual:  # the rendered image goes through the frozen encoder once per target, with gradients
        encoder += (
            num_targets * e.depth * (tb * ACT_PER_TOKEN_CHANNEL * e.width + (2 * e.heads * tb * tb if cpu else 0))
        )
    ti, a = num_refs * (tb + tf), cfg.tokens.num_anchors  # image and geometry tokens
    tr_layer = (ti + a) * 2 * ACT_PER_TOKEN_CHANNEL * t.width + (2 * t.heads * (ti * ti + a * a + a * ti) if cpu else 0)
    transformer = t.depth * tr_layer
    gaussians = a * cfg.heads.gaussians_per_anchor
    decode = (num_targets + 1) * gaussians * (cfg.heads.hidden + PER_GAUSSIAN)
    render = num_targets * render_size * render_size * PER_PIXEL[device]
    return encoder + transformer + decode + render


def estimate_memory(
    cfg: ModelConfig,
    *,
    batch_size: int,
    num_refs: int,
    num_targets: int,
    render_size: int,
    device: Literal["cpu", "cuda"],
    amp: bool = True,
    perceptual: bool = True,
    freeze_encoder: bool = False,
    shards: int = 1,
) -> MemoryEstimate:
    """Peak memory of one training process for `batch_size` identities. DDP keeps a full copy of the weights,
    gradients, AdamW moments and EMA in every process; FSDP over `shards` processes keeps 1/shards of each."""
    if batch_size < 1 or num_refs < 1 or num_targets < 1 or render_size < 1:
        raise ValueError(
            f"batch_size, num_refs, num_targets and render_size must be >= 1 "
            f"(got {batch_size}, {num_refs}, {num_targets}, {render_size})"
        )
    if shards < 1:
        raise ValueError(f"shards must be >= 1 (got {shards})")
    n = count_parameters(cfg, freeze_encoder=freeze_encoder)
    act_bytes = 2 if (amp and device == "cuda") else 4  # bf16 autocast on GPU; float32 on the CPU
    acts = activation_elements(
        cfg, num_refs=num_refs, num_targets=num_targets, render_size=render_size, device=device, perceptual=perceptual
    )
    return MemoryEstimate(
        weights=4 * n.total // shards,
        gradients=4 * n.trainable // shards,
        optimiser=8 * n.trainable // shards,
        ema=4 * n.total // shards,
        perceptual=4 * n.encoder if perceptual else 0,
        activations=batch_size * acts * act_bytes,
    )


def estimate_seconds(steps: int, seconds_per_step: float, *, start_step: int = 0) -> float:
    """Wall time of the steps still to run (per-process batches: more DDP processes do not slow a step much)."""
    if seconds_per_step < 0:
        raise ValueError(f"seconds_per_step must be >= 0, got {seconds_per_step}")
    return max(0, steps - start_step) * seconds_per_step


def format_duration(seconds: float) -> str:
    """`42 s`, `3.5 min`, `2.1 h`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
