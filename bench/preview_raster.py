"""The preview's rasterisers against gsplat on the same Gaussians and camera (CUDA machine; JSON out).

python bench/preview_raster.py --out bench/results/preview_raster-h200.json
Scenes: the shipped avatar (decoded, posed) and the avatar-like synthetic figure at 131K and 1M Gaussians, 1920x1080.
Rows: gsplat's own `rasterization` on ready inputs (the bar), the studio's gsplat preview (`GsplatPreview.draw`:
activations, camera upload, clamp included), and the OpenGL geometry-shader renderer (GPU sort + draw).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core.env import describe_environment  # noqa: E402
from core.io import write_json  # noqa: E402
from core.raster.types import Camera, Gaussians  # noqa: E402

log = logging.getLogger("bench.preview_raster")


def _time(fn, reps: int, finish=None) -> dict:
    """Median / p10 / p90 ms of `fn` with the device synchronised before and after each call."""
    times = []
    for i in range(reps + 10):
        if finish is not None:
            finish()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if finish is not None:
            finish()
        torch.cuda.synchronize()
        if i >= 10:
            times.append(1e3 * (time.perf_counter() - t0))
    s = sorted(times)
    return {"median": statistics.median(s), "p10": s[len(s) // 10], "p90": s[9 * len(s) // 10]}


def scenes(sizes: list[int]) -> list[tuple[str, Gaussians, Camera]]:
    from render.scenes import avatar_like_scene, front_camera

    out = []
    try:
        from app.model_avatar import default_model_avatar
        from app.session import Session
        from app.viewport import orbit_camera

        avatar = default_model_avatar()
        if avatar is not None:
            session = Session(avatar)
            g = session.gaussians()
            out.append((f"shipped avatar ({avatar.name})", g, orbit_camera(session.view, 1920, 1080)))
    except Exception as e:  # noqa: BLE001 - the synthetic scenes still tell the story
        log.warning("no shipped avatar: %s", e)
    for n in sizes:
        g = avatar_like_scene(n, seed=0, sh_degree=3)
        out.append((f"avatar-like scene {n:,}", g.to("cuda"), front_camera(1920, 1080)))
    return out


def bench_scene(name: str, g: Gaussians, camera: Camera, reps: int) -> dict:
    import gsplat

    from render.gl_camera import camera_params
    from render.gl_context import create_context
    from render.gsplat_preview import GsplatPreview
    from render.splat_renderer import SplatRenderer

    params = camera_params(camera)
    f32 = torch.float32
    viewmat = camera.T_cam_world.reshape(1, 4, 4).to("cuda", f32)
    K = camera.K.reshape(1, 3, 3).to("cuda", f32)
    bg = torch.tensor([[0.13, 0.14, 0.16]], device="cuda")
    ready = dict(
        means=g.means.float(), quats=g.quats.float(), scales=g.log_scales.float().exp(),
        opacities=torch.sigmoid(g.opacity_logits.float()), colors=g.sh.float(),
    )  # fmt: skip
    row: dict = {"scene": name, "num_gaussians": g.num, "size": [params.width, params.height]}
    for packed in (False, True):

        def raw(packed=packed):
            gsplat.rasterization(
                **ready, viewmats=viewmat, Ks=K, width=params.width, height=params.height,
                sh_degree=g.sh_degree, packed=packed, backgrounds=bg,
            )  # fmt: skip

        preview = GsplatPreview("cuda", packed=packed)
        for key, fn in (
            (f"gsplat_packed_{packed}_ms", raw),
            (f"preview_gsplat_packed_{packed}_ms", lambda p=preview: p.draw(g, params, background=(0.13, 0.14, 0.16))),
        ):
            try:
                row[key] = _time(fn, reps)
            except (AssertionError, RuntimeError) as e:  # gsplat 1.5.3's packed mode rejects [C, 3] backgrounds
                row[key] = {"median": float("inf"), "error": repr(e)}
    ctx = create_context("egl")
    with ctx:
        r = SplatRenderer(ctx, width=params.width, height=params.height, top_row_first=True)
        r.set_gaussians(g)
        r.draw(camera)
        row["gl_renderer"] = ctx.info["GL_RENDERER"]
        row["gl_sort_path"] = r.stats.sort_path
        row["gl_draw_ms"] = _time(lambda: r.draw(camera), reps, ctx.finish)  # order reused

        def sort_and_draw():
            r._order_key = None  # the view moved: sort again
            r.draw(camera)

        row["gl_sort_draw_ms"] = _time(sort_and_draw, reps, ctx.finish)
        r.release()
    ctx.release()
    bar = min(row["gsplat_packed_False_ms"]["median"], row["gsplat_packed_True_ms"]["median"])
    best = min(row["preview_gsplat_packed_False_ms"]["median"], row["preview_gsplat_packed_True_ms"]["median"])
    row["preview_over_gsplat"] = best / bar
    row["gl_over_gsplat"] = row["gl_sort_draw_ms"]["median"] / bar
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[131_072, 1_000_000])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not torch.cuda.is_available():
        raise SystemExit("bench/preview_raster.py compares against gsplat and needs a CUDA device")
    rows = []
    for name, g, cam in scenes(args.sizes):
        row = bench_scene(name, g, cam, args.reps)
        log.info("%s", json.dumps(row))
        rows.append(row)
    out = {
        "bench": "preview_raster",
        "device_name": torch.cuda.get_device_name(),
        "environment": describe_environment(),
        "rows": rows,
    }
    print(json.dumps(out, indent=2, default=str))
    if args.out:
        write_json(args.out, out, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
