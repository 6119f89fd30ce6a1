"""The preview worker: one thread that decodes (drives the avatar) and renders the preview off the GUI thread.

The GUI thread only submits requests and shows finished pictures, so a slow decode never delays a click. One
request slot: a newer request replaces one not yet started (the latest slider value wins; stale frames are
dropped, never queued). Everything that uses the avatar's model or the preview's OpenGL context runs here, on
this one thread: frame decodes, exports and avatar loading (`submit_task`), so no two threads drive one model and
the GL context is only ever current on the thread that created it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.state import EditState, OrbitView
from app.tasks import Task, TaskCancelled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameRequest:
    """What one preview picture shows; `key` identifies the picture, equal keys need no new frame."""

    avatar: Any  # StudioAvatar
    avatar_serial: int
    edit: EditState
    view: OrbitView
    detail: int | None  # Gaussians per anchor (None: all)
    scale: float  # render resolution relative to the preview (< 1 while a control is dragged)

    @property
    def key(self) -> tuple:
        return (self.avatar_serial, self.edit, self.view, self.detail, self.scale)


@dataclass(frozen=True)
class FrameResult:
    request: FrameRequest
    image: np.ndarray | None  # [H, W, 3] float32, the receiver's until it `recycle`s it; None when decoding failed
    num: int  # Gaussians drawn
    decode_ms: float
    render_ms: float
    finished: float  # perf_counter when the picture was ready
    error: str | None = None


# decode(request) -> Gaussians; render(viewport, gaussians, request) -> [H, W, 3] image (a view is fine)
Decode = Callable[[FrameRequest], Any]
Render = Callable[[Any, Any, FrameRequest], np.ndarray]


class PreviewWorker:
    """Owns the preview thread, its viewport (created on the thread) and the request slot.

    `make_viewport` is called on the worker thread (OpenGL contexts belong to the thread that makes them);
    it may return None for a worker without rendering (tests of the scheduling).
    """

    def __init__(self, make_viewport: Callable[[], Any], decode: Decode, render: Render, *, name: str = "preview"):
        self._decode, self._render = decode, render
        self._cond = threading.Condition()
        self._pending: FrameRequest | None = None
        self._tasks: deque[tuple[Task, Callable[[Task, Any], Any]]] = deque()
        self._results: deque[FrameResult] = deque(maxlen=1)  # only the newest finished picture is kept
        self._stop = False
        self._busy = False
        self.submitted = 0  # requests handed in
        self.dropped = 0  # requests replaced before they started
        self.decoded = 0  # requests turned into pictures
        self._done_times: deque[float] = deque(maxlen=64)
        self.viewport: Any = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(make_viewport,), daemon=True, name=name)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            raise RuntimeError(f"the preview worker could not start: {self._start_error}") from self._start_error

    # GUI thread -----------------------------------------------------------------------------
    def submit(self, request: FrameRequest) -> None:
        """Ask for a picture; replaces a request that has not started yet."""
        with self._cond:
            if self._pending is not None:
                self.dropped += 1
            self._pending = request
            self.submitted += 1
            self._cond.notify()

    def submit_task(self, task: Task, fn: Callable[[Task, Any], Any]) -> Task:
        """Run `fn(task, viewport)` on the worker (before further frames); its result lands in `task.result`."""
        with self._cond:
            self._tasks.append((task, fn))
            self._cond.notify()
        return task

    def take_result(self) -> FrameResult | None:
        """The newest finished picture not yet taken (older unseen ones are skipped), else None."""
        with self._cond:
            return self._results.pop() if self._results else None

    @property
    def idle(self) -> bool:
        """Nothing pending, running or waiting to be taken."""
        with self._cond:
            return self._pending is None and not self._tasks and not self._busy and not self._results

    def rate(self, window_s: float = 2.0) -> float:
        """Pictures finished per second over the last `window_s` seconds."""
        now = time.perf_counter()
        recent = [t for t in list(self._done_times) if now - t <= window_s]
        return len(recent) / window_s

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until nothing is pending or running (tests, scripted screenshots); False on timeout."""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            with self._cond:
                if self._pending is None and not self._tasks and not self._busy:
                    return True
            time.sleep(0.005)
        return False

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            for task, _ in self._tasks:
                task.cancel()
            self._cond.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the preview worker did not stop within %.0f s (a decode is still running)", timeout)

    # Worker thread --------------------------------------------------------------------------
    def _main(self, make_viewport: Callable[[], Any]) -> None:
        try:
            self.viewport = make_viewport()
        except Exception as e:  # noqa: BLE001 - reported to the GUI thread, which raises it
            self._start_error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                with self._cond:
                    while not self._stop and self._pending is None and not self._tasks:
                        self._cond.wait()
                    if self._stop:
                        return
                    if self._tasks:
                        job, request = self._tasks.popleft(), None
                    else:
                        job, request, self._pending = None, self._pending, None
                    self._busy = True
                try:
                    if job is not None:
                        self._run_task(*job)
                    else:
                        self._frame(request)
                finally:
                    with self._cond:
                        self._busy = False
        finally:
            if self.viewport is not None and hasattr(self.viewport, "release"):
                self.viewport.release()

    def _frame(self, request: FrameRequest) -> None:
        t0 = time.perf_counter()
        try:
            g = self._decode(request)
        except (ValueError, RuntimeError, KeyError) as e:
            self._publish(FrameResult(request, None, 0, 1e3 * (time.perf_counter() - t0), 0.0, time.perf_counter(),
                                      error=f"could not decode the avatar: {e}"))  # fmt: skip
            return
        t1 = time.perf_counter()
        img = self._render(self.viewport, g, request)
        # A viewport that lends its images (`Viewport(lend_images=True)`) never draws over one before it comes back
        # through `recycle`, so the picture is handed over as it is; others reuse their buffer: copy it.
        lends = getattr(self.viewport, "lends_images", False)
        image = img if img is None or lends else np.array(img, dtype=np.float32, copy=True)
        t2 = time.perf_counter()
        self._done_times.append(t2)
        num = int(getattr(g, "num", 0))
        self._publish(FrameResult(request, image, num, 1e3 * (t1 - t0), 1e3 * (t2 - t1), t2))
        self.decoded += 1

    def _publish(self, result: FrameResult) -> None:
        with self._cond:
            if self._results:  # the older picture was never taken: its image can be drawn over
                self.recycle(self._results[0].image)
            self._results.append(result)

    def recycle(self, image: np.ndarray | None) -> None:
        """Give a picture's image back to the viewport once nobody shows it any more (any thread)."""
        if image is not None and hasattr(self.viewport, "recycle"):
            self.viewport.recycle(image)

    def _run_task(self, task: Task, fn: Callable[[Task, Any], Any]) -> None:
        if task.cancelled:
            task.finish(error="cancelled")
            return
        task.start()
        try:
            task.finish(result=fn(task, self.viewport))
        except TaskCancelled:
            task.finish(error="cancelled")
        except Exception as e:  # noqa: BLE001 - a failed export or load must not stop the preview; shown in the GUI
            log.debug("task %s failed", task.name, exc_info=True)
            task.finish(error=f"{type(e).__name__}: {e}")
