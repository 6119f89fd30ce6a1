"""Benchmark of the OpenGL splat renderer (and gsplat, where importable) on avatar-like scenes -> JSON.

python bench/render.py --counts 50000,131072 --width 1920 --height 1080 --out bench/results/render.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.io import write_json  # noqa: E402
from render.gl_context import create_context, renderer_name  # noqa: E402
from render.scenes import avatar_like_scene, front_camera  # noqa: E402
from render.splat_renderer import SplatRenderer  # noqa: E402

log = logging.getLogger("bench.render")


def _median_ms(samples: list[float]) -> float:
    return round(1e3 * statistics.median(samples), 3)


def bench_gl(ctx, count: int, width: int, height: int, frames: int, sort: str, dtype: str) -> dict:
    scene = avatar_like_scene(count)
    renderer = SplatRenderer(ctx, sort=sort, target_dtype=dtype)  # type: ignore[arg-type]
    cam = front_camera(width, height)
    t0 = time.perf_counter()
    renderer.set_gaussians(scene)
    ctx.finish()
    upload_s = time.perf_counter() - t0
    renderer.draw(cam)  # warm-up: compiles, first sort
    ctx.finish()
    draw, sort_draw = [], []
    query = ctx.query(time=True)
    gpu_ns = []
    for _ in range(frames):
        t = time.perf_counter()
        with query:
            renderer.draw(cam)  # same view: the order is reused, this is the pure draw
        ctx.finish()
        draw.append(time.perf_counter() - t)
        gpu_ns.append(query.elapsed)
    for i in range(max(3, frames // 2)):
        moved = front_camera(width, height, yaw_deg=float(i + 1))  # a new view: sort + draw
        t = time.perf_counter()
        renderer.draw(moved)
        ctx.finish()
        sort_draw.append(time.perf_counter() - t)
    pixels = renderer.read()
    result = {
        "count": count,
        "sort_path": renderer.stats.sort_path,
        "target": dtype,
        "upload_ms": round(1e3 * upload_s, 3),
        "draw_ms": _median_ms(draw),
        "draw_gpu_ms": round(statistics.median(gpu_ns) / 1e6, 3),
        "sort_plus_draw_ms": _median_ms(sort_draw),
        "sort_ms": round(_median_ms(sort_draw) - _median_ms(draw), 3),
        "coverage": round(float((pixels[..., 3] > 0.5).mean()), 4),
    }
    renderer.release()
    return result


def bench_gsplat(count: int, width: int, height: int, frames: int) -> dict | None:
    if not torch.cuda.is_available():
        return None
    try:
        from core.raster.gsplat_backend import rasterize_gsplat  # noqa: F401
        from core.raster.rasterize import rasterize
    except ImportError as e:
        log.warning("gsplat timing skipped: %s", e)
        return None
    scene = avatar_like_scene(count).to("cuda")
    cam = front_camera(width, height).to("cuda")
    try:
        rasterize(scene, cam, backend="gsplat")
    except Exception as e:  # noqa: BLE001 - report, keep the GL numbers
        log.warning("gsplat timing skipped: %s", e)
        return {"error": str(e)}
    torch.cuda.synchronize()
    times = []
    for _ in range(frames):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        rasterize(scene, cam, backend="gsplat")
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return {"count": count, "forward_ms": _median_ms(times), "device": torch.cuda.get_device_name()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", default="50000,131072,500000,1000000")
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--sort", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--target", default="f1", choices=["f4", "f2", "f1"], help="framebuffer format")
    p.add_argument("--gsplat", action="store_true", help="also time gsplat on the same scenes (CUDA)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ctx = create_context("egl")
    counts = [int(c) for c in args.counts.split(",")]
    report = {
        "gl_renderer": renderer_name(ctx),
        "host": platform.node(),
        "cpu_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "width": args.width,
        "height": args.height,
        "scene": "render.scenes.avatar_like_scene + front_camera (3 m, 40 deg fov), SH degree 3",
        "gl": [],
        "gsplat": [],
    }
    for count in counts:
        r = bench_gl(ctx, count, args.width, args.height, args.frames, args.sort, args.target)
        log.info("GL %s", r)
        report["gl"].append(r)
        if args.gsplat:
            g = bench_gsplat(count, args.width, args.height, args.frames)
            log.info("gsplat %s", g)
            report["gsplat"].append(g)
    print(json.dumps(report, indent=2))
    if args.out is not None:
        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
