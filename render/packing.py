"""Pure functions that pack `Gaussians` fields into the float32 texels the splat shader reads (in place, on the
Gaussians' device)."""

from __future__ import annotations

import torch
from torch import Tensor

# Texels per row of every data texture; rows grow with the number of Gaussians.
TEXTURE_WIDTH = 2048


def covariance_3d(
    quats: Tensor,  # [G, 4] wxyz, not necessarily normalised
    log_scales: Tensor,  # [G, 3]
) -> Tensor:  # [G, 6] upper triangle (xx, xy, xz, yy, yz, zz) of R diag(s^2) R^T
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)  # fmt: skip
    M = R * log_scales.exp()[..., None, :]  # R diag(s)
    cov = M @ M.transpose(-1, -2)  # [G, 3, 3]
    return torch.stack(
        [cov[..., 0, 0], cov[..., 0, 1], cov[..., 0, 2], cov[..., 1, 1], cov[..., 1, 2], cov[..., 2, 2]], dim=-1
    )


def texture_rows(num_texels: int, width: int = TEXTURE_WIDTH) -> int:
    """Rows of a `width`-wide texture that hold `num_texels` texels (at least one)."""
    return max(1, -(-num_texels // width))


# In-place packers: write the texels into a slice of a reused float32 staging buffer on the Gaussians' device.
def pack_mean(
    means: Tensor,  # [G, 3]
    opacity_logits: Tensor,  # [G]
    out: Tensor,  # [G, 4] float32: (x, y, z, opacity)
) -> None:
    out[:, :3].copy_(means.detach())
    out[:, 3].copy_(opacity_logits.detach()).sigmoid_()


def pack_covariance(
    quats: Tensor,  # [G, 4]
    log_scales: Tensor,  # [G, 3]
    parts: Tensor | None,  # [G] int part ids, or None
    out: Tensor,  # [2 G, 4] float32: (xx, xy, xz, yy), (yz, zz, part, 0) per Gaussian
) -> None:
    view = out.view(-1, 8)  # [G, 8]
    view[:, :6].copy_(covariance_3d(quats.detach().float(), log_scales.detach().float()))
    if parts is None:
        view[:, 6].zero_()
    else:
        view[:, 6].copy_(parts.detach())


def pack_sh(
    sh: Tensor,  # [G, K, 3]
    out: Tensor,  # [G K, 4] float32: (r, g, b, 0) per coefficient
) -> None:
    out.view(sh.shape[0], sh.shape[1], 4)[..., :3].copy_(sh.detach())
