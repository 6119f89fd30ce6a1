"""Read and write the standard 3DGS .ply layout (what SuperSplat, gsplat and the 3DGS viewers read).

Per vertex: x y z, nx ny nz (zeros), f_dc_0..2, f_rest_0..(3*(K-1)-1) channel-major, opacity (logit),
scale_0..2 (log), rot_0..3 (w x y z), and optionally `part` (uchar semantic label, ignored by other viewers).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import plyfile
import torch

from core.io import atomic_write
from core.raster.types import PART_NAMES, Gaussians

log = logging.getLogger(__name__)

MAX_GAUSSIANS = 50_000_000  # far beyond any avatar; a bigger count means a corrupt or foreign file
_REST_COUNTS = {0: 0, 9: 1, 24: 2, 45: 3}  # number of f_rest_* -> SH degree


def _property_names(num_rest: int, with_parts: bool) -> list[str]:
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(num_rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return names + (["part"] if with_parts else [])


def save_ply(path: str | os.PathLike, gaussians: Gaussians, *, with_parts: bool = True) -> Path:
    """Write `gaussians` (unbatched, [G, ...]) as a binary little-endian 3DGS .ply, atomically."""
    g = gaussians.detach().to("cpu")
    if g.means.dim() != 2:
        raise ValueError(f"save_ply writes one unbatched set (means [G, 3]), got means {tuple(g.means.shape)}")
    num, k = g.means.shape[0], g.sh.shape[-2]
    floats = {
        "means": g.means,
        "quats": g.quats,
        "log_scales": g.log_scales,
        "opacity_logits": g.opacity_logits,
        "sh": g.sh,
    }
    for name, t in floats.items():
        bad = ~torch.isfinite(t)
        if bad.any():
            raise ValueError(
                f"save_ply: Gaussians.{name} has {int(bad.sum())} NaN/inf values; fix or drop those Gaussians first"
            )
    rest = g.sh[:, 1:, :].transpose(1, 2).reshape(num, 3 * (k - 1))  # [G, 3*(K-1)] channel-major as 3DGS writes
    columns = [
        g.means,
        torch.zeros(num, 3),
        g.sh[:, 0, :],
        rest,
        g.opacity_logits.unsqueeze(-1),
        g.log_scales,
        g.quats,
    ]
    data = torch.cat([c.to(torch.float32) for c in columns], dim=-1).numpy()  # [G, 17 + 3*(K-1)]
    keep_parts = with_parts and g.parts is not None
    names = _property_names(3 * (k - 1), keep_parts)
    dtype = [(n, "f4") for n in names[: data.shape[1]]] + ([("part", "u1")] if keep_parts else [])
    rows = np.empty(num, dtype=dtype)
    for i, n in enumerate(names[: data.shape[1]]):
        rows[n] = data[:, i]
    if keep_parts:
        parts = g.parts.to(torch.int64)
        if num and (parts.min() < 0 or parts.max() > 255):
            raise ValueError(f"save_ply: part ids must be in 0..255, got {int(parts.min())}..{int(parts.max())}")
        rows["part"] = parts.numpy().astype(np.uint8)

    ply = plyfile.PlyData([plyfile.PlyElement.describe(rows, "vertex")], text=False)
    return atomic_write(path, lambda tmp: ply.write(str(tmp)))  # a full disk says so and keeps the old file


# Finite values that no avatar has: the file loads, but would render blank or as one huge splat.
ABSURD_POSITION_M = 1e4  # |x|, |y|, |z| beyond 10 km
ABSURD_LOG_SCALE = 10.0  # a splat wider than e^10 m (22 km) or narrower than e^-30 m
MIN_LOG_SCALE = -30.0


def _warn_if_absurd(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Log a warning naming the file when values are finite but absurd (crafted or damaged, not an avatar)."""
    problems = []
    far = int((np.abs(arrays["means"]) > ABSURD_POSITION_M).any(axis=-1).sum())
    if far:
        problems.append(f"{far} positions beyond {ABSURD_POSITION_M:g} m")
    scales = arrays["scales"]
    odd = int(((scales > ABSURD_LOG_SCALE) | (scales < MIN_LOG_SCALE)).any(axis=-1).sum())
    if odd:
        problems.append(
            f"{odd} log-scales outside [{MIN_LOG_SCALE:g}, {ABSURD_LOG_SCALE:g}] (sizes e^{ABSURD_LOG_SCALE:g} m)"
        )
    zero = int((np.linalg.norm(arrays["rots"], axis=-1) < 1e-8).sum())
    if zero:
        problems.append(f"{zero} zero rotation quaternions")
    if problems:
        log.warning(
            "%s: %s of %d Gaussians; the splats will render wrongly or not at all (a damaged file?)",
            path, "; ".join(problems), len(scales),
        )  # fmt: skip


def load_ply(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Gaussians:
    """Read a 3DGS .ply (any SH degree 0-3) into `Gaussians`; `part` labels are read when present."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_ply: no file at {path}")
    try:
        ply = plyfile.PlyData.read(str(path))
    except Exception as e:  # plyfile raises several types for malformed headers and truncated bodies
        raise ValueError(f"load_ply: {path} is not a readable .ply file ({type(e).__name__}: {e})") from e
    if "vertex" not in ply:
        found = [el.name for el in ply.elements]
        raise ValueError(f"load_ply: {path} has no 'vertex' element (found {found}); is it a Gaussian-splat .ply?")
    vertex = ply["vertex"]
    num = vertex.count
    if num > MAX_GAUSSIANS:
        raise ValueError(f"load_ply: {path} claims {num} Gaussians (limit {MAX_GAUSSIANS}); the file looks corrupt")
    have = {p.name for p in vertex.properties}
    num_rest = sum(1 for n in have if n.startswith("f_rest_"))
    if num_rest not in _REST_COUNTS:
        raise ValueError(
            f"load_ply: {path} has {num_rest} f_rest_* properties; expected 0, 9, 24 or 45 (SH degree 0-3)"
        )
    needed = [n for n in _property_names(num_rest, False) if n not in ("nx", "ny", "nz")]
    missing = [n for n in needed if n not in have]
    if missing:
        raise ValueError(f"load_ply: {path} lacks the 3DGS properties {missing}; it is not a 3DGS splat file")

    def col(names: list[str]) -> np.ndarray:  # [G, len(names)] float64
        if not names:
            return np.zeros((num, 0))
        return np.stack([np.asarray(vertex[n], dtype=np.float64) for n in names], axis=-1).reshape(num, len(names))

    arrays = {
        "means": col(["x", "y", "z"]),
        "dc": col(["f_dc_0", "f_dc_1", "f_dc_2"]),
        "rest": col([f"f_rest_{i}" for i in range(num_rest)]),
        "opacity": col(["opacity"]),
        "scales": col(["scale_0", "scale_1", "scale_2"]),
        "rots": col(["rot_0", "rot_1", "rot_2", "rot_3"]),
    }
    for name, a in arrays.items():
        bad = ~np.isfinite(a)
        if bad.any():
            rows = np.nonzero(bad.any(axis=-1))[0]
            raise ValueError(
                f"load_ply: {path} has NaN/inf in '{name}' for {len(rows)} Gaussians (first at row {rows[0]})"
            )

    _warn_if_absurd(path, arrays)
    k = (_REST_COUNTS[num_rest] + 1) ** 2
    rest = torch.from_numpy(arrays["rest"]).reshape(num, 3, k - 1).transpose(1, 2)  # [G, K-1, 3]
    sh = torch.cat([torch.from_numpy(arrays["dc"]).unsqueeze(1), rest], dim=1)  # [G, K, 3]
    parts = None
    if "part" in have:
        parts = torch.from_numpy(np.asarray(vertex["part"], dtype=np.int64))
        if num and int(parts.max()) >= len(PART_NAMES):
            raise ValueError(
                f"load_ply: {path} has part id {int(parts.max())}, but only {len(PART_NAMES)} parts exist {PART_NAMES}"
            )

    def as_t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(dtype=dtype, device=device)

    return Gaussians(
        means=as_t(arrays["means"]),
        quats=as_t(arrays["rots"]),
        log_scales=as_t(arrays["scales"]),
        opacity_logits=as_t(arrays["opacity"])[:, 0],
        sh=sh.to(dtype=dtype, device=device),
        parts=None if parts is None else parts.to(device),
    )
