"""Soak run of the studio: a replayed driving recording drives the avatar for a while under a display, and RSS,
threads, live OpenGL objects and Dear PyGui items are sampled over time (JSON on stdout or in --out).

    xvfb-run -a -s "-screen 0 1280x800x24" python tests/soak_studio.py --minutes 30 --out soak.json

`tests/test_hardening_soak.py` runs it for a minute (LCA_SOAK_MINUTES sets another length) and checks that the
samples stay flat. Every `--restart-s` seconds the replay is stopped and started again, so opening and closing
inputs is soaked too.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GL_TYPES = ("Buffer", "ComputeShader", "Framebuffer", "Program", "Renderbuffer", "Sampler", "Texture",
            "Texture3D", "TextureCube", "TextureArray", "VertexArray", "Query", "Scope")  # fmt: skip


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def live_gl_objects(ctx) -> int:
    """moderngl objects of `ctx` not yet released (a leak of textures or buffers shows here first)."""
    import moderngl

    types = tuple(getattr(moderngl, n) for n in GL_TYPES if hasattr(moderngl, n))
    with warnings.catch_warnings():  # walking every object touches deprecated module attributes
        warnings.simplefilter("ignore")
        live = [o for o in gc.get_objects() if isinstance(o, types) and getattr(o, "ctx", None) is ctx]
    return sum(type(o.mglo).__name__ != "InvalidObject" for o in live)


def make_recording(path: Path, seconds: float = 4.0, fps: float = 30.0) -> Path:
    from core.tracking.recording import Recording, save_recording

    t = np.arange(int(seconds * fps)) / fps
    names = ("expr.jawOpen", "expr.eyeBlinkLeft", "gaze.yaw", "pose.head.y", "pose.upperarm01.L.z")
    w = 2 * np.pi / seconds
    values = np.stack([0.5 + 0.5 * np.sin(w * t), (np.sin(3 * w * t) > 0.8).astype(float), 15 * np.sin(w * t),
                       20 * np.sin(w * t), 30 * np.sin(2 * w * t)], 1).astype(np.float32)  # fmt: skip
    return save_recording(Recording(times=t, names=names, values=values), path)


def soak(minutes: float, *, sample_s: float = 2.0, restart_s: float = 20.0, preview=(320, 240)) -> dict:
    import dearpygui.dearpygui as dpg

    home = Path(tempfile.mkdtemp(prefix="lca_soak_"))
    os.environ["LCA_STUDIO_HOME"] = str(home)
    from app.session import Session
    from app.studio import Studio
    from core.data.avatar import synthetic_avatar

    studio = Studio(Session(synthetic_avatar(1)), preview=preview, interactive_scale=1.0)
    panel = next(p for p in studio.panels if p.title == "Drive")
    studio.show_panel("Drive")
    take = make_recording(home / "take.npz")
    dpg.set_value(panel.loop_box, True)
    if not panel.start(str(take)):
        raise RuntimeError(f"the replay did not start: {panel.controller.error}")
    samples, jaw = [], []
    t0 = time.perf_counter()
    next_sample = next_restart = t0
    restarts = 0
    try:
        while (now := time.perf_counter()) - t0 < 60.0 * minutes:
            studio.run(max_frames=studio.frames + 1)
            jaw.append(studio.session.edit.expression_of("jawOpen"))
            if now >= next_restart + restart_s:
                panel.stop()
                if not panel.start(str(take)):
                    raise RuntimeError(f"the replay did not restart: {panel.controller.error}")
                next_restart, restarts = now, restarts + 1
            if now >= next_sample:
                gc.collect()
                gl = live_gl_objects(studio.viewport.ctx)  # walks Python objects only: no GL call off its thread
                samples.append({
                    "t": round(now - t0, 2), "frames": studio.frames, "rss_mib": round(rss_mib(), 1),
                    "threads": threading.active_count(), "gl_objects": gl, "dpg_items": len(dpg.get_all_items()),
                    "frames_applied": panel.frames_applied,
                })  # fmt: skip
                next_sample = now + sample_s
    finally:
        studio.close()
    secs = time.perf_counter() - t0
    return {
        "minutes": minutes, "seconds": round(secs, 1), "frames": samples[-1]["frames"] if samples else 0,
        "fps": round((samples[-1]["frames"] if samples else 0) / max(secs, 1e-9), 2), "restarts": restarts,
        "jaw_range": [float(min(jaw, default=0.0)), float(max(jaw, default=0.0))], "samples": samples,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=float(os.environ.get("LCA_SOAK_MINUTES", "1")))
    p.add_argument("--sample-s", type=float, default=2.0)
    p.add_argument("--restart-s", type=float, default=20.0)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    result = soak(args.minutes, sample_s=args.sample_s, restart_s=args.restart_s)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
