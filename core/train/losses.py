"""Image losses and Gaussian regularisers: L1, SSIM, perceptual, mask, part cross-entropy, ACAP and ASAP."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from core.constants import device_constant


@device_constant
def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> Tensor:
    """The SSIM window [channels, 1, size, size], made once per device (a constant, never written to)."""
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    w = g[:, None] * g[None, :]
    return w.expand(channels, 1, size, size).contiguous()  # [3, 1, s, s] depthwise


def ssim(
    pred: Tensor,
    target: Tensor,
    *,
    window: int = 11,
    sigma: float = 1.5,
    reduce: bool = True,
    mask: Tensor | None = None,
) -> Tensor:
    """Structural similarity of images [B, H, W, 3] in [0, 1] (Wang et al. 2004, Gaussian window, valid region).

    With `mask` [B, H, W, 1] the SSIM map is averaged over the windows centred inside the mask (person-only SSIM);
    an image whose mask is empty scores 1.
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"ssim: expected two [B, H, W, C] images of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    x = pred.permute(0, 3, 1, 2)  # (B, C, H, W)
    y = target.permute(0, 3, 1, 2)
    c = x.shape[1]
    size = min(window, x.shape[-1], x.shape[-2])
    w = _gaussian_window(size, sigma, 5 * c, x.device, x.dtype)
    # the five local means in one depthwise convolution (one launch, not five)
    stats = F.conv2d(torch.cat([x, y, x * x, y * y, x * y], dim=1), w, groups=5 * c)  # (B, 5C, h, w)
    mu_x, mu_y, exx, eyy, exy = stats.split(c, dim=1)
    mxx, myy, mxy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    sxx, syy, sxy = exx - mxx, eyy - myy, exy - mxy
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mxy + c1) * (2 * sxy + c2)) / ((mxx + myy + c1) * (sxx + syy + c2))  # (B, C, h, w)
    if mask is not None:
        if mask.shape[:3] != pred.shape[:3]:
            raise ValueError(f"ssim: mask {tuple(mask.shape)} does not match images {tuple(pred.shape)}")
        h, w_ = s.shape[-2:]
        r = (size - 1) // 2  # the valid map's pixel (i, j) is the window centred on input (i + r, j + r)
        m = mask[:, r : r + h, r : r + w_, :1].permute(0, 3, 1, 2).to(s.dtype)  # (B, 1, h, w)
        per_image = (s * m).sum(dim=(1, 2, 3)) / (m.sum(dim=(1, 2, 3)) * c)
        per_image = torch.where(m.sum(dim=(1, 2, 3)) > 0, per_image, torch.ones_like(per_image))
        return per_image.mean() if reduce else per_image
    return s.mean() if reduce else s.mean(dim=(1, 2, 3))


def l1_error(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean absolute error per image; images [B, H, W, 3] in [0, 1], optional mask [B, H, W, 1] (inside only)."""
    err = (pred - target).abs()
    if mask is None:
        return err.mean(dim=(1, 2, 3))
    m = mask.expand_as(err)
    return (err * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp_min(1.0)


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Peak signal-to-noise ratio in dB per image; images [B, H, W, 3] in [0, 1], optional mask [B, H, W, 1]."""
    err = (pred - target) ** 2
    if mask is None:
        mse = err.mean(dim=(1, 2, 3))
    else:
        m = mask.expand_as(err)
        mse = (err * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp_min(1.0)
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


class PerceptualLoss(torch.nn.Module):
    """L1 between deep features of two images, from a frozen feature network given by the caller.

    The training code passes the model's own (frozen copy of the) image encoder, whose weights are always
    available offline; `features` maps images [B, 3, H, W] in [0, 1] to a list of feature maps.
    """

    def __init__(self, features: Callable[[Tensor], list[Tensor]]):
        super().__init__()
        self.features = features

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:  # [B, H, W, 3] each
        # one pass of the feature network over both (half the launches of two); the target's half carries no
        # gradient, so the loss and its gradient are those of separate passes
        B = pred.shape[0]
        both = self.features(torch.cat([pred, target.detach()]).permute(0, 3, 1, 2))
        terms = [F.l1_loss(f[:B], f[B:].detach()) for f in both]  # the mean over the feature maps
        return terms[0] if len(terms) == 1 else torch.stack(terms).mean()


def acap_loss(offsets: Tensor, margin: float = 0.0) -> Tensor:
    """As-close-as-possible: Gaussians stay near their anchors. offsets [..., G, 3] from anchor (metres)."""
    d = offsets.norm(dim=-1)
    return F.relu(d - margin).pow(2).mean()


def asap_loss(log_scales: Tensor, max_log_scale: float = math.log(0.05)) -> Tensor:
    """As-similar-as-possible: keep each Gaussian's three scales alike (no needles) and none huge.

    log_scales [..., G, 3]; the spread of log-scales within a Gaussian plus a hinge above `max_log_scale`.
    """
    spread = (log_scales - log_scales.mean(dim=-1, keepdim=True)).pow(2).mean()
    too_big = F.relu(log_scales - max_log_scale).pow(2).mean()
    return spread + too_big


def mask_loss(alpha: Tensor, mask: Tensor) -> Tensor:
    """Binary cross-entropy between rendered alpha and the person mask, both [B, H, W, 1] in [0, 1]."""
    a = alpha.clamp(1e-4, 1 - 1e-4)
    return F.binary_cross_entropy(a, mask.to(a.dtype))


def part_loss(part_probs: Tensor, labels: Tensor, valid: Tensor | None = None) -> Tensor:
    """Cross-entropy of rendered part probabilities [B, H, W, P] against pixel labels [B, H, W] (int, -1 = none),
    averaged over each image's labelled pixels, then over the images (a mean of per-image terms, so a batch
    split over processes gives the same loss)."""
    logp = part_probs.clamp_min(1e-6).log()
    labels = labels.long()
    keep = labels >= 0 if valid is None else (labels >= 0) & valid
    nll = -logp.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1) * keep  # [B, H, W]
    per_image = nll.flatten(1).sum(1) / keep.flatten(1).sum(1).clamp_min(1)
    return per_image.mean()


def canonical_render_loss(canonical: Tensor, target: Tensor) -> Tensor:
    """L1 between the canonical render and the target, both [B, H, W, 3] (person over black).

    The canonical render (`drive_gaussians(..., pose_dependent=False)`) shows the canonical branch's Gaussians
    alone, posed by skinning without the pose head's deltas or the deformer. Supervising it with the same target
    as the posed render (the paper's canonical term, Eq. 12, as read here) makes the canonical branch carry the
    person's appearance and shape, and leaves the pose head the residual that the pose explains.
    """
    if canonical.shape != target.shape:
        raise ValueError(f"canonical render {tuple(canonical.shape)} and target {tuple(target.shape)} differ")
    return (canonical - target).abs().mean()
