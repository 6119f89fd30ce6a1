"""`python main.py drive`: drive an avatar from a webcam, a video, an image folder, a recording or a network stream.

With a display it opens the studio with the Drive panel started on the source. With `--headless` (or no
display) it tracks every frame, renders the driven avatar offscreen (EGL) and writes `--out` (mp4), with a
progress bar; channels can be recorded (`--record-channels`) and sent over OSC / VMC on the way.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

EXIT_SOURCE = 2  # the source could not be opened (missing camera, unreadable file)


def add_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    p.add_argument("--source", default="0", help="camera index, video file, image folder, recording (.npz/.json) "
                   "or network:PORT (ARKit / VMC blendshapes in); default 0 (the first webcam)")  # fmt: skip
    p.add_argument("--avatar", default=None, help="avatar file (.safetensors or .ply); default: the shipped avatar")
    p.add_argument("--example", default=None, help="a gallery avatar by name instead (e.g. 'synthetic person #1')")
    p.add_argument("--record-channels", default=None, help="save the driving channels to this .npz or .json")
    p.add_argument("--out", default=None, help="headless: write the driven avatar to this .mp4")
    p.add_argument("--osc", default=None, metavar="HOST:PORT", help="send the channels as plain OSC (/lca/<channel>)")
    p.add_argument("--vmc", action="store_true", help="send VMC protocol instead of plain OSC (to --osc, "
                   "default 127.0.0.1:39539)")  # fmt: skip
    p.add_argument("--no-body", action="store_true", help="track the face (and hands) only")
    p.add_argument("--no-hands", action="store_true", help="do not track the hands")
    p.add_argument("--mirror", action="store_true", help="the avatar moves like a mirror image of the person")
    p.add_argument("--headless", action="store_true", help="no window: render offscreen to --out")
    p.add_argument("--size", default="640x480", help="render size WxH, default 640x480")
    p.add_argument("--view", default="front", choices=("front", "face", "side"), help="headless camera view")
    p.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--fps", type=float, default=None, help="output video rate (default: the source's, else 30)")

    def run(args: argparse.Namespace) -> int:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            p.error(f"--size must look like 640x480, got {args.size!r}")
        if args.out is not None and not str(args.out).lower().endswith(".mp4"):
            p.error(f"--out must be an .mp4 file, got {args.out!r}")
        if args.record_channels is not None and Path(args.record_channels).suffix.lower() not in (".npz", ".json"):
            p.error(f"--record-channels must be a .npz or .json file, got {args.record_channels!r}")
        if not (16 <= w <= 8192 and 16 <= h <= 8192):
            p.error(f"--size must lie within 16x16 and 8192x8192, got {args.size!r}")
        from core.io import check_output_path

        for path, what in ((args.out, "video"), (args.record_channels, "channel recording")):
            if path is not None:
                check_output_path(path, what)  # before any camera, model or window is opened
        headless = args.headless or not _has_display()
        if not headless:
            if args.out or args.record_channels or args.osc or args.vmc:
                log.info("--out, --record-channels, --osc and --vmc apply to --headless runs; in the studio use "
                         "the Drive panel's record and send controls")  # fmt: skip
            from app.splash import open_window

            screen = open_window((w, h))  # the window first, as `main.py studio` does; the studio builds into it
            from app.studio import start_studio

            return start_studio(avatar=args.avatar, example=args.example, preview=(w, h), frames=args.frames,
                                drive=args.source, window_open=True, screen=screen)  # fmt: skip
        if args.out is None and args.record_channels is None and args.osc is None and not args.vmc:
            log.warning("headless run without --out, --record-channels or --osc: the result goes nowhere")
        return drive_headless(args, (w, h))

    return run


def _has_display() -> bool:
    return sys.platform in ("win32", "darwin") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _open_session(avatar: str | None, example: str | None):
    from app.avatar_source import AvatarLoadError, load_avatar
    from app.gallery import gallery
    from app.session import Session

    if example:
        entries = gallery()
        if example not in entries:
            raise AvatarLoadError(f"no gallery avatar named {example!r}; choose one of {', '.join(entries)}")
        return Session(entries[example]())
    return Session(load_avatar(avatar) if avatar else None)


def source_length(source, frames: int | None) -> int | None:
    """Frames a headless run will drive (for the bar's time left): --frames, capped by the file's or folder's
    length; None for a webcam without --frames."""
    known = getattr(source, "frame_count", None)
    if known is None and hasattr(source, "paths") and not getattr(source, "loop", False):
        known = len(source.paths)
    if known is None or getattr(source, "loop", False):
        return frames
    return known if frames is None else min(known, frames)


def drive_headless(args: argparse.Namespace, size: tuple[int, int]) -> int:
    """Track every frame of the source, drive the avatar, render offscreen; returns the exit code."""
    from tqdm import tqdm

    from app.avatar_source import AvatarLoadError
    from app.driving import apply_channels
    from app.viewport import Viewport, orbit_camera
    from core.tracking.calibration import Calibration
    from core.tracking.drive_control import parse_input_spec
    from core.tracking.filters import ChannelFilter
    from core.tracking.pipeline import ChannelPipeline
    from core.tracking.sources import SourceError, open_source
    from core.tracking.types import GROUPS

    kind, _ = parse_input_spec(args.source)
    if kind in ("network", "recording"):
        return _drive_headless_channels(args, size)
    try:
        source = open_source(args.source)
    except (SourceError, OSError, ValueError) as e:
        log.error("%s", e)
        return EXIT_SOURCE
    try:
        session = _open_session(args.avatar, args.example)
    except AvatarLoadError as e:
        source.close()
        log.error("%s", e)
        return EXIT_SOURCE
    from core.tracking.landmarks import Tracker
    from core.tracking.retarget import Retargeter

    parts = {"face": True, "body": not args.no_body, "hands": not args.no_hands}
    calibration = Calibration()
    calibration.enabled = {g for g in GROUPS if parts[g]}
    calibration.mirror = args.mirror
    pipeline = ChannelPipeline(Retargeter(**parts), ChannelFilter(), calibration)
    tracker = Tracker(**parts)
    outputs = _Outputs(args, fps=args.fps or source.fps or 30.0)
    view = _view(session, args.view)
    viewport = Viewport(*size, backend="egl")
    camera = orbit_camera(view, *size)
    n = 0
    total = source_length(source, args.frames)
    try:
        with tqdm(desc=f"driving from {source.name}", total=total, unit="frame", disable=None) as bar:
            while args.frames is None or n < args.frames:
                try:
                    frame = source.read()
                except SourceError as e:
                    log.error("%s", e)
                    return EXIT_SOURCE
                if frame is None:
                    break
                t0 = time.perf_counter()
                lm = tracker.track(frame.image, frame.index)
                driving = pipeline(lm, frame).with_timing(tracking=1e3 * (time.perf_counter() - t0))
                session.apply_live(apply_channels(session.edit, driving.channels))
                image = viewport.render(session.gaussians(), camera)
                outputs.emit(driving, image)
                n += 1
                bar.update(1)
    except KeyboardInterrupt:
        log.info("stopped after %d frames", n)
    finally:
        outputs.close()
        tracker.close()
        source.close()
        viewport.release()
    if n == 0:
        log.error("%s gave no frames", args.source)
        return EXIT_SOURCE
    return 0


def _drive_headless_channels(args: argparse.Namespace, size: tuple[int, int]) -> int:
    """Headless driving from a recording (every sample once, at its own times) or a network stream (until
    --frames or Ctrl+C)."""
    from tqdm import tqdm

    from app.avatar_source import AvatarLoadError
    from app.driving import apply_channels
    from app.viewport import Viewport, orbit_camera
    from core.tracking.drive_control import DriveController, parse_input_spec
    from core.tracking.types import DrivingFrame

    kind, target = parse_input_spec(args.source)
    controller = recording = None
    if kind == "recording":
        from core.tracking.recording import load_recording

        try:
            recording = load_recording(target)
        except (OSError, ValueError) as e:
            log.error("%s", e)
            return EXIT_SOURCE
        if args.fps is None and len(recording.times) > 1:
            args.fps = round((len(recording.times) - 1) / max(recording.duration, 1e-6), 3)
    else:
        controller = DriveController(mirror=args.mirror)
        if not controller.open(args.source):
            log.error("%s", controller.error)
            return EXIT_SOURCE
    try:
        session = _open_session(args.avatar, args.example)
    except AvatarLoadError as e:
        if controller is not None:
            controller.shutdown()
        log.error("%s", e)
        return EXIT_SOURCE
    outputs = _Outputs(args, fps=args.fps or 30.0)
    viewport = Viewport(*size, backend="egl")
    camera = orbit_camera(_view(session, args.view), *size)
    total = len(recording.times) if recording is not None else args.frames
    if total is not None and args.frames is not None:
        total = min(total, args.frames)
    n = 0
    try:
        with tqdm(desc=f"driving from {args.source}", total=total, unit="frame", disable=None) as bar:
            while total is None or n < total:
                if recording is not None:
                    driving = DrivingFrame(recording.at(float(recording.times[n])), n)
                else:
                    update = controller.poll()
                    if update is None:
                        time.sleep(0.002)
                        continue
                    driving = update.driving
                session.apply_live(apply_channels(session.edit, driving.channels))
                outputs.emit(driving, viewport.render(session.gaussians(), camera))
                n += 1
                bar.update(1)
    except KeyboardInterrupt:
        log.info("stopped after %d frames", n)
    finally:
        if controller is not None:
            controller.shutdown()
        outputs.close()
        viewport.release()
    return 0


def _view(session, name: str):
    from dataclasses import replace

    from app.state import CAMERA_PRESETS

    view = CAMERA_PRESETS[name]
    return replace(view, target=session.avatar.face_target()) if name == "face" else view


class _Outputs:
    """The headless run's outputs: mp4 (every frame once), channel recording, OSC / VMC."""

    def __init__(self, args: argparse.Namespace, *, fps: float) -> None:
        from core.tracking.network import ChannelSender, parse_host_port
        from core.tracking.recording import ChannelRecorder
        from core.tracking.video_out import LiveVideoWriter

        self.video = LiveVideoWriter(args.out, fps=fps, realtime=False) if args.out else None
        self.recorder = ChannelRecorder() if args.record_channels else None
        self.record_path = args.record_channels
        self.sender = None
        if args.osc or args.vmc:
            host, port = parse_host_port(args.osc or "127.0.0.1:39539")
            self.sender = ChannelSender(host, port, protocol="vmc" if args.vmc else "osc")
        self._t0 = time.perf_counter()
        self._fps = fps
        self._n = 0

    def emit(self, driving, image) -> None:
        if self.video is not None:
            self.video.add(image)
        if self.recorder is not None:
            self.recorder.add(driving, self._n / self._fps)  # the source's clock, not the (slower) render's
        if self.sender is not None:
            self.sender.send(driving.channels)
        self._n += 1

    def close(self) -> None:
        if self.video is not None and self.video.close() is not None:
            log.info("wrote %s", Path(self.video.path))
        if self.recorder is not None and self._n:
            log.info("saved driving channels to %s", self.recorder.save(self.record_path))
        if self.sender is not None:
            self.sender.close()
