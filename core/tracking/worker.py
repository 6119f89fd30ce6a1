"""The tracking worker: frames from a source -> landmarks -> driving channels, off the GUI thread.

realtime=True (or a live camera): a capture thread reads the source (files paced at their fps) into a slot
that holds only the newest frame, and a tracking thread takes whatever is newest, so a slow frame drops
stale ones instead of building a queue. realtime=False on a file: one thread processes every frame in order,
as fast as it can (tests, offline conversion). Nothing queues without bound.

The worker owns the source from start(): it is closed when the worker stops, fails or reaches the end.
The tracker is the caller's (it can be reused for the next source; call its reset()).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from core.tracking.landmarks import Tracker
from core.tracking.sources import FrameSource, SourceError
from core.tracking.types import DrivingFrame, Landmarks, VideoFrame

log = logging.getLogger(__name__)

Process = Callable[[Landmarks, VideoFrame], DrivingFrame]
FPS_SMOOTHING = 0.1  # weight of the newest frame interval in the smoothed rate


def _error_message(where: str, e: BaseException) -> str:
    """One line for the GUI: SourceErrors already say what to do; anything else names the failing stage."""
    if isinstance(e, SourceError):
        return str(e)
    return f"{where} failed: {type(e).__name__}: {e}"


class TrackingWorker:
    """Runs source -> tracker -> process in background threads; `latest()` gives the newest results."""

    def __init__(self, source: FrameSource, tracker: Tracker, process: Process, *, realtime: bool = True) -> None:
        self.source, self.tracker, self.process, self.realtime = source, tracker, process, realtime
        self.error: str | None = None
        self.finished = False  # the source ended (file or folder) and every frame taken was processed
        self.fps = 0.0  # tracking rate, frames per second, smoothed
        self.frames_processed = 0
        self.frames_dropped = 0  # frames the capture thread replaced before tracking took them
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._slot: VideoFrame | None = None  # newest captured frame not yet tracked
        self._capture_done = False
        self._latest: tuple[VideoFrame | None, Landmarks | None, DrivingFrame | None] = (None, None, None)
        self._threads: list[threading.Thread] = []
        self._t_last: float | None = None
        self._started = False

    # ---- public -------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        if self._started:
            raise RuntimeError("this TrackingWorker was already started: make a new one for a new run")
        self._started = True
        if self.realtime or self.source.live:
            self._threads = [
                threading.Thread(target=self._capture_loop, name="tracking-capture", daemon=True),
                threading.Thread(target=self._track_loop, name="tracking", daemon=True),
            ]
        else:
            self._threads = [threading.Thread(target=self._offline_loop, name="tracking-offline", daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the threads to end and wait up to `timeout` seconds for them."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.perf_counter() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.perf_counter()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            log.warning(
                "tracking threads still busy after %.1f s: %s (they end after their current frame)", timeout, stuck
            )

    def latest(self) -> tuple[VideoFrame | None, Landmarks | None, DrivingFrame | None]:
        """The newest (frame, landmarks, driving frame) triple; Nones before the first frame is tracked."""
        with self._lock:
            return self._latest

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker ends (source finished, error or stop); True if it did within `timeout`."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.perf_counter()))
        return not self.running

    def __enter__(self) -> TrackingWorker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- threads ------------------------------------------------------------------------------------
    def _fail(self, where: str, e: BaseException) -> None:
        log.error("tracking: %s failed", where, exc_info=e)
        if self.error is None:
            self.error = _error_message(where, e)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def _close_source(self) -> None:
        try:
            self.source.close()
        except Exception as e:  # closing must not hide the reason the worker ended
            log.warning("closing %s failed: %s", getattr(self.source, "name", "source"), e)

    def _capture_loop(self) -> None:
        paced = not self.source.live and self.realtime and self.source.fps
        t0: float | None = None
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                if paced:
                    if t0 is None:
                        t0 = frame.t_capture - frame.source_time
                    wait = t0 + frame.source_time - time.perf_counter()
                    if wait > 0 and self._stop.wait(wait):
                        break
                    frame = replace(frame, t_capture=time.perf_counter())  # the moment it is "shown"
                with self._cond:
                    if self._slot is not None:
                        self.frames_dropped += 1
                    self._slot = frame
                    self._cond.notify_all()
        except Exception as e:
            self._fail("reading the source", e)
        finally:
            self._close_source()
            with self._cond:
                self._capture_done = True
                self._cond.notify_all()

    def _track_loop(self) -> None:
        while True:
            with self._cond:
                while self._slot is None and not self._capture_done and not self._stop.is_set():
                    self._cond.wait(0.5)
                if self._stop.is_set():
                    return
                frame, self._slot = self._slot, None
                if frame is None:  # capture ended and nothing is left
                    self.finished = self.error is None
                    return
            if not self._handle(frame):
                return

    def _offline_loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    frame = self.source.read()
                except Exception as e:
                    self._fail("reading the source", e)
                    return
                if frame is None:
                    self.finished = True
                    return
                if not self._handle(frame):
                    return
        finally:
            self._close_source()

    def _handle(self, frame: VideoFrame) -> bool:
        """Track and process one frame; False when the worker must end (an error)."""
        t_start = time.perf_counter()
        try:
            lm = self.tracker.track(frame.image, frame.index)
        except Exception as e:
            self._fail("tracking", e)
            return False
        t_tracked = time.perf_counter()
        try:
            df = self.process(lm, frame)
        except Exception as e:
            self._fail("retargeting", e)
            return False
        t_done = time.perf_counter()
        df = replace(df, frame_index=frame.index, t_capture=frame.t_capture).with_timing(
            capture=(t_start - frame.t_capture) * 1e3,
            tracking=(t_tracked - t_start) * 1e3,
            retarget=(t_done - t_tracked) * 1e3,
        )
        with self._lock:
            if self._t_last is not None:
                dt = t_done - self._t_last
                if dt > 0:
                    rate = 1.0 / dt
                    self.fps = rate if self.fps == 0.0 else (1 - FPS_SMOOTHING) * self.fps + FPS_SMOOTHING * rate
            self._t_last = t_done
            self.frames_processed += 1
            self._latest = (frame, lm, df)
        return True
