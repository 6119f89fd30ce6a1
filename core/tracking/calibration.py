"""Calibration of driving channels: neutral face, per-channel gain / offset / invert, groups, mirror.

Applied to the raw retargeted channels, in this order:
1. neutral: expression channels are rescaled so the neutral value maps to 0 and 1 stays 1; the face group's
   rotations (head, neck, eyes) are taken relative to the neutral orientation, gaze has the neutral subtracted
   (the head as held at calibration counts as "forward"). Body and hand rotations are absolute (from the rest
   pose) and are left alone.
2. mirror (for a mirrored camera image): Left <-> Right, .L <-> .R and the signs a reflection x -> -x implies.
3. disabled groups are dropped.
4. per-channel invert, gain and offset (on the avatar's channel names, after mirroring); expressions clamp to [0, 1].
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.io import FileFormatError, atomic_write
from core.tracking.types import GROUPS, Group, channel_group, joint_of

CALIBRATION_VERSION = 1
MAX_CALIBRATION_BYTES = 1 << 20  # a calibration of every channel is a few tens of KiB
MAX_CALIBRATION_VALUE = 1e4  # neutral values, gains and offsets (degrees, metres or coefficients)
_NEUTRAL_EXPR_MAX = 0.95  # a "neutral" expression value above this is ignored (nothing left to rescale into)


@dataclass
class ChannelAdjust:
    gain: float = 1.0
    offset: float = 0.0
    invert: bool = False

    def apply(self, name: str, v: float) -> float:
        if self.invert:
            v = 1.0 - v if name.startswith("expr.") else -v
        return v * self.gain + self.offset


# ---- mirror -------------------------------------------------------------------------------------------
_SIDE_SWAP = {"Left": "Right", "Right": "Left", ".L": ".R", ".R": ".L"}
_SIDE_RE = re.compile(r"Left|Right|\.L(?=\.|$)|\.R(?=\.|$)")


def mirror_name(name: str) -> str:
    """'expr.eyeBlinkLeft' -> 'expr.eyeBlinkRight', 'pose.upperarm01.L.x' -> 'pose.upperarm01.R.x'."""
    return _SIDE_RE.sub(lambda m: _SIDE_SWAP[m.group(0)], name)


def mirror_sign(name: str) -> float:
    """Sign a channel takes under the world reflection x -> -x.

    A rotation R becomes M R M with M = diag(-1, 1, 1); its axis-angle vector (a pseudovector) becomes
    det(M) M w = (w_x, -w_y, -w_z). Gaze yaw (about y) flips, pitch (about x) stays; root.x flips.
    """
    if name.startswith("pose.") and name[-2:] in (".y", ".z"):
        return -1.0
    if name in ("gaze.yaw", "root.x"):
        return -1.0
    return 1.0


def mirror_channels(channels: Mapping[str, float]) -> dict[str, float]:
    """The channels of the mirror-image motion (see mirror_sign)."""
    return {mirror_name(k): mirror_sign(k) * float(v) for k, v in channels.items()}


# ---- rotations (neutral of the face joints) -----------------------------------------------------------
def axis_angle_to_matrix(w_deg: np.ndarray) -> np.ndarray:
    """[3] axis-angle in degrees -> [3, 3] rotation matrix (Rodrigues)."""
    w = np.deg2rad(np.asarray(w_deg, np.float64))
    theta = float(np.linalg.norm(w))
    if theta < 1e-12:
        return np.eye(3)
    k = w / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * K + (1 - np.cos(theta)) * (K @ K)


def matrix_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """[3, 3] rotation matrix -> [3] axis-angle in degrees."""
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    theta = float(np.arccos(cos))
    if theta < 1e-9:
        return np.zeros(3)
    if np.pi - theta < 1e-6:  # half turn: axis from the symmetric part
        axis = np.sqrt(np.clip((np.diag(R) + 1.0) / 2.0, 0.0, None))
        i = int(np.argmax(axis))
        axis = (R[:, i] + np.eye(3)[i]) / (2 * axis[i]) if axis[i] > 0 else axis
        return np.rad2deg(theta * axis / np.linalg.norm(axis))
    v = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return np.rad2deg(theta * v / (2.0 * np.sin(theta)))


def relative_rotation(w_deg: np.ndarray, neutral_deg: np.ndarray) -> np.ndarray:
    """The rotation from the neutral orientation to the current one, about world axes: R R_n^-1, in degrees."""
    return matrix_to_axis_angle(axis_angle_to_matrix(w_deg) @ axis_angle_to_matrix(neutral_deg).T)


def _is_face_rotation(name: str) -> bool:
    return name.startswith("pose.") and channel_group(name) == "face"


# ---- calibration ----------------------------------------------------------------------------------------
@dataclass
class Calibration:
    """See the module docstring. Mutable: the panel edits it live; call it on each frame's channels."""

    neutral: dict[str, float] = field(default_factory=dict)
    adjust: dict[str, ChannelAdjust] = field(default_factory=dict)
    enabled: set[str] = field(default_factory=lambda: set(GROUPS))
    mirror: bool = False

    def capture_neutral(self, channels: Mapping[str, float]) -> None:
        """Remember the raw channels of a neutral face (expressions, gaze, head / neck / eye rotations)."""
        self.neutral = {
            k: float(v)
            for k, v in channels.items()
            if k.startswith(("expr.", "gaze.")) or _is_face_rotation(k)
            if np.isfinite(v)
        }

    def clear_neutral(self) -> None:
        self.neutral = {}

    def set_enabled(self, group: Group, on: bool) -> None:
        if group not in GROUPS:
            raise ValueError(f"unknown channel group {group!r}: use one of {GROUPS}")
        (self.enabled.add if on else self.enabled.discard)(group)

    def _apply_neutral(self, channels: Mapping[str, float]) -> dict[str, float]:
        out = {k: float(v) for k, v in channels.items()}
        n = self.neutral
        if not n:
            return out
        for k, v in out.items():
            if k.startswith("expr.") and k in n and n[k] < _NEUTRAL_EXPR_MAX:
                out[k] = min(1.0, max(0.0, (v - n[k]) / (1.0 - max(0.0, n[k]))))
            elif k.startswith("gaze.") and k in n:
                out[k] = v - n[k]
        joints = {joint_of(k) for k in out if _is_face_rotation(k)}
        for j in joints:
            names = [f"pose.{j}.{a}" for a in "xyz"]
            if not any(name in n for name in names):
                continue
            w = np.array([out.get(name, 0.0) for name in names])
            rel = relative_rotation(w, np.array([n.get(name, 0.0) for name in names]))
            for name, value in zip(names, rel, strict=True):
                out[name] = float(value)
        return out

    def __call__(self, channels: Mapping[str, float]) -> dict[str, float]:
        out = self._apply_neutral(channels)
        if self.mirror:
            out = mirror_channels(out)
        out = {k: v for k, v in out.items() if channel_group(k) in self.enabled}
        for k, v in out.items():
            a = self.adjust.get(k)
            if a is not None:
                v = a.apply(k, v)
            if k.startswith("expr."):
                v = min(1.0, max(0.0, v))
            out[k] = v
        return out

    # ---- files ------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "version": CALIBRATION_VERSION,
            "kind": "lca-drive-calibration",
            "neutral": dict(sorted(self.neutral.items())),
            "adjust": {k: asdict(a) for k, a in sorted(self.adjust.items())},
            "enabled": sorted(self.enabled),
            "mirror": self.mirror,
        }

    def save(self, path: str | os.PathLike) -> Path:
        text = json.dumps(self.to_dict(), indent=1)
        return atomic_write(path, lambda p: p.write_text(text))

    @classmethod
    def from_dict(cls, d: object, source: str = "calibration") -> Calibration:
        if not isinstance(d, dict) or d.get("kind") != "lca-drive-calibration":
            raise FileFormatError(f"{source}: not a driving calibration file (no kind 'lca-drive-calibration')")
        if d.get("version") != CALIBRATION_VERSION:
            raise FileFormatError(
                f"{source}: calibration version {d.get('version')!r}, this program reads version "
                f"{CALIBRATION_VERSION}: calibrate again and save"
            )
        try:
            neutral = {str(k): _finite(v, k) for k, v in d.get("neutral", {}).items()}
            adjust = {}
            for k, a in d.get("adjust", {}).items():
                invert = a["invert"]
                if not isinstance(invert, bool):
                    raise TypeError(f"invert of {k!r} must be true or false, got {invert!r}")
                adjust[str(k)] = ChannelAdjust(_finite(a["gain"], k), _finite(a["offset"], k), invert)
            enabled = set(_groups(d.get("enabled", GROUPS)))
            mirror = d.get("mirror", False)
            if not isinstance(mirror, bool):
                raise TypeError(f"mirror must be true or false, got {mirror!r}")
            for name in [*neutral, *adjust]:
                channel_group(name)
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError) as e:
            raise FileFormatError(f"{source}: malformed calibration ({type(e).__name__}: {e})") from e
        return cls(neutral=neutral, adjust=adjust, enabled=enabled, mirror=mirror)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Calibration:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such calibration file")
        if path.stat().st_size > MAX_CALIBRATION_BYTES:
            raise FileFormatError(f"{path}: {path.stat().st_size} bytes is far too large for a calibration file")
        try:
            d = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise FileFormatError(f"{path}: not a JSON calibration file ({e})") from e
        return cls.from_dict(d, str(path))


def _finite(value: object, name: object) -> float:
    """A finite number within +-MAX_CALIBRATION_VALUE (bools and strings are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name!r}: expected a number, got {value!r}"[:200])
    v = float(value)
    if not math.isfinite(v) or abs(v) > MAX_CALIBRATION_VALUE:
        raise ValueError(f"{name!r}: {v} is not a finite number within +-{MAX_CALIBRATION_VALUE:g}"[:200])
    return v


def _groups(values: Iterable[object]) -> list[Group]:
    out = []
    for g in values:
        if g not in GROUPS:
            raise ValueError(f"unknown group {g!r} (groups are {GROUPS})")
        out.append(g)  # type: ignore[arg-type]
    return out
