"""Shared by the network tests: wait for a received frame that passes a check."""

from __future__ import annotations

import time


def wait_for_frame(receiver, until, timeout: float = 5.0):
    """The receiver's latest frame once `until(frame.channels)` holds; fails after `timeout` seconds."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        frame = receiver.latest()
        if frame is not None and until(frame.channels):
            return frame
        time.sleep(0.005)
    raise AssertionError(f"no matching frame in {timeout} s; latest {receiver.latest()}")
