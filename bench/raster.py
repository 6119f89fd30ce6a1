"""Rasteriser speed on a person-like scene: time per frame for each backend and size, written as JSON.

    python bench/raster.py                          # sizes 50K, 200K, 1M at 1024x1024
    python bench/raster.py --sizes 50000 --out x.json

Times are medians over repetitions with CUDA synchronised around each; forward runs under no_grad,
forward+backward back-propagates a weighted sum of the colour image.
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.io import write_json  # noqa: E402
from core.raster import Camera, Gaussians, rasterize  # noqa: E402
from core.raster.gsplat_backend import gsplat_available  # noqa: E402

log = logging.getLogger("bench.raster")

BODY_RADII = (0.25, 0.85, 0.18)  # metres: an ellipsoid standing in for a 1.7 m person
SCENE = "Gaussians on an ellipsoid 'body' (0.5 x 1.7 x 0.36 m), camera 3 m away, fov 40 deg, SH degree 3"


def person_scene(n: int, seed: int = 0, device: str = "cpu") -> Gaussians:
    """`n` splats scattered on (and just off) an ellipsoid body, sized so they tile its surface."""
    gen = torch.Generator().manual_seed(seed)
    a, b, c = BODY_RADII
    p = 1.6075  # Knud Thomsen's surface-area approximation
    area = 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)
    u = torch.rand(n, 2, generator=gen)
    theta, phi = 2 * math.pi * u[:, 0], torch.acos(1 - 2 * u[:, 1])
    unit = torch.stack([phi.sin() * theta.cos(), phi.cos(), phi.sin() * theta.sin()], dim=-1)
    means = unit * torch.tensor(BODY_RADII) + torch.tensor([0.0, 0.9, 0.0])
    spacing = math.sqrt(area / n)
    means = means + 0.1 * spacing * torch.randn(n, 3, generator=gen)
    log_scales = math.log(0.6 * spacing) + 0.3 * torch.randn(n, 3, generator=gen)
    return Gaussians(
        means=means,
        quats=torch.randn(n, 4, generator=gen),
        log_scales=log_scales,
        opacity_logits=torch.randn(n, generator=gen) + 2.0,
        sh=torch.cat([1.5 * torch.rand(n, 1, 3, generator=gen) - 0.75, 0.1 * torch.randn(n, 15, 3, generator=gen)], 1),
    ).to(device)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _median_ms(fn: Callable[[], None], device: str, reps: int, budget_s: float) -> tuple[float, int]:
    fn()  # warm-up (kernel loading, allocator)
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < reps and (len(times) < 2 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), len(times)


def bench_one(backend: str, device: str, n: int, size: int, reps: int, budget_s: float, backward: bool) -> dict:
    g = person_scene(n, device=device)
    cam = Camera.look_at((0.0, 1.0, 3.0), (0.0, 0.9, 0.0), fov_y_deg=40.0, width=size, height=size, device=device)
    weights = torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(1)).to(device)

    def forward() -> None:
        with torch.no_grad():
            rasterize(g, cam, backend=backend)

    leaves = [t.clone().requires_grad_(True) for t in (g.means, g.quats, g.log_scales, g.opacity_logits, g.sh)]

    def forward_backward() -> None:
        out = rasterize(Gaussians(*leaves), cam, backend=backend)
        (out.color * weights).sum().backward()

    row: dict = {"backend": backend, "device": device, "gaussians": n, "width": size, "height": size}
    with torch.no_grad():
        cover = rasterize(g, cam, backend=backend).alpha.gt(0.5).float().mean().item()
    row["covered_fraction"] = round(cover, 4)
    row["forward_ms"], row["forward_reps"] = _median_ms(forward, device, reps, budget_s)
    if backward:
        row["forward_backward_ms"], row["forward_backward_reps"] = _median_ms(forward_backward, device, reps, budget_s)
    if device == "cuda":
        row["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        torch.cuda.reset_peak_memory_stats()
    log.info("%s", row)
    return row


def psnr_torch_vs_gsplat(n: int, size: int) -> float:
    g = person_scene(n, device="cuda")
    cam = Camera.look_at((0.0, 1.0, 3.0), (0.0, 0.9, 0.0), fov_y_deg=40.0, width=size, height=size, device="cuda")
    from core.raster.torch_ref import TorchRasterSettings

    with torch.no_grad():
        a = rasterize(g, cam, backend="torch", torch_settings=TorchRasterSettings(max_alpha=0.999)).color
        b = rasterize(g, cam, backend="gsplat").color
    mse = (a - b).square().mean().item()
    return 10 * math.log10(1.0 / max(mse, 1e-20))


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu-{platform.machine() or 'unknown'}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="50000,200000,1000000", help="comma-separated Gaussian counts")
    ap.add_argument("--resolution", type=int, default=1024, help="square image side in pixels")
    ap.add_argument("--reps", type=int, default=20, help="repetitions per measurement (GPU)")
    ap.add_argument("--cpu-reps", type=int, default=3, help="repetitions per measurement (CPU)")
    ap.add_argument("--budget-s", type=float, default=15.0, help="stop repeating a measurement after this long")
    ap.add_argument("--cpu-max", type=int, default=200_000, help="skip the CPU torch reference above this count")
    ap.add_argument("--cpu-backward-max", type=int, default=50_000, help="CPU forward+backward only up to this count")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU torch reference entirely")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/raster-<device>.json)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    sizes = [int(s) for s in args.sizes.split(",") if s]
    dev_name = device_name()
    results, notes = [], []
    runs: list[tuple[str, str]] = []
    if not args.no_cpu:
        runs.append(("torch", "cpu"))
    if torch.cuda.is_available():
        runs.append(("torch", "cuda"))
        if gsplat_available():
            runs.append(("gsplat", "cuda"))
        else:
            notes.append("gsplat not installed: no gsplat rows")
    for backend, device in runs:
        for n in sizes:
            if device == "cpu" and n > args.cpu_max:
                notes.append(f"torch on CPU skipped at {n} Gaussians (minutes per frame; raise --cpu-max to run it)")
                continue
            reps = args.reps if device == "cuda" else args.cpu_reps
            backward = device == "cuda" or n <= args.cpu_backward_max
            results.append(bench_one(backend, device, n, args.resolution, reps, args.budget_s, backward))
    if torch.cuda.is_available() and gsplat_available():
        for n in sizes:
            psnr = psnr_torch_vs_gsplat(n, args.resolution)
            results.append({"check": "psnr_torch_vs_gsplat_db", "gaussians": n, "value": round(psnr, 2)})
            log.info("torch vs gsplat at %d Gaussians: %.2f dB", n, psnr)

    report = {
        "benchmark": "raster",
        "device": dev_name,
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gsplat": _gsplat_version(),
        "resolution": [args.resolution, args.resolution],
        "scene": SCENE,
        "results": results,
        "notes": notes,
    }
    slug = "".join(ch if ch.isalnum() else "-" for ch in dev_name.lower()).strip("-") or "cpu"
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"raster-{slug}.json"
    write_json(out, report)
    log.info("wrote %s", out)


def _gsplat_version() -> str | None:
    if not gsplat_available():
        return None
    import gsplat

    return getattr(gsplat, "__version__", "unknown")


if __name__ == "__main__":
    main()
