"""Studio interactivity: frames per second while an expression slider is dragged (through its real callback).

Needs a display (run under `xvfb-run -a -s "-screen 0 1600x900x24"` on a headless machine). Writes JSON:
python bench/studio.py --avatar tiny --out bench/results/studio_cpu.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core.env import describe_environment  # noqa: E402

log = logging.getLogger("bench.studio")


def make_avatar(kind: str):
    if kind in ("tiny", "base"):
        from app.model_avatar import untrained_model_avatar

        return untrained_model_avatar(kind)
    if kind == "synthetic":
        from app.synthetic_avatar import synthetic_avatar

        return synthetic_avatar(1)
    if kind == "example":
        from app.avatar_source import example_figure

        return example_figure()
    if kind == "trained":
        from app.model_avatar import default_model_avatar

        avatar = default_model_avatar()
        if avatar is None:
            raise SystemExit("no trained model and examples installed (assets/default_model.safetensors)")
        return avatar
    raise SystemExit(f"unknown --avatar {kind!r}; use trained, tiny, base, synthetic or example")


def drag_expression(studio, frames: int) -> dict:
    """Move jawOpen (or the first coefficient) every frame like a mouse drag; time each frame."""
    panel = next(p for p in studio.panels if p.title == "Expression")
    names = studio.session.avatar.rig.expression_names
    if not names:
        raise SystemExit("this avatar has no expression controls to drag")
    name = "jawOpen" if "jawOpen" in names else names[0]
    slider = panel.sliders[name]
    times, decode, render, drawn = [], [], [], []
    decoded0, t_start = studio.worker.decoded, time.perf_counter()
    for i in range(frames):
        value = 0.5 + 0.5 * math.sin(i * 0.3)
        t0 = time.perf_counter()
        panel._on_slider(slider, value, name)  # the slider's own callback
        studio.step()
        times.append(time.perf_counter() - t0)
        decode.append(studio.session.decode_ms)
        render.append(studio.shown.render_ms if studio.shown is not None else 0.0)
        drawn.append(studio._num)
    # the GUI frame (callbacks, texture, drawing) and the preview (decode + render on the worker) run apart
    preview_per_s = (studio.worker.decoded - decoded0) / (time.perf_counter() - t_start)
    return {
        "coefficient": name,
        "frames": frames,
        "interactive_detail": studio.interactive_detail,
        "gaussians_drawn_median": statistics.median(drawn),
        "fps_median": 1.0 / statistics.median(times),
        "preview_frames_per_s": preview_per_s,
        "frame_ms_median": 1e3 * statistics.median(times),
        "frame_ms_p90": 1e3 * sorted(times)[int(0.9 * (len(times) - 1))],
        "decode_ms_median": statistics.median(decode),
        "render_ms_median": statistics.median(render),
    }


def headless_drag(avatar, frames: int, size: tuple[int, int], scale: float, detail: int | None) -> dict:
    """The same per-frame work without a window: edit -> decode -> offscreen render (EGL) -> image on the host."""
    from app.session import Session, share_cpu_with_gl
    from app.viewport import Viewport, orbit_camera

    share_cpu_with_gl()
    session = Session(avatar)
    viewport = Viewport(*size, backend="egl")
    names = avatar.rig.expression_names
    name = "jawOpen" if "jawOpen" in names else names[0]
    times, decode, render = [], [], []
    for i in range(frames + 5):
        t0 = time.perf_counter()
        session.apply(session.edit.with_expression({name: 0.5 + 0.5 * math.sin(i * 0.3)}), key="drag")
        g = session.gaussians(detail=detail)
        viewport.render(g, orbit_camera(session.view, *size), scale=scale)
        if i >= 5:
            times.append(time.perf_counter() - t0)
            decode.append(session.decode_ms)
            render.append(viewport.render_ms)
    out = {
        "coefficient": name,
        "frames": frames,
        "interactive_scale": scale,
        "interactive_detail": detail,
        "fps_median": 1.0 / statistics.median(times),
        "frame_ms_median": 1e3 * statistics.median(times),
        "decode_ms_median": statistics.median(decode),
        "render_ms_median": statistics.median(render),
        "gl_renderer": viewport.device_name,
        "num_gaussians": g.num,
    }
    viewport.release()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--avatar",
        default="tiny",
        help="trained (the shipped model's example) | tiny | base (untrained model), synthetic, example",
    )
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--interactive-scale", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument(
        "--detail", type=int, nargs="+", default=[4, 0],
        help="Gaussians per anchor decoded while dragging (0: all of them); one run per value",
    )  # fmt: skip
    ap.add_argument("--out", default=None)
    ap.add_argument("--headless", action="store_true", help="no window: decode + offscreen EGL render only")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.headless:
        w, h = (int(v) for v in args.size.split("x"))
        avatar = make_avatar(args.avatar)
        results = [
            headless_drag(avatar, args.frames, (w, h), scale, detail or None)
            for detail in args.detail
            for scale in args.interactive_scale
        ]
        out = {
            "bench": "studio_expression_drag_headless",
            "avatar": avatar.name,
            "decode_device": getattr(avatar, "device", "cpu"),
            "torch_threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0],
            "environment": describe_environment(),
            "results": results,
        }
        return _write(out, args.out)
    os.environ.setdefault("LCA_STUDIO_HOME", "/tmp/lca_studio_bench")
    from app.session import Session
    from app.studio import Studio

    w, h = (int(v) for v in args.size.split("x"))
    avatar = make_avatar(args.avatar)
    studio = Studio(Session(avatar), preview=(w, h))
    studio.settle()
    results = []
    for detail in args.detail:
        for scale in args.interactive_scale:
            studio.interactive_scale, studio.interactive_detail = scale, detail or None
            drag_expression(studio, 5)  # warm up
            r = drag_expression(studio, args.frames)
            r["interactive_scale"] = scale
            log.info(
                "detail %s, scale %.2f: GUI %.1f FPS, preview %.1f frames/s (decode %.1f ms, render %.1f ms, %d Gaussians)",
                detail or "all", scale, r["fps_median"], r["preview_frames_per_s"], r["decode_ms_median"],
                r["render_ms_median"],
                r["gaussians_drawn_median"],
            )  # fmt: skip
            results.append(r)
    out = {
        "bench": "studio_expression_drag",
        "avatar": avatar.name,
        "num_gaussians": studio.shown.num if studio.settle() else None,
        "preview": [w, h],
        "gl_renderer": studio.viewport.device_name,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "environment": describe_environment(),
        "results": results,
    }
    studio.close()
    return _write(out, args.out)


def _write(out: dict, path: str | None) -> int:
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
