"""Head close-up supervision: the targets' posed Gaussians seen again through each target's close-up camera (the
same extrinsics, intrinsics zoomed onto the head; `core.data.closeups`), scored with the photometric terms of the
full-body targets (L1, SSIM, perceptual; person over black), so eyes, brows, lips and hairline get pixels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from core.raster import Camera
from core.train.config import LossConfig
from core.train.losses import psnr, ssim


@dataclass(frozen=True)
class CloseupTargets:
    """The close-ups of a batch's M = B*T targets at the render size S."""

    cam: Camera  # K [M, 1, 3, 3], T_cam_world [M, 1, 4, 4], S x S
    target: Tensor  # [M, S, S, 3] person over black
    mask: Tensor  # [M, S, S, 1] person mask
    valid: Tensor  # [M] 1: a close-up to score; 0: none (zeros in the batch)

    def camera_at(self, i: int) -> Camera:
        """Target i's close-up camera alone (K [3, 3]; the per-target reference step)."""
        return Camera(self.cam.K[i, 0], self.cam.T_cam_world[i, 0], self.cam.width, self.cam.height)


def closeup_targets(batch: dict, device: torch.device, render_size: int) -> CloseupTargets | None:
    """The batch's close-ups (`tgt_closeup_*` from the loader) and their cameras scaled to `render_size`; None when
    the batch has none."""
    if "tgt_closeup_rgb" not in batch:
        return None
    rgb = batch["tgt_closeup_rgb"].to(device).flatten(0, 1)  # [M, 3, N, N] in [0, 1]
    N = rgb.shape[-1]
    cam = Camera(
        batch["tgt_closeup_K"].to(device).flatten(0, 1)[:, None],
        batch["tgt_T_cam_world"].to(device).flatten(0, 1)[:, None],  # the full target's extrinsics: same geometry
        N,
        N,
    ).scaled(render_size / N)
    size = (cam.height, cam.width)
    rgb = F.interpolate(rgb, size=size, mode="area")
    m = F.interpolate(batch["tgt_closeup_mask"].to(device).flatten(0, 1), size=size, mode="area")
    valid = batch["tgt_closeup_valid"].to(device).flatten(0, 1).float()
    return CloseupTargets(cam, (rgb * m).permute(0, 2, 3, 1), m.permute(0, 2, 3, 1), valid)


def face_loss(
    pred: Tensor,  # [M, S, S, 3] close-up renders, person over black
    target: Tensor,  # [M, S, S, 3]
    valid: Tensor,  # [M]
    cfg: LossConfig,
    perceptual: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """The body targets' photometric loss (cfg.l1 * L1 + cfg.ssim * (1 - SSIM) + cfg.perceptual * perceptual) over
    the valid close-ups, as the mean over those images. Invalid ones are zeroed in both images, so they add
    nothing (identical black images: L1 0, SSIM 1, equal features) and the shapes stay static."""
    v = valid[:, None, None, None].to(pred.dtype)
    p, t = pred * v, target * v
    scale = valid.numel() / valid.sum().clamp_min(1.0)  # mean over all images -> mean over the valid ones
    loss = cfg.l1 * (p - t).abs().mean()
    if cfg.ssim > 0:
        loss = loss + cfg.ssim * (1.0 - ssim(p, t))
    if cfg.perceptual > 0 and perceptual is not None:
        loss = loss + cfg.perceptual * perceptual(p, t).float()
    return loss * scale


@torch.no_grad()
def face_psnr(pred: Tensor, target: Tensor, mask: Tensor, valid: Tensor) -> Tensor:
    """Person-only PSNR (dB) of each valid close-up [V] (inside its mask > 0.5); images [M, S, S, 3]."""
    keep = valid > 0.5
    m = (mask[keep].float() > 0.5).float()
    return psnr(pred[keep].float().clamp(0, 1), target[keep].float(), m)
