"""Expression, pose and motion-clip presets read from assets/presets/ (YAML)."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import yaml

from app.state import PoseEdit

PRESET_DIR = Path(__file__).resolve().parent.parent / "assets" / "presets"
Rotation = tuple[float, float, float]


def _read(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"preset file {path} is missing; reinstall the studio's assets")
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of preset name -> values, got {type(data).__name__}")
    return data


def _rotation(path: Path, where: str, value) -> Rotation:
    if not (isinstance(value, list | tuple) and len(value) == 3):
        raise ValueError(f"{path}: {where} must be [x, y, z] degrees, got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def load_expression_presets(path: Path = PRESET_DIR / "expressions.yaml") -> dict[str, dict[str, float]]:
    return {name: {k: float(v) for k, v in (vals or {}).items()} for name, vals in _read(path).items()}


def load_pose_presets(path: Path = PRESET_DIR / "poses.yaml") -> dict[str, dict[str, Rotation]]:
    return {
        name: {j: _rotation(path, f"{name}.{j}", r) for j, r in (vals or {}).items()}
        for name, vals in _read(path).items()
    }


def pose_from_rotations(rotations: dict[str, Rotation], joint_names: tuple[str, ...]) -> PoseEdit:
    """A pose with the given joints set; joints the avatar does not have are dropped."""
    known = set(joint_names)
    return PoseEdit(rotations=tuple((j, r) for j, r in rotations.items() if j in known and any(r)))


@dataclass(frozen=True)
class MotionClip:
    """A looping keyframed clip: key times (seconds, ascending) and the joint rotations at each."""

    name: str
    duration: float
    times: tuple[float, ...]
    keys: tuple[dict[str, Rotation], ...]

    def sample(self, t: float) -> dict[str, Rotation]:
        """Joint rotations at time `t` (wrapped into the loop), linearly interpolated between keys."""
        t = t % self.duration
        i = bisect_right(self.times, t) - 1
        j = (i + 1) % len(self.times)
        t0 = self.times[i]
        t1 = self.times[j] if j > i else self.duration + self.times[0]
        w = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        a, b = self.keys[i], self.keys[j]
        out = {}
        for name in set(a) | set(b):
            ra, rb = a.get(name, (0.0, 0.0, 0.0)), b.get(name, (0.0, 0.0, 0.0))
            out[name] = tuple((1 - w) * x + w * y for x, y in zip(ra, rb, strict=True))
        return out


def load_clips(path: Path = PRESET_DIR / "clips.yaml") -> dict[str, MotionClip]:
    clips = {}
    for name, d in _read(path).items():
        keys = d.get("keys") or {}
        if not keys:
            raise ValueError(f"{path}: clip {name!r} has no keys")
        times = sorted(float(t) for t in keys)
        duration = float(d.get("duration", times[-1]))
        if duration <= times[-1]:
            raise ValueError(f"{path}: clip {name!r} duration {duration} must exceed its last key time {times[-1]}")
        by_time = {float(t): v for t, v in keys.items()}
        frames = tuple({j: _rotation(path, f"{name}@{t}.{j}", r) for j, r in (by_time[t] or {}).items()} for t in times)
        clips[name] = MotionClip(name, duration, tuple(times), frames)
    return clips


def body_model_clips(joint_names: tuple[str, ...], *, seconds: float = 4.0, fps: float = 15.0) -> dict[str, MotionClip]:
    """Clips generated from the body model's natural-motion generator (`core.data.motion`), one per motion.

    Empty when the generator is not installed or knows none of the avatar's joints.
    """
    try:
        import numpy as np

        from core.data.motion import MOTIONS, generate_motion
    except ImportError:
        return {}
    clips = {}
    frames = max(2, int(seconds * fps))
    for k, motion in enumerate(MOTIONS):
        rot, _, _ = generate_motion(np.random.default_rng(1000 + k), joint_names, frames, motion=motion, fps=fps)
        deg = np.degrees(rot)  # [F, J, 3]
        moving = [j for j in range(len(joint_names)) if np.abs(deg[:, j]).max() > 1e-6]
        if not moving:
            continue
        keys = tuple({joint_names[j]: tuple(float(v) for v in deg[f, j]) for j in moving} for f in range(frames))
        times = tuple(f / fps for f in range(frames))
        clips[f"body: {motion}"] = MotionClip(f"body: {motion}", frames / fps, times, keys)
    return clips
