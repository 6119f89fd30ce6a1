"""The preview worker's scheduling (no display needed): a slow decode never blocks the caller, the latest
request wins over stale ones, tasks run on the worker's thread with progress and time left."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.preview_worker import FrameRequest, PreviewWorker
from app.state import EditState, OrbitView
from app.tasks import Task, TaskCancelled, format_duration


def request(value: float) -> FrameRequest:
    edit = EditState().with_expression({"jawOpen": value})
    return FrameRequest(avatar=None, avatar_serial=0, edit=edit, view=OrbitView(), detail=None, scale=1.0)


class SlowDecode:
    """Records what it decodes and on which thread; each decode waits until `gate` is set (or `delay_s`)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.gate = threading.Event()
        self.started = threading.Event()
        self.decoded: list[float] = []
        self.threads: set[str] = set()

    def __call__(self, req: FrameRequest):
        self.threads.add(threading.current_thread().name)
        self.started.set()
        if self.delay_s:
            time.sleep(self.delay_s)
        else:
            self.gate.wait(10.0)
        self.decoded.append(req.edit.expression_of("jawOpen"))
        return req


def render(viewport, g, req: FrameRequest) -> np.ndarray:
    return np.full((2, 2, 4), req.edit.expression_of("jawOpen"), np.float32)


def wait_for(predicate, timeout: float = 10.0) -> None:
    end = time.perf_counter() + timeout
    while not predicate():
        assert time.perf_counter() < end, "timed out"
        time.sleep(0.002)


@pytest.fixture
def slow():
    decode = SlowDecode()
    worker = PreviewWorker(lambda: None, decode, render)
    yield worker, decode
    decode.gate.set()
    worker.close()


def test_submit_returns_at_once_while_a_decode_is_running(slow) -> None:
    worker, decode = slow
    worker.submit(request(0.1))
    assert decode.started.wait(5.0)
    t0 = time.perf_counter()
    for i in range(50):
        worker.submit(request(i / 100))
    assert time.perf_counter() - t0 < 0.05, "submitting while a decode runs must not wait for it"
    assert decode.threads == {"preview"}


def test_the_latest_request_wins_and_stale_ones_are_dropped(slow) -> None:
    worker, decode = slow
    worker.submit(request(0.1))
    assert decode.started.wait(5.0)
    for v in (0.2, 0.3, 0.4, 0.97):  # a slider dragged while the first decode runs
        worker.submit(request(v))
    decode.gate.set()
    wait_for(lambda: worker.decoded == 2)
    assert decode.decoded == [0.1, 0.97], "stale slider values were decoded"
    assert worker.dropped == 3
    result = worker.take_result()
    assert result.request.edit.expression_of("jawOpen") == 0.97
    assert float(result.image[0, 0, 0]) == pytest.approx(0.97)
    assert worker.take_result() is None  # the older picture was never queued behind it


def test_results_are_copies_the_worker_does_not_overwrite() -> None:
    buffer = np.zeros((2, 2, 4), np.float32)

    def render_into_buffer(viewport, g, req):
        buffer[:] = req.edit.expression_of("jawOpen")
        return buffer

    worker = PreviewWorker(lambda: None, lambda req: req, render_into_buffer)
    try:
        worker.submit(request(0.5))
        wait_for(lambda: worker.decoded == 1)
        first = worker.take_result()
        worker.submit(request(0.8))
        wait_for(lambda: worker.decoded == 2)
        assert float(first.image[0, 0, 0]) == 0.5
    finally:
        worker.close()


def test_a_failed_decode_is_reported_not_raised() -> None:
    def broken(req):
        raise ValueError("bad pose")

    worker = PreviewWorker(lambda: None, broken, render)
    try:
        worker.submit(request(0.5))
        wait_for(lambda: worker.wait_idle(0.01))
        result = worker.take_result()
        assert result.image is None and "bad pose" in result.error
    finally:
        worker.close()


def test_tasks_run_on_the_worker_thread_before_queued_frames() -> None:
    decode = SlowDecode(delay_s=0.01)
    worker = PreviewWorker(lambda: "the viewport", decode, render)
    seen = {}
    try:

        def work(task: Task, viewport):
            seen["thread"], seen["viewport"] = threading.current_thread().name, viewport
            seen["frames before"] = list(decode.decoded)
            for i in range(4):
                task.report((i + 1) / 4, f"frame {i + 1}/4")
            return "written"

        task = worker.submit_task(Task("turntable"), work)
        worker.submit(request(0.3))
        wait_for(lambda: task.done)
        wait_for(lambda: worker.wait_idle(0.01))
        assert task.result == "written" and task.error is None and task.fraction == 1.0
        assert seen == {"thread": "preview", "viewport": "the viewport", "frames before": []}
        assert decode.decoded == [0.3]
    finally:
        worker.close()


def test_a_cancelled_task_stops_at_its_next_report() -> None:
    worker = PreviewWorker(lambda: None, lambda r: r, render)
    started = threading.Event()
    try:

        def work(task: Task, viewport):
            started.set()
            for i in range(1000):
                task.report(i / 1000)
                time.sleep(0.002)
            return "finished"

        task = worker.submit_task(Task("render"), work)
        assert started.wait(5.0)
        task.cancel()
        wait_for(lambda: task.done)
        assert task.error == "cancelled" and task.result is None
        assert "cancelled" in task.overlay()
    finally:
        worker.close()


def test_task_time_left_follows_the_rate_so_far() -> None:
    now = [100.0]
    task = Task("creating avatar", clock=lambda: now[0])
    assert "waiting" in task.overlay()
    task.start()
    assert "estimating" in task.overlay()
    now[0] = 110.0
    task.report(0.25, "encoding 8 photos")
    assert task.eta_s() == pytest.approx(30.0)
    assert task.overlay() == "creating avatar: 25%, 30 s left (encoding 8 photos)"
    now[0] = 120.0  # counted down between reports
    assert task.overlay() == "creating avatar: 25%, 20 s left (encoding 8 photos)"
    now[0] = 150.0  # one step outlasts the estimate: no made-up time left, the step's own time instead
    assert task.eta_s() is None
    assert task.overlay() == "creating avatar: 25%, this step 40 s so far (encoding 8 photos)"
    task.report(0.75)  # a new report estimates afresh: 50 s for 75%, so 16.7 s left
    assert task.eta_s() == pytest.approx(50.0 / 3)
    task.finish(result=1)
    assert task.overlay() == "creating avatar: done in 50 s"
    task = Task("x")
    task.cancel()
    with pytest.raises(TaskCancelled):
        task.report(0.5)


def test_durations_read_as_people_write_them() -> None:
    assert format_duration(4.4) == "4 s"
    assert format_duration(125) == "2 min 05 s"
    assert format_duration(3780) == "1 h 03 min"


def test_the_gui_loop_paces_itself_only_while_the_worker_renders() -> None:
    """CPU-only machines: while a picture is on its way the GUI frame is stretched to 1 / cap seconds (the
    software-drawn window leaves the cores to the preview); an idle worker or no cap never waits."""
    from types import SimpleNamespace

    from app.studio import Studio

    busy, idle = SimpleNamespace(idle=False), SimpleNamespace(idle=True)
    loaded = SimpleNamespace(avatar=None)  # a session whose avatar is not loading
    start = time.perf_counter()
    studio = SimpleNamespace(gui_fps_while_rendering=20.0, worker=busy, _last=start, session=loaded)
    slept = Studio.pace(studio)  # type: ignore[arg-type]
    assert 0.0 < slept <= 0.05 and time.perf_counter() - start >= 0.045
    studio._last = time.perf_counter() - 0.2  # the frame already took longer than the cap allows
    assert Studio.pace(studio) == 0.0  # type: ignore[arg-type]
    for worker, cap in ((idle, 20.0), (busy, None)):
        studio = SimpleNamespace(gui_fps_while_rendering=cap, worker=worker, _last=time.perf_counter(), session=loaded)
        assert Studio.pace(studio) == 0.0  # type: ignore[arg-type]
