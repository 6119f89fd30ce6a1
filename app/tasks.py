"""Long studio actions (create, personalise, export, render, open) as tasks with progress and time left.

A `Task` is written by the thread doing the work (`report`, `finish`) and read by the GUI thread each frame
(`fraction`, `overlay()`); plain attribute writes, so no lock is needed for a progress bar.
"""

from __future__ import annotations

import time


class TaskCancelled(Exception):
    """Raised inside a task's work by `Task.report` once the user asked to cancel it."""


def format_duration(seconds: float) -> str:
    """'4 s', '2 min 05 s', '1 h 03 min' (for 'time left')."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Task:
    """One long action: name, fraction done, a status text, and the time left estimated from the rate so far."""

    def __init__(self, name: str, *, clock=time.perf_counter) -> None:
        self.name = name
        self.fraction = 0.0
        self.text = "waiting..."
        self.result = None
        self.error: str | None = None
        self.done = False
        self.cancelled = False
        self.started: float | None = None
        self.ended: float | None = None
        self._reported: tuple[float, float] | None = None  # (when, the estimate then) of the last progress
        self._clock = clock

    def start(self) -> None:
        self.started = self._clock()
        self.text = "started"

    def report(self, fraction: float, text: str | None = None) -> None:
        """Progress from the working thread; raises TaskCancelled when the user cancelled."""
        if self.cancelled:
            raise TaskCancelled(self.name)
        if self.started is None:
            self.start()
        self.fraction = min(1.0, max(0.0, float(fraction)))
        if text is not None:
            self.text = text
        if self.fraction > 0.0:
            now = self._clock()
            self._reported = (now, (now - self.started) * (1.0 - self.fraction) / self.fraction)

    def cancel(self) -> None:
        self.cancelled = True

    def finish(self, *, result=None, error: str | None = None) -> None:
        self.result, self.error = result, error
        if error is None:
            self.fraction = 1.0
        self.ended = self._clock()
        self.done = True

    @property
    def elapsed_s(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended if self.ended is not None else self._clock()) - self.started

    def eta_s(self) -> float | None:
        """Seconds left at the average rate up to the last progress, counted down since; None until there is
        progress to measure, and None again once a step outlasts that estimate (one long step, e.g. a decode,
        after quick ones: the rate so far says nothing about it)."""
        if self._reported is None or self.fraction <= 0.0 or self.done:
            return None
        when, estimate = self._reported
        left = estimate - (self._clock() - when)
        return left if left > 0.0 else None

    def step_s(self) -> float:
        """Seconds since the last progress report (or the start)."""
        since = self._reported[0] if self._reported is not None else self.started
        return 0.0 if since is None else self._clock() - since

    def overlay(self) -> str:
        """The progress bar's text: 'turntable: 40%, 12 s left' / 'done in 8 s' / 'failed: ...'."""
        if self.done:
            if self.error == "cancelled":
                return f"{self.name}: cancelled"
            if self.error is not None:
                return f"{self.name} failed: see the console"
            return f"{self.name}: done in {format_duration(self.elapsed_s)}"
        if self.started is None:
            return f"{self.name}: waiting..."
        eta = self.eta_s()
        if eta is not None:
            left = f", {format_duration(eta)} left"
        elif self._reported is not None:  # the estimate ran out: say how long this step has taken instead
            left = f", this step {format_duration(self.step_s())} so far"
        else:
            left = ", estimating time left..."
        detail = f" ({self.text})" if self.text and self.text != "started" else ""
        return f"{self.name}: {int(100 * self.fraction)}%{left}{detail}"
