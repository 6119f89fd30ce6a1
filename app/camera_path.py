"""Camera keyframes: a timed list of orbit views, sampled by interpolating between neighbouring keys."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace

from app.state import OrbitView


@dataclass(frozen=True)
class CameraKey:
    time: float  # seconds from the start of the path
    view: OrbitView


@dataclass(frozen=True)
class CameraPath:
    keys: tuple[CameraKey, ...] = ()  # sorted by time

    @property
    def duration(self) -> float:
        return self.keys[-1].time if self.keys else 0.0

    def with_key(self, time: float, view: OrbitView) -> CameraPath:
        """A copy with a key at `time` (replacing one within 1 ms)."""
        keys = [k for k in self.keys if abs(k.time - time) > 1e-3]
        keys.append(CameraKey(max(0.0, float(time)), view))
        return CameraPath(tuple(sorted(keys, key=lambda k: k.time)))

    def edited(self, index: int, time: float, view: OrbitView) -> CameraPath:
        """A copy with key #`index` moved to `time` and given `view` (a key already within 1 ms of `time` is
        replaced); the keys stay sorted by time."""
        if not 0 <= index < len(self.keys):
            raise IndexError(f"camera path has {len(self.keys)} keys; no key #{index}")
        if not (time == time and 0.0 <= time < 1e6):  # NaN or negative times would break the ordering
            raise ValueError(f"a key's time must be a number of seconds >= 0, got {time}")
        if not (view.distance > 0 and -90.0 <= view.pitch_deg <= 90.0):
            raise ValueError(
                f"a key's distance must be > 0 and its pitch within +-90 degrees (got {view.distance}, {view.pitch_deg})"
            )
        return self.without(index).with_key(time, view)

    def without(self, index: int) -> CameraPath:
        if not 0 <= index < len(self.keys):
            raise IndexError(f"camera path has {len(self.keys)} keys; no key #{index}")
        return CameraPath(self.keys[:index] + self.keys[index + 1 :])

    def sample(self, time: float) -> OrbitView:
        """The view at `time`: held before the first and after the last key, interpolated in between."""
        if not self.keys:
            raise ValueError("the camera path has no keys; add one with 'Add key' first")
        times = [k.time for k in self.keys]
        i = bisect_right(times, time) - 1
        if i < 0:
            return self.keys[0].view
        if i >= len(self.keys) - 1:
            return self.keys[-1].view
        a, b = self.keys[i], self.keys[i + 1]
        w = (time - a.time) / max(b.time - a.time, 1e-9)
        w = w * w * (3 - 2 * w)  # ease in and out of each key
        va, vb = a.view, b.view
        dyaw = (vb.yaw_deg - va.yaw_deg + 180.0) % 360.0 - 180.0  # the short way round

        def mix(x: float, y: float) -> float:
            return (1 - w) * x + w * y

        return replace(
            va,
            yaw_deg=va.yaw_deg + w * dyaw,
            pitch_deg=mix(va.pitch_deg, vb.pitch_deg),
            distance=mix(va.distance, vb.distance),
            target=tuple(mix(x, y) for x, y in zip(va.target, vb.target, strict=True)),
            fov_y_deg=mix(va.fov_y_deg, vb.fov_y_deg),
        )

    def frames(self, fps: float) -> list[OrbitView]:
        n = max(1, int(round(self.duration * fps)) + 1)
        return [self.sample(i / fps) for i in range(n)]
