"""Pure-torch differentiable splat rasteriser, the slow twin of gsplat's CUDA kernels (CPU, tests, laptops).

Per camera: project every Gaussian, cull, sort by depth, bin into square pixel tiles by its opacity-aware
footprint box, then composite tiles in vectorised chunks (tiles of similar list length padded together).
Chunks are gradient-checkpointed, so memory stays bounded by one chunk's working set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from core.raster.project import (
    ALPHA_THRESHOLD,
    add_blur,
    conic_from_cov2d,
    covariance_3d,
    pixel_radius,
    project_ewa,
    world_to_camera,
)
from core.raster.sh import eval_sh
from core.raster.types import Gaussians


@dataclass(frozen=True)
class TorchRasterSettings:
    tile_size: int = 16
    eps2d: float = 0.3  # low-pass dilation of every 2D covariance, px^2
    max_alpha: float = 0.99  # per-splat alpha clamp (3DGS; gsplat uses 0.999)
    min_transmittance: float = 1e-4  # a pixel stops once the next splat would take T below this
    chunk_elements: int | None = None  # tiles x splats x pixels evaluated at once; None: 2^18 CPU, 2^24 CUDA
    depth_block: int | None = (
        None  # splats per tile per step before checking for stopped pixels; None: 64 CPU, 256 CUDA
    )


@dataclass(frozen=True)
class _Projected:
    """Visible splats of one camera, sorted front to back."""

    means2d: Tensor  # [M, 2]
    conics: Tensor  # [M, 3]
    opacities: Tensor  # [M]
    colors: Tensor  # [M, 3 + D] colour and extra feature channels
    depths: Tensor  # [M]
    radii: Tensor  # [M, 2] int


def _project_camera(
    g: Gaussians,
    covs: Tensor,  # [G, 3, 3]
    K: Tensor,  # [3, 3]
    T_cam_world: Tensor,  # [4, 4]
    width: int,
    height: int,
    near: float,
    far: float,
    s: TorchRasterSettings,
    features: Tensor | None = None,  # [G, D]
) -> _Projected:
    means_c, covs_c = world_to_camera(g.means, covs, T_cam_world)  # [G, 3], [G, 3, 3]
    depths = means_c[:, 2]
    in_depth = (depths > near) & (depths < far)
    # Splats at or behind the camera would divide by ~0 in the projection; park them at z=1 (they are culled).
    safe_c = torch.where(in_depth.unsqueeze(-1), means_c, means_c.new_tensor([0.0, 0.0, 1.0]))
    means2d, cov2d = project_ewa(safe_c, covs_c, K, width, height)
    cov2d = add_blur(cov2d, s.eps2d)
    conics, det = conic_from_cov2d(cov2d)
    opacities = g.opacities
    radii = pixel_radius(cov2d.detach(), opacities.detach())  # [G, 2]
    with torch.no_grad():
        m = means2d.detach()
        on_screen = (
            (m[:, 0] + radii[:, 0] > 0)
            & (m[:, 0] - radii[:, 0] < width)
            & (m[:, 1] + radii[:, 1] > 0)
            & (m[:, 1] - radii[:, 1] < height)
        )
        keep = in_depth & (det.detach() > 0) & (opacities.detach() >= ALPHA_THRESHOLD) & on_screen
        keep &= torch.isfinite(m).all(-1)
        idx = keep.nonzero().squeeze(-1)
        idx = idx[torch.argsort(depths.detach()[idx], stable=True)]
    campos = -(T_cam_world[:3, :3].transpose(0, 1) @ T_cam_world[:3, 3])  # [3]
    colors = eval_sh(g.sh[idx], g.means[idx] - campos)
    if features is not None:
        colors = torch.cat([colors, features[idx].to(colors.dtype)], dim=-1)
    return _Projected(means2d[idx], conics[idx], opacities[idx], colors, depths[idx], radii[idx])


@torch.no_grad()
def _bin_tiles(p: _Projected, tiles_x: int, tiles_y: int, tile: int) -> tuple[Tensor, Tensor]:
    """(tile id, splat index) pairs sorted by tile, splats front to back inside each tile -> ids [P], splats [P]."""
    m, r = p.means2d.detach(), p.radii.to(p.means2d.dtype)
    x0 = torch.floor((m[:, 0] - r[:, 0]) / tile).clamp(0, tiles_x).long()
    x1 = torch.ceil((m[:, 0] + r[:, 0]) / tile).clamp(0, tiles_x).long()
    y0 = torch.floor((m[:, 1] - r[:, 1]) / tile).clamp(0, tiles_y).long()
    y1 = torch.ceil((m[:, 1] + r[:, 1]) / tile).clamp(0, tiles_y).long()
    w, h = (x1 - x0).clamp_min(0), (y1 - y0).clamp_min(0)
    counts = w * h  # [M]
    splat = torch.repeat_interleave(torch.arange(len(counts), device=m.device), counts)  # [P]
    start = torch.cumsum(counts, 0) - counts
    local = torch.arange(len(splat), device=m.device) - start[splat]
    tx = x0[splat] + local % w[splat].clamp_min(1)
    ty = y0[splat] + local // w[splat].clamp_min(1)
    tile_id = ty * tiles_x + tx
    order = torch.argsort(tile_id, stable=True)  # stable: keeps the depth order inside each tile
    return tile_id[order], splat[order]


def _composite(
    means2d: Tensor,  # [T, L, 2] splats of each tile (padded)
    conics: Tensor,  # [T, L, 3]
    opacities: Tensor,  # [T, L]
    feats: Tensor,  # [T, L, F] colour and depth
    valid: Tensor,  # [T, L] bool, False on padding
    pix: Tensor,  # [T, P, 2] pixel centres
    log_t_in: Tensor,  # [T, P] log transmittance in front of this block of splats
    max_alpha: float,
    min_transmittance: float,
) -> tuple[Tensor, Tensor]:  # [T, P, F + 1] accumulated features and alpha, [T, P] log transmittance behind
    d = pix.unsqueeze(1) - means2d.unsqueeze(2)  # [T, L, P, 2]
    dx, dy = d[..., 0], d[..., 1]
    a, b, c = (conics[..., i].unsqueeze(-1) for i in range(3))  # [T, L, 1]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy  # [T, L, P]
    alpha = torch.clamp_max(opacities.unsqueeze(-1) * torch.exp(-sigma), max_alpha)
    used = valid.unsqueeze(-1) & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
    alpha = torch.where(used, alpha, torch.zeros_like(alpha))
    # log transmittance after each splat; log space keeps long products exact enough in float32
    log_t = log_t_in.unsqueeze(1) + torch.cumsum(torch.log1p(-alpha), dim=1)  # [T, L, P]
    log_t_before = torch.cat([log_t_in.unsqueeze(1), log_t[:, :-1]], dim=1)
    alive = (log_t.detach().exp() > min_transmittance).to(alpha.dtype)  # front-to-back early stop, exclusive
    weights = alpha * log_t_before.exp() * alive  # [T, L, P]
    out = torch.einsum("tlp,tlf->tpf", weights, feats)  # [T, P, F]
    # the full product, rejected splats included, so a stopped pixel stays stopped in the next block
    return torch.cat([out, weights.sum(dim=1).unsqueeze(-1)], dim=-1), log_t[:, -1]


def _render_camera(
    g: Gaussians,
    covs: Tensor,  # [G, 3, 3]
    K: Tensor,  # [3, 3]
    T_cam_world: Tensor,  # [4, 4]
    width: int,
    height: int,
    near: float,
    far: float,
    s: TorchRasterSettings,
    features: Tensor | None = None,  # [G, D]
) -> Tensor:  # [H, W, 3 + D + 2]: colour (and feature) sums, depth sum, alpha
    ts = s.tile_size
    tiles_x, tiles_y = -(-width // ts), -(-height // ts)
    p = _project_camera(g, covs, K, T_cam_world, width, height, near, far, s, features)
    dtype, device = g.means.dtype, g.means.device
    feats = torch.cat([p.colors, p.depths.unsqueeze(-1)], dim=-1)  # [M, 4 + D]
    width_out = feats.shape[-1] + 1
    tile_id, splat = _bin_tiles(p, tiles_x, tiles_y, ts)
    counts = torch.bincount(tile_id, minlength=tiles_x * tiles_y)  # [tiles]
    starts = torch.cumsum(counts, 0) - counts
    busy = torch.argsort(counts, descending=True)
    busy = busy[counts[busy] > 0]
    counts_cpu = counts[busy].tolist()

    offs = torch.arange(ts, device=device, dtype=dtype) + 0.5
    local = torch.stack(torch.meshgrid(offs, offs, indexing="xy"), dim=-1).reshape(-1, 2)  # [P, 2] (x, y)
    npix = ts * ts
    track = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (g.means, g.quats, g.log_scales, g.opacity_logits, g.sh, features)
    )

    chunk_elements = s.chunk_elements or (1 << 24 if device.type == "cuda" else 1 << 18)
    results, done_tiles = [], []
    i = 0
    while i < len(busy):
        longest = counts_cpu[i]  # tiles are sorted by list length, so the first of a chunk is the longest
        block = min(longest, s.depth_block or (256 if device.type == "cuda" else 64))
        n = max(1, min(len(busy) - i, chunk_elements // (block * npix)))
        tiles = busy[i : i + n]
        origin = torch.stack([tiles % tiles_x, tiles // tiles_x], dim=-1).to(dtype) * ts  # [n, 2]
        pix = origin.unsqueeze(1) + local  # [n, P, 2]
        log_t = torch.zeros(n, npix, dtype=dtype, device=device)
        acc = None
        for lo in range(0, longest, block):
            j = torch.arange(lo, min(lo + block, longest), device=device)
            valid = j < counts[tiles].unsqueeze(1)  # [n, L]
            sel = splat[(starts[tiles].unsqueeze(1) + j).clamp_max(len(splat) - 1)]  # [n, L]
            args = (p.means2d[sel], p.conics[sel], p.opacities[sel], feats[sel], valid, pix, log_t)
            if track:
                out, log_t = checkpoint(_composite, *args, s.max_alpha, s.min_transmittance, use_reentrant=False)
            else:
                out, log_t = _composite(*args, s.max_alpha, s.min_transmittance)
            acc = out if acc is None else acc + out
            # every pixel of the chunk has stopped: the splats behind cannot show
            if lo + block < longest and bool((log_t.detach().exp() <= s.min_transmittance).all()):
                break
        results.append(acc)
        done_tiles.append(tiles)
        i += n

    canvas = torch.zeros(tiles_x * tiles_y, npix, width_out, dtype=dtype, device=device)
    if results:
        canvas = canvas.index_copy(0, torch.cat(done_tiles), torch.cat(results))
    img = canvas.reshape(tiles_y, tiles_x, ts, ts, width_out).permute(0, 2, 1, 3, 4)
    img = img.reshape(tiles_y * ts, tiles_x * ts, width_out)
    return img[:height, :width]


def rasterize_torch(
    gaussians: Gaussians,  # unbatched: means [G, 3], ...
    K: Tensor,  # [C, 3, 3]
    T_cam_world: Tensor,  # [C, 4, 4]
    width: int,
    height: int,
    background: Tensor,  # [C, 3]
    *,
    near: float = 0.01,
    far: float = 1e3,
    settings: TorchRasterSettings | None = None,
    features: Tensor | None = None,  # [G, D] extra channels composited like colour, over 0
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:  # colour [C, H, W, 3], alpha, expected depth, features
    """Render `gaussians` from C cameras; differentiable w.r.t. every float field of `gaussians` (and `features`)."""
    s = settings or TorchRasterSettings()
    covs = covariance_3d(gaussians.quats, gaussians.scales)  # [G, 3, 3], shared by all cameras
    d = 0 if features is None else features.shape[-1]
    colors, alphas, depths, extra = [], [], [], []
    for c in range(K.shape[0]):
        img = _render_camera(gaussians, covs, K[c], T_cam_world[c], width, height, near, far, s, features)
        alpha = img[..., -1:]
        colors.append(img[..., :3] + (1.0 - alpha) * background[c])
        extra.append(img[..., 3 : 3 + d])
        alphas.append(alpha)
        depths.append(img[..., 3 + d : 4 + d] / alpha.clamp_min(1e-10))
    feats = torch.stack(extra) if features is not None else None
    return torch.stack(colors), torch.stack(alphas), torch.stack(depths), feats
