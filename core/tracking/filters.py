"""One-Euro smoothing of driving channels (Casiez, Roussel, Vogel, CHI 2012), one filter per channel.

A low-pass filter whose cutoff rises with the signal's speed: still channels are smoothed hard (no jitter),
fast moves pass with little lag. `min_cutoff` (Hz) sets the smoothing at rest, `beta` how fast the cutoff
rises with speed, `d_cutoff` (Hz) the smoothing of the speed estimate. Parameters are set per group (face,
body, hands) so the panel's sliders act on one group at a time.

Speeds are measured in degree-like units so one `beta` suits every channel of a group: expression
coefficients (range 0..1) count 1 as 20 degrees, metres count 1 cm as 1 degree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from core.tracking.types import GROUPS, Group, channel_group

STALE_AFTER_S = 0.5  # a channel unseen for this long restarts from its next raw value
EXPR_SPEED_SCALE = 20.0  # expression units -> degree-like units (full range ~ 20 degrees)
METRE_SPEED_SCALE = 100.0  # metres -> degree-like units (1 cm ~ 1 degree)


@dataclass(frozen=True)
class OneEuroParams:
    min_cutoff: float = 1.0  # Hz
    beta: float = 0.05  # cutoff Hz per (degree-like unit / s)
    d_cutoff: float = 1.0  # Hz


def smoothing_factor(cutoff_hz: float, dt: float) -> float:
    """Exponential smoothing weight of the new sample for a first-order low-pass at `cutoff_hz`."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


def speed_scale(name: str) -> float:
    if name.startswith("expr."):
        return EXPR_SPEED_SCALE
    if name.startswith("root."):
        return METRE_SPEED_SCALE
    return 1.0


class _OneEuro:
    """State of one channel."""

    __slots__ = ("x", "dx", "t")

    def __init__(self, x: float, t: float) -> None:
        self.x, self.dx, self.t = x, 0.0, t

    def step(self, x: float, t: float, p: OneEuroParams, scale: float) -> float:
        dt = t - self.t
        if dt <= 0.0:  # same instant (or time went back): keep the last estimate
            return self.x
        self.t = t
        dx = (x - self.x) / dt
        self.dx += smoothing_factor(p.d_cutoff, dt) * (dx - self.dx)
        cutoff = p.min_cutoff + p.beta * abs(self.dx) * scale
        self.x += smoothing_factor(cutoff, dt) * (x - self.x)
        return self.x


class ChannelFilter:
    """One-Euro filter per channel, parameters per group; channels may appear and disappear between calls."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        base = self._checked(OneEuroParams(), min_cutoff, beta, d_cutoff)
        self.params: dict[Group, OneEuroParams] = {g: base for g in GROUPS}
        self._state: dict[str, _OneEuro] = {}

    @staticmethod
    def _checked(p: OneEuroParams, min_cutoff: float | None, beta: float | None, d_cutoff: float | None):
        new = replace(
            p,
            min_cutoff=p.min_cutoff if min_cutoff is None else float(min_cutoff),
            beta=p.beta if beta is None else float(beta),
            d_cutoff=p.d_cutoff if d_cutoff is None else float(d_cutoff),
        )
        if not (new.min_cutoff > 0 and new.d_cutoff > 0 and new.beta >= 0):
            raise ValueError(f"One-Euro parameters {new}: min_cutoff and d_cutoff must be > 0 Hz, beta >= 0")
        return new

    def set_params(
        self,
        group: str | None = None,
        *,
        min_cutoff: float | None = None,
        beta: float | None = None,
        d_cutoff: float | None = None,
    ) -> None:
        """Change the parameters of one group (or all when group is None); takes effect on the next call."""
        if group is not None and group not in GROUPS:
            raise ValueError(f"unknown channel group {group!r}: use one of {GROUPS} or None for all")
        for g in GROUPS if group is None else (group,):
            self.params[g] = self._checked(self.params[g], min_cutoff, beta, d_cutoff)

    def __call__(self, channels: Mapping[str, float], t: float) -> dict[str, float]:
        """Smoothed copies of `channels` at time `t` (seconds, e.g. the frame's capture time)."""
        out: dict[str, float] = {}
        for name, value in channels.items():
            x = float(value)
            st = self._state.get(name)
            if st is None or not math.isfinite(st.x) or t - st.t > STALE_AFTER_S or not math.isfinite(x):
                if math.isfinite(x):
                    self._state[name] = _OneEuro(x, t)
                out[name] = x
                continue
            out[name] = st.step(x, t, self.params[channel_group(name)], speed_scale(name))
        for name in [n for n, st in self._state.items() if t - st.t > STALE_AFTER_S]:
            del self._state[name]  # bounded state: channels that went away are forgotten
        return out

    def reset(self) -> None:
        """Forget every channel's history (the next values pass through unsmoothed)."""
        self._state.clear()
