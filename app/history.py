"""Undo/redo over immutable edit snapshots, with slider drags merged into one step."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class History(Generic[T]):
    """A linear undo stack of snapshots.

    `record(before, key)` is called just before a change is applied. Consecutive records with the same
    `key` within `merge_s` seconds (one slider being dragged) collapse into a single undo step.
    """

    def __init__(self, *, limit: int = 200, merge_s: float = 0.8, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1:
            raise ValueError(f"History limit must be >= 1, got {limit}")
        self._undo: list[T] = []
        self._redo: list[T] = []
        self._limit = limit
        self._merge_s = merge_s
        self._clock = clock
        self._last_key: str | None = None
        self._last_time = -1e9

    def record(self, before: T, key: str | None = None) -> None:
        now = self._clock()
        merged = key is not None and key == self._last_key and now - self._last_time < self._merge_s and self._undo
        if not merged:
            self._undo.append(before)
            if len(self._undo) > self._limit:
                del self._undo[0]
        self._redo.clear()
        self._last_key, self._last_time = key, now

    def undo(self, current: T) -> T | None:
        """The state to go back to, or None when there is nothing to undo."""
        return self._move(self._undo, self._redo, current)

    def redo(self, current: T) -> T | None:
        """The state to go forward to, or None when there is nothing to redo."""
        return self._move(self._redo, self._undo, current)

    def _move(self, source: list[T], other: list[T], current: T) -> T | None:
        """The last snapshot of `source`, `current` kept on `other` to step back over it."""
        if not source:
            return None
        other.append(current)
        self._last_key = None
        return source.pop()

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._last_key = None

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)
