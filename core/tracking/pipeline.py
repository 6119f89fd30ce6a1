"""Landmarks -> driving channels on the tracking thread: retarget, One-Euro filter, calibration.

The `TrackingWorker` calls a `ChannelPipeline` as its `process` step; network streams pass their channels through
the same filter and calibration (`adjust`). Its `DrivingFrame` carries the named channels that
`core.body.frame.body_arrays_from_channels` turns into a frame's body arrays.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from core.tracking.calibration import Calibration
from core.tracking.filters import ChannelFilter
from core.tracking.types import DrivingFrame, Landmarks, VideoFrame


class ChannelPipeline:
    """Landmarks -> channels -> One-Euro filter -> calibration, as the tracking worker's `process` step.

    `lock` guards the filter and calibration: the GUI changes them while the worker thread uses them.
    """

    def __init__(
        self,
        retarget: Callable[[Landmarks], Mapping[str, float]] | None,
        filt: ChannelFilter,
        calibration: Calibration,
    ) -> None:
        self.retarget = retarget
        self.filter = filt
        self.calibration = calibration
        self.lock = threading.Lock()
        self.last_raw: dict[str, float] = {}  # filtered, before calibration (what "calibrate neutral" takes)

    def __call__(self, lm: Landmarks, frame: VideoFrame) -> DrivingFrame:
        t0 = time.perf_counter()
        channels = dict(self.retarget(lm)) if self.retarget is not None else {}
        out = self.adjust(channels, frame.source_time)
        ms = 1e3 * (time.perf_counter() - t0)
        tracking = float(sum(lm.timings_ms.values()))
        return DrivingFrame(out, frame.index, frame.t_capture, {"tracking": tracking, "retarget": ms})

    def adjust(self, channels: Mapping[str, float], t: float) -> dict[str, float]:
        """Filter and calibrate channels that some input produced at time `t` (seconds)."""
        with self.lock:
            smooth = self.filter(channels, t)
            self.last_raw = dict(smooth)
            return self.calibration(smooth)

    def capture_neutral(self) -> bool:
        """Take the current face as neutral; False when nothing has been tracked yet."""
        with self.lock:
            if not self.last_raw:
                return False
            self.calibration.capture_neutral(self.last_raw)
            return True
