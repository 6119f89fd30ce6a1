"""Studio interactivity: frame time while an expression slider is dragged, phase by phase, beside the ideal.

With a window (its real slider callback; needs a display: `xvfb-run -a -s "-screen 0 1600x900x24"` headless):
python bench/studio.py --avatar trained --out bench/results/studio_cpu.json
On a CPU-only machine (`--gui-fps 15 0`: the GUI frame cap while the worker renders, 0 = uncapped; `--repeat 5`:
that many drags per setting, medians reported; pin it to 2 cores with `taskset -c 0,1`):
taskset -c 0,1 xvfb-run -a -s "-screen 0 1600x900x24" python bench/studio.py --avatar trained --detail 4 \
    --interactive-scale 0.5 --gui-fps 15 0 --repeat 5 --out docs/studio_cpu_drag.json
Without one (`--headless`): drive, upload (packing + transfer), sort, draw (or gsplat's raster), read-back and
display timed separately with the device synchronised around each, and "drive + gsplat + 8-bit image" on the
same avatar and camera as the ideal (CUDA machines):
python bench/studio.py --headless --avatar trained --size 640x480 1920x1080 --detail 0 --interactive-scale 1 \
    --raster gsplat gl --transfer pinned interop --out bench/results/studio-h200.json
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

from core.threads import configure_threads  # noqa: E402

configure_threads()  # as the studio's entry point does, before torch is imported (passive waits)

import torch  # noqa: E402

from core.env import describe_environment  # noqa: E402
from core.io import write_json  # noqa: E402

log = logging.getLogger("bench.studio")


def make_avatar(kind: str):
    if kind in ("tiny", "base"):
        from app.model_avatar import untrained_model_avatar

        return untrained_model_avatar(kind)
    if kind == "synthetic":
        from core.data.avatar import synthetic_avatar

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


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _clock() -> float:
    """Milliseconds, after the device has finished what was queued (so each phase carries its own GPU time)."""
    _sync()
    return 1e3 * time.perf_counter()


def _stats(values: list[float]) -> dict:
    s = sorted(values)
    return {"median": statistics.median(s), "p10": s[int(0.1 * (len(s) - 1))], "p90": s[int(0.9 * (len(s) - 1))]}


def drag_expression(studio, frames: int) -> dict:
    """Move jawOpen (or the first coefficient) every GUI frame like a mouse drag, through the slider's callback.

    The preview is decoded and drawn on the studio's worker thread, so two rates matter: GUI frames per second
    (how the window responds) and preview pictures shown per second (how the avatar follows the slider).
    """
    panel = next(p for p in studio.panels if p.title == "Expression")
    names = studio.session.avatar.controls.expression_names
    if not names:
        raise SystemExit("this avatar has no expression controls to drag")
    name = "jawOpen" if "jawOpen" in names else names[0]
    slider = panel.sliders[name]
    times, gui_cpu, decode, render, drawn = [], [], [], [], []
    shown = getattr(studio, "shown", None)
    pace = getattr(studio, "pace", lambda: 0.0)  # the frame loop's cap while the worker renders
    start, cpu0 = time.perf_counter(), time.process_time()
    for i in range(frames):
        value = 0.5 + 0.5 * math.sin(i * 0.3)
        t0, c0 = time.perf_counter(), time.thread_time()
        panel._on_slider(slider, value, name)  # the slider's own callback
        studio.step()
        gui_cpu.append(1e3 * (time.thread_time() - c0))
        pace()
        times.append(1e3 * (time.perf_counter() - t0))
        result = getattr(studio, "shown", None)
        if result is not None and result is not shown and result.image is not None:
            shown = result
            decode.append(result.decode_ms)
            render.append(result.render_ms)
            drawn.append(result.num)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {
        "coefficient": name,
        "gui_frames": frames,
        "gui_fps_cap_while_rendering": getattr(studio, "gui_fps_while_rendering", None),
        "gui_thread_cpu_ms_median": statistics.median(gui_cpu),
        "process_cpu_cores": cpu / elapsed,  # CPU seconds of every thread (GUI, worker, llvmpipe) per second
        "interactive_detail": studio.interactive_detail,
        "pictures_shown": len(decode),
        "pictures_per_s": len(decode) / elapsed,
        "gui_fps_median": 1e3 / statistics.median(times),
        "gui_frame_ms_median": statistics.median(times),
        "decode_ms_median": statistics.median(decode) if decode else None,
        "render_ms_median": statistics.median(render) if render else None,
        "gaussians_drawn_median": statistics.median(drawn) if drawn else None,
        "preview_path": studio.viewport.path,
    }


def idle_gui(studio, frames: int = 60) -> dict:
    """GUI frames with nothing changing (the worker idle): their rate and what each costs the whole process in CPU
    time (the GUI thread plus the threads of the window's own GL driver: the software rasteriser on a CPU)."""
    studio.settle()
    t0, c0, g0 = time.perf_counter(), time.process_time(), time.thread_time()
    for _ in range(frames):
        studio.step()
    wall, cpu, gui = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - g0
    return {
        "frames": frames,
        "fps": frames / wall,
        "process_cpu_ms_per_frame": 1e3 * cpu / frames,
        "gui_thread_cpu_ms_per_frame": 1e3 * gui / frames,
        "load_average_1min": os.getloadavg()[0],
    }


class _Display:
    """The studio's last step without a window: hand the image to a Dear PyGui raw texture (no copy is made;
    the texture upload itself happens when a window draws, which a headless run cannot time)."""

    def __init__(self, image) -> None:
        try:
            import dearpygui.dearpygui as dpg
        except ImportError:
            self.dpg = None
            return
        self.dpg = dpg
        dpg.create_context()
        with dpg.texture_registry():
            self.texture = dpg.add_raw_texture(
                image.shape[1], image.shape[0], image.ravel(), format=dpg.mvFormat_Float_rgb
            )

    def show(self, image) -> None:
        if self.dpg is not None:
            self.dpg.set_value(self.texture, image.ravel())

    def close(self) -> None:
        if self.dpg is not None:
            self.dpg.destroy_context()


def _edit(session, name: str, i: int):
    return session.edit.with_expression({name: 0.5 + 0.5 * math.sin(i * 0.3)})


def headless_drag(
    avatar, frames: int, size: tuple[int, int], scale: float, detail: int | None, *,
    raster: str = "auto", transfer: str = "auto", warmup: int = 10,
) -> dict:  # fmt: skip
    """The studio's per-frame work without a window: edit -> drive -> preview -> image handed to the texture.

    Two passes over the same frames: one synchronises the device around every phase (drive, upload = packing and
    transfer, sort, draw or raster, read-back, display) to split the time; the other only times whole frames.
    """
    from app.session import Session, share_cpu_with_gl
    from app.viewport import Viewport, orbit_camera

    share_cpu_with_gl()
    session = Session(avatar)
    viewport = Viewport(*size, backend="egl", raster=raster, transfer=transfer)  # type: ignore[arg-type]
    display = _Display(viewport.image)
    names = avatar.controls.expression_names
    name = "jawOpen" if "jawOpen" in names else names[0]
    camera = orbit_camera(session.view, *size)
    phases: dict[str, list[float]] = {}
    frame_profiled, frame_plain = [], []
    for profiled in (True, False):
        viewport.profile = profiled
        for i in range(frames + warmup):
            session.apply(_edit(session, name, i + (0 if profiled else frames)), key="drag")
            t0 = _clock()
            g = session.gaussians(detail=detail)
            t1 = _clock() if profiled else 0.0
            image = viewport.render(g, camera, scale=scale)
            t2 = _clock() if profiled else 0.0
            display.show(image)
            t3 = _clock()
            if i < warmup:
                continue
            if profiled:
                frame_profiled.append(t3 - t0)
                for k, v in {"drive_ms": t1 - t0, **viewport.phases, "display_ms": t3 - t2}.items():
                    phases.setdefault(k, []).append(v)
            else:
                frame_plain.append(t3 - t0)
    out = {
        "coefficient": name,
        "frames": frames,
        "size": list(size),
        "interactive_scale": scale,
        "interactive_detail": detail,
        "preview_path": viewport.path,
        "transfer": viewport.renderer.stats.transfer if viewport.path == "gl" else "none (only the image leaves)",
        "frame_ms": _stats(frame_plain),
        "fps_median": 1e3 / statistics.median(frame_plain),
        "frame_ms_profiled": _stats(frame_profiled),
        "phases_ms_median": {k: statistics.median(v) for k, v in phases.items()},
        "preview_device": viewport.device_name,
        "gl_renderer": viewport.gl_name,
        "num_gaussians": g.num,
    }
    display.close()
    viewport.release()
    return out


def ideal_drag(avatar, frames: int, size: tuple[int, int], warmup: int = 10) -> dict | None:
    """The bar: drive + gsplat + one 8-bit image to the host, on the same avatar and camera (CUDA + gsplat only)."""
    from app.session import Session
    from app.viewport import BACKGROUND, orbit_camera
    from core.raster.gsplat_backend import gsplat_available
    from core.raster.rasterize import rasterize

    if not (torch.cuda.is_available() and gsplat_available()):
        return None
    session = Session(avatar)
    names = avatar.controls.expression_names
    name = "jawOpen" if "jawOpen" in names else names[0]
    camera = orbit_camera(session.view, *size)
    host = torch.empty(size[1], size[0], 3, dtype=torch.uint8, pin_memory=True)
    times, drive = [], []
    for i in range(frames + warmup):
        session.apply(_edit(session, name, i), key="drag")
        t0 = _clock()
        g = session.gaussians()
        t1 = _clock()
        out = rasterize(g, camera.to(g.means.device), background=BACKGROUND, backend="gsplat")
        host.copy_((out.color[0].clamp(0, 1) * 255).to(torch.uint8), non_blocking=True)
        t2 = _clock()
        if i >= warmup:
            times.append(t2 - t0)
            drive.append(t1 - t0)
    return {
        "size": list(size),
        "frame_ms": _stats(times),
        "drive_ms_median": statistics.median(drive),
        "num_gaussians": g.num,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--avatar",
        default="tiny",
        help="trained (the shipped model's example) | tiny | base (untrained model), synthetic, example",
    )
    ap.add_argument("--size", nargs="+", default=["640x480"])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--interactive-scale", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument(
        "--detail", type=int, nargs="+", default=[4, 0],
        help="Gaussians per anchor decoded while dragging (0: all of them); one run per value",
    )  # fmt: skip
    ap.add_argument(
        "--gui-fps", type=float, nargs="+", default=[-1.0],
        help="window: GUI frame cap while the worker renders (0: uncapped, -1: the studio's default); one run each",
    )  # fmt: skip
    ap.add_argument("--repeat", type=int, default=1, help="window: drags per setting (medians over them reported)")
    ap.add_argument("--raster", nargs="+", default=["auto"], help="headless: auto | gl | gsplat (one run each)")
    ap.add_argument("--transfer", nargs="+", default=["auto"], help="headless, gl path: auto | pinned | interop")
    ap.add_argument("--out", default=None)
    ap.add_argument("--headless", action="store_true", help="no window: drive + preview + image, phase by phase")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.size]
    if args.headless:
        avatar = make_avatar(args.avatar)
        results, ideals = [], []
        for size in sizes:
            for raster in args.raster:
                for transfer in args.transfer if raster == "gl" else ["auto"]:
                    for detail in args.detail:
                        for scale in args.interactive_scale:
                            try:
                                r = headless_drag(
                                    avatar, args.frames, size, scale, detail or None, raster=raster, transfer=transfer
                                )
                            except (RuntimeError, ValueError) as e:
                                log.warning("%s / %s at %s: %s", raster, transfer, size, e)
                                r = {"size": list(size), "raster": raster, "transfer": transfer, "error": str(e)}
                            log.info("%s", json.dumps(r, default=str))
                            results.append(r)
            ideal = ideal_drag(avatar, args.frames, size)
            if ideal is not None:
                log.info("ideal %s", json.dumps(ideal))
                ideals.append(ideal)
        out = {
            "bench": "studio_expression_drag_headless",
            "avatar": avatar.name,
            "decode_device": getattr(avatar, "device", "cpu"),
            "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "torch_threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0],
            "environment": describe_environment(),
            "results": results,
            "ideal_drive_gsplat_8bit_image": ideals,
        }
        return _write(out, args.out)
    os.environ.setdefault("LCA_STUDIO_HOME", "/tmp/lca_studio_bench")
    from app.session import Session
    from app.studio import Studio

    w, h = sizes[0]
    avatar = make_avatar(args.avatar)
    studio = Studio(Session(avatar), preview=(w, h))
    studio.run(max_frames=5)
    if hasattr(studio, "settle"):
        studio.settle()
    results = []
    idle = idle_gui(studio)
    log.info("idle GUI: %.1f FPS, %.1f CPU ms per frame (GUI thread %.1f)", idle["fps"],
             idle["process_cpu_ms_per_frame"], idle["gui_thread_cpu_ms_per_frame"])  # fmt: skip
    default_cap = getattr(studio, "gui_fps_while_rendering", None)
    settings = [(d, s, c) for d in args.detail for s in args.interactive_scale for c in args.gui_fps]
    runs: dict[tuple, list[dict]] = {k: [] for k in settings}
    for _ in range(args.repeat):  # settings interleaved, so a change in the machine's load hits each alike
        for detail, scale, cap in settings:
            studio.interactive_scale, studio.interactive_detail = scale, detail or None
            studio.gui_fps_while_rendering = default_cap if cap < 0 else (cap or None)
            studio.settle()
            drag_expression(studio, 5)  # warm up
            r = drag_expression(studio, args.frames)
            r["interactive_scale"] = scale
            r["load_average_1min"] = os.getloadavg()[0]
            log.info(
                "detail %s, scale %.2f, GUI cap %s: %.1f pictures/s, GUI %.1f FPS (decode %s ms, render %s ms, "
                "%s Gaussians; GUI thread %.1f CPU ms/frame, %.2f cores busy; load %.1f)",
                detail or "all", scale, r["gui_fps_cap_while_rendering"], r["pictures_per_s"], r["gui_fps_median"],
                r["decode_ms_median"], r["render_ms_median"], r["gaussians_drawn_median"],
                r["gui_thread_cpu_ms_median"], r["process_cpu_cores"], r["load_average_1min"],
            )  # fmt: skip
            runs[(detail, scale, cap)].append(r)
    for rs in runs.values():
        keys = ("pictures_per_s", "gui_fps_median", "decode_ms_median", "render_ms_median", "load_average_1min")
        results.append({
            **rs[0], **{k: statistics.median(r[k] for r in rs if r[k] is not None) for k in keys},
            "repeats": len(rs), "runs": [{k: r[k] for k in keys} for r in rs],
        })  # fmt: skip
    out = {
        "bench": "studio_expression_drag",
        "avatar": avatar.name,
        "num_gaussians": getattr(studio, "_num", None),
        "preview": [w, h],
        "gl_renderer": studio.viewport.device_name,
        "torch_threads": torch.get_num_threads(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "load_average_1min": os.getloadavg()[0],
        "environment": describe_environment(),
        "idle_gui": idle,
        "results": results,
    }
    studio.close()
    return _write(out, args.out)


def _write(out: dict, path: str | None) -> int:
    print(json.dumps(out, indent=2, default=str))
    if path:
        write_json(path, out, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
