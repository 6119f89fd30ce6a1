"""Live driving without the GUI: an input (tracked video, network stream or recording) -> smoothed, calibrated
channels -> outputs (channel recording, OSC/VMC, mp4 of the preview, virtual camera).

The Drive panel and `python main.py drive` both use `DriveController`; the panel only holds widgets and calls it.
Tracking, retargeting, filtering and calibration run on the `TrackingWorker`'s thread (`core.tracking.pipeline`);
`poll()` on the frame loop takes the newest result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.tracking.pipeline import ChannelPipeline
from core.tracking.types import GROUPS, DrivingFrame, Landmarks, VideoFrame

log = logging.getLogger(__name__)

RECORDING_SUFFIXES = (".json", ".npz")
NETWORK_PREFIXES = ("network", "net:", "osc:", "vmc:")


@dataclass(frozen=True)
class DriveUpdate:
    """The newest result of the input, taken once by `DriveController.poll`."""

    driving: DrivingFrame
    frame: VideoFrame | None = None  # None for network streams and recordings
    landmarks: Landmarks | None = None


class DriveInput(Protocol):
    name: str
    error: str | None
    finished: bool
    fps: float

    def latest(self) -> tuple[VideoFrame | None, Landmarks | None, DrivingFrame | None]: ...

    def stop(self) -> None: ...


class TrackingInput:
    """A frame source tracked and retargeted on the TrackingWorker's thread."""

    def __init__(self, source, tracker, pipeline: ChannelPipeline, *, realtime: bool = True) -> None:
        from core.tracking.worker import TrackingWorker

        self.name = source.name
        self._tracker = tracker
        self.worker = TrackingWorker(source, tracker, pipeline, realtime=realtime)
        self.worker.start()

    @property
    def error(self) -> str | None:
        return self.worker.error

    @property
    def finished(self) -> bool:
        return self.worker.finished

    @property
    def fps(self) -> float:
        return self.worker.fps

    def latest(self):
        return self.worker.latest()

    def stop(self) -> None:
        self.worker.stop()
        self._tracker.close()


class NetworkInput:
    """An ARKit / VMC blendshape stream (core.tracking.network) through the same filter and calibration."""

    def __init__(self, port: int, pipeline: ChannelPipeline, host: str = "127.0.0.1") -> None:
        from core.tracking.network import BlendshapeReceiver

        self.receiver = BlendshapeReceiver(host, port)
        self.name = f"network :{self.receiver.port}"
        self.pipeline = pipeline
        self.error: str | None = None
        self.finished = False
        self._seen = -1
        self._out: DrivingFrame | None = None

    @property
    def fps(self) -> float:
        return self.receiver.fps

    def latest(self):
        frame = self.receiver.latest()
        if frame is not None and frame.frame_index != self._seen:
            self._seen = frame.frame_index
            t0 = time.perf_counter()
            channels = self.pipeline.adjust(frame.channels, frame.t_capture)
            self._out = frame.with_channels(channels).with_timing(retarget=1e3 * (time.perf_counter() - t0))
        return None, None, self._out

    def stop(self) -> None:
        self.receiver.close()


class ReplayInput:
    """A channel recording played back on the wall clock (looping when asked)."""

    def __init__(self, path: str | Path, *, loop: bool = True, clock: Callable[[], float] = time.perf_counter):
        from core.tracking.recording import load_recording

        self.recording = load_recording(path)
        self.name = f"recording {Path(path).name}"
        self.loop = loop
        self.error: str | None = None
        self.finished = False
        self._clock = clock
        self._t0 = clock()
        self._index = 0
        times = self.recording.times
        self.duration = float(times[-1] - times[0]) if len(times) else 0.0
        self.fps = (len(times) - 1) / self.duration if self.duration > 0 else 0.0

    def latest(self):
        now = self._clock()
        t = now - self._t0
        if t > self.duration:
            if not self.loop:
                self.finished = True
                t = self.duration
            elif self.duration > 0:
                t %= self.duration
        channels = self.recording.at(float(self.recording.times[0]) + t) if len(self.recording.times) else {}
        self._index += 1
        return None, None, DrivingFrame(channels, self._index, now, {"capture": 0.0})

    def stop(self) -> None:
        self.finished = True


def parse_input_spec(spec: str | int) -> tuple[str, str | int]:
    """What a source string names: ('camera', index) | ('network', port) | ('recording', path) | ('video', path)."""
    if isinstance(spec, int) or str(spec).strip().isdigit():
        return "camera", int(spec)
    text = str(spec).strip()
    if text.lower().startswith(NETWORK_PREFIXES):
        port = text.split(":", 1)[1] if ":" in text else "39539"
        if not port.isdigit():
            raise ValueError(f"a network source looks like 'network:39539' (a port number), got {text!r}")
        return "network", int(port)
    if Path(text).suffix.lower() in RECORDING_SUFFIXES:
        return "recording", text
    return "video", text


class DriveController:
    """One live-driving session: input, filter, calibration and outputs; every method is called from one thread."""

    def __init__(
        self,
        *,
        face: bool = True,
        body: bool = True,
        hands: bool = True,
        mirror: bool = False,
        listen_host: str = "127.0.0.1",
    ) -> None:
        """`listen_host`: where network inputs listen ("0.0.0.0" lets other machines, e.g. a phone, send)."""
        from core.tracking.calibration import Calibration
        from core.tracking.filters import ChannelFilter

        self.track_parts = {"face": face, "body": body, "hands": hands}
        self.listen_host = listen_host
        self.calibration = Calibration()
        self.calibration.enabled = {g for g in GROUPS if self.track_parts[g]}
        self.calibration.mirror = mirror
        self.filter = ChannelFilter()
        self._retargeter = None
        self.pipeline = ChannelPipeline(None, self.filter, self.calibration)
        self.input: DriveInput | None = None
        self.error: str | None = None  # why the last open failed or the input stopped
        self._seen: tuple[int, float] | None = None
        self.recorder = None
        self.sender = None
        self.video = None
        self.virtual_camera = None
        self.channel_names: list[str] = []  # every channel seen, in order of appearance
        self._known: set[str] = set()

    # Input -------------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.input is not None

    def open(self, spec: str | int, *, realtime: bool = True, loop: bool = False) -> bool:
        """Start driving from `spec` (see `parse_input_spec`); False with `error` set when it cannot be opened."""
        from core.tracking.sources import SourceError

        self.close()
        self.error = None
        self.filter.reset()
        try:
            kind, target = parse_input_spec(spec)
            if kind == "network":
                self.input = NetworkInput(int(target), self.pipeline, host=self.listen_host)
            elif kind == "recording":
                self.input = ReplayInput(target, loop=loop)
            else:
                self.input = self._tracking_input(target, realtime=realtime, loop=loop)
        except (SourceError, OSError, ValueError) as e:
            self.error = str(e)
            log.warning("could not open the driving source %r: %s", spec, e)
            return False
        self._seen = None
        log.info("driving from %s", self.input.name)
        return True

    def _tracking_input(self, spec: str | int, *, realtime: bool, loop: bool) -> TrackingInput:
        from core.tracking.landmarks import Tracker
        from core.tracking.sources import open_source

        source = open_source(spec, loop=loop)
        try:
            if self._retargeter is None:
                from core.tracking.retarget import Retargeter

                self._retargeter = Retargeter(**self.track_parts)
            self.pipeline.retarget = self._retargeter
            tracker = Tracker(**self.track_parts)
        except Exception:
            source.close()
            raise
        return TrackingInput(source, tracker, self.pipeline, realtime=realtime)

    def close(self) -> None:
        """Stop the input (outputs stay open)."""
        if self.input is not None:
            self.input.stop()
            self.input = None

    def poll(self) -> DriveUpdate | None:
        """The newest result if it is new since the last poll; records and sends its channels."""
        if self.input is None:
            return None
        if self.input.error:
            self.error = self.input.error
            log.warning("driving stopped: %s", self.error)
            self.close()
            return None
        frame, lm, driving = self.input.latest()
        if driving is None:
            return None
        key = (driving.frame_index, driving.t_capture)
        if key == self._seen:
            return None
        self._seen = key
        for name in driving.channels:
            if name not in self._known:
                self._known.add(name)
                self.channel_names.append(name)
        if self.recorder is not None:
            self.recorder.add(driving, time.perf_counter())
        if self.sender is not None:
            self.sender.send(driving.channels)
        return DriveUpdate(driving, frame, lm)

    @property
    def fps(self) -> float:
        """The input's rate (tracked frames or received updates per second)."""
        return self.input.fps if self.input is not None else 0.0

    @property
    def finished(self) -> bool:
        return self.input is not None and self.input.finished

    # Settings ----------------------------------------------------------------------------------------------
    def set_group(self, group: str, on: bool) -> None:
        """Switch a group (face, body, hands) on or off; a retargeter that can also skips its work."""
        with self.pipeline.lock:
            (self.calibration.enabled.add if on else self.calibration.enabled.discard)(group)
            if self._retargeter is not None and isinstance(getattr(self._retargeter, group, None), bool):
                setattr(self._retargeter, group, bool(on))

    def set_mirror(self, on: bool) -> None:
        with self.pipeline.lock:
            self.calibration.mirror = bool(on)

    def set_smoothing(self, group: str, *, min_cutoff: float | None = None, beta: float | None = None) -> None:
        with self.pipeline.lock:
            self.filter.set_params(group, min_cutoff=min_cutoff, beta=beta)

    def set_adjust(self, channel: str, *, gain: float, offset: float, invert: bool) -> None:
        from core.tracking.calibration import ChannelAdjust

        with self.pipeline.lock:
            self.calibration.adjust[channel] = ChannelAdjust(gain=gain, offset=offset, invert=invert)

    def adjust_of(self, channel: str):
        from core.tracking.calibration import ChannelAdjust

        return self.calibration.adjust.get(channel, ChannelAdjust())

    def calibrate_neutral(self) -> bool:
        return self.pipeline.capture_neutral()

    # Outputs -----------------------------------------------------------------------------------------------
    def start_recording(self) -> None:
        from core.tracking.recording import ChannelRecorder

        self.recorder = ChannelRecorder()

    def stop_recording(self, path: str | Path) -> Path:
        """Write what was recorded (.json or .npz) and stop recording."""
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            raise ValueError("nothing is being recorded: start recording first")
        return recorder.save(path)

    def start_sending(self, host: str, port: int, protocol: str = "vmc") -> None:
        from core.tracking.network import ChannelSender

        self.stop_sending()
        self.sender = ChannelSender(host, port, protocol=protocol)

    def stop_sending(self) -> None:
        if self.sender is not None:
            self.sender.close()
            self.sender = None

    def start_video(self, path: str | Path, fps: float = 30.0, *, realtime: bool = True) -> None:
        from core.tracking.video_out import LiveVideoWriter

        self.stop_video()
        self.video = LiveVideoWriter(path, fps=fps, realtime=realtime)

    def stop_video(self) -> Path | None:
        video, self.video = self.video, None
        return video.close() if video is not None else None

    def start_virtual_camera(self, width: int, height: int) -> None:
        """Raises core.tracking.virtualcam.VirtualCameraUnavailable (with what to install) when there is none."""
        from core.tracking.virtualcam import open_virtual_camera

        self.stop_virtual_camera()
        self.virtual_camera = open_virtual_camera(width, height)

    def stop_virtual_camera(self) -> None:
        if self.virtual_camera is not None:
            self.virtual_camera.close()
            self.virtual_camera = None

    def emit_preview(self, image, t: float) -> None:
        """Hand a new preview image ([H, W, 3|4], float [0, 1] or uint8) to the video file and virtual camera."""
        if self.video is not None:
            self.video.add(image, t)
        if self.virtual_camera is not None:
            self.virtual_camera.send(image)

    def shutdown(self) -> None:
        """Stop everything and finish open files."""
        self.close()
        self.stop_sending()
        self.stop_video()
        self.stop_virtual_camera()
