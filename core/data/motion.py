"""Natural motion, facial expression and gaze generators for synthetic clips.

Bone rotations are produced as axis-angle vectors [F, J, 3] in world-aligned axes at each bone's reference pose
(x to the person's left, y up, z forward): the `core.body.BodyParams` convention. Expressions are ARKit-named coefficients in [0, 1]; gaze is (yaw, pitch) in radians.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MOTIONS: tuple[str, ...] = ("idle", "walk", "wave", "talk", "squat", "turn", "dance", "reach")


def _find(names: Sequence[str], *candidates: str) -> list[int]:
    return [names.index(c) for c in candidates if c in names]


def _smooth_noise(
    rng: np.random.Generator, num_frames: int, dims: tuple[int, ...], sigma: float, knots: int = 4
) -> np.ndarray:
    """Low-frequency noise [F, *dims]: random knots linearly interpolated then eased."""
    ks = rng.normal(0, sigma, (knots, *dims))
    t = np.linspace(0, knots - 1, num_frames)
    i = np.minimum(t.astype(int), knots - 2)
    a = t - i
    a = a * a * (3 - 2 * a)
    a = a.reshape(-1, *([1] * len(dims)))
    return ks[i] * (1 - a) + ks[i + 1] * a


def generate_motion(
    rng: np.random.Generator,
    bone_names: Sequence[str],
    num_frames: int,
    *,
    motion: str | None = None,
    fps: float = 15.0,
) -> tuple[np.ndarray, np.ndarray, str]:
    """A clip of natural motion: (rotations [F, J, 3] world-rest axis-angle, root translation [F, 3], motion name)."""
    names = list(bone_names)
    J = len(names)
    motion = str(rng.choice(MOTIONS)) if motion is None else motion
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; use one of {MOTIONS}")
    t = np.arange(num_frames) / fps
    rot = np.zeros((num_frames, J, 3))
    trans = np.zeros((num_frames, 3))
    speed = rng.uniform(0.7, 1.3)
    phase = rng.uniform(0, 2 * np.pi)
    w = 2 * np.pi * speed * t + phase

    def add(bones: Sequence[str], axis: int, values: np.ndarray) -> None:
        for j in _find(names, *bones):
            rot[:, j, axis] += values

    # Arms hang relaxed from the rest pose (the reference pose is an A pose): lower them a random amount.
    drop = rng.uniform(0.6, 1.1)
    add(["upperarm01.L"], 2, np.full(num_frames, -drop))
    add(["upperarm01.R"], 2, np.full(num_frames, drop))
    add(["lowerarm01.L", "lowerarm01.R"], 0, np.full(num_frames, -rng.uniform(0.05, 0.4)))
    if motion in ("idle", "talk", "turn"):
        add(["spine03", "spine02"], 2, 0.04 * np.sin(0.3 * w))
        add(["neck01", "head"], 1, 0.15 * np.sin(0.4 * w + 1))
    if motion == "walk":
        swing = rng.uniform(0.3, 0.6)
        add(["upperleg01.L"], 0, -swing * np.sin(w * 2))
        add(["upperleg01.R"], 0, swing * np.sin(w * 2))
        add(["lowerleg01.L"], 0, swing * 1.2 * np.clip(np.sin(w * 2 + 1.2), 0, None))
        add(["lowerleg01.R"], 0, swing * 1.2 * np.clip(-np.sin(w * 2 + 1.2), 0, None))
        add(["upperarm01.L"], 0, 0.6 * swing * np.sin(w * 2))
        add(["upperarm01.R"], 0, -0.6 * swing * np.sin(w * 2))
        trans[:, 1] = 0.015 * np.abs(np.sin(w * 2))
    if motion == "wave":
        side = "R" if rng.uniform() < 0.7 else "L"
        sign = 1 if side == "L" else -1
        raise_ = np.clip(t / 0.6, 0, 1)
        add([f"upperarm01.{side}"], 2, sign * (drop + 1.9) * raise_)
        add([f"lowerarm01.{side}"], 2, sign * (0.4 + 0.35 * np.sin(3 * w)) * raise_)
    if motion == "talk":
        for side, sign in (("L", 1), ("R", -1)):
            add([f"upperarm01.{side}"], 0, -0.4 - 0.2 * np.sin(w + sign))
            add([f"lowerarm01.{side}"], 0, -0.8 - 0.4 * np.sin(1.7 * w + sign))
        add(["head"], 0, 0.08 * np.sin(2.3 * w))
    if motion == "squat":
        depth = rng.uniform(0.4, 1.2) * (0.5 - 0.5 * np.cos(w))
        add(["upperleg01.L", "upperleg01.R"], 0, -depth)
        add(["lowerleg01.L", "lowerleg01.R"], 0, 2 * depth)
        add(["foot.L", "foot.R"], 0, -depth)
        add(["upperarm01.L", "upperarm01.R"], 0, -0.8 * depth)
        trans[:, 1] = -0.25 * depth
    if motion == "turn":
        rot[:, _find(names, "root")[:1] or [0], 1] += (
            rng.uniform(-1.5, 1.5) * np.clip(t / max(t[-1], 1e-6), 0, 1)[:, None]
        )
    if motion == "dance":
        add(["spine03"], 2, 0.2 * np.sin(w * 2))
        add(["spine01"], 1, 0.3 * np.sin(w))
        add(["upperarm01.L"], 2, drop * 0.9 * (0.5 + 0.5 * np.sin(w * 2)))
        add(["upperarm01.R"], 2, -drop * 0.9 * (0.5 + 0.5 * np.sin(w * 2 + 1)))
        add(["upperleg01.L"], 0, -0.25 * np.clip(np.sin(w * 2), 0, None))
        add(["upperleg01.R"], 0, -0.25 * np.clip(-np.sin(w * 2), 0, None))
        trans[:, 0] = 0.06 * np.sin(w)
    if motion == "reach":
        side = "L" if rng.uniform() < 0.5 else "R"
        up = 0.5 - 0.5 * np.cos(w)
        add([f"upperarm01.{side}"], 0, -1.6 * up)
        add(["spine03", "spine02"], 0, -0.15 * up)
    # Everyone fidgets: small smooth noise on spine, neck and limbs; a random facing for the clip.
    body = _find(names, "spine05", "spine04", "spine03", "spine02", "spine01", "neck01", "neck02", "head")
    limbs = _find(
        names,
        "upperarm01.L",
        "upperarm01.R",
        "lowerarm01.L",
        "lowerarm01.R",
        "wrist.L",
        "wrist.R",
        "upperleg01.L",
        "upperleg01.R",
    )
    rot[:, body] += _smooth_noise(rng, num_frames, (len(body), 3), 0.04)
    rot[:, limbs] += _smooth_noise(rng, num_frames, (len(limbs), 3), 0.08)
    fingers = [i for i, n in enumerate(names) if n.startswith("finger")]
    curl = rng.uniform(0.0, 0.5)
    rot[:, fingers, 0] -= curl + _smooth_noise(rng, num_frames, (len(fingers),), 0.1)
    root = _find(names, "root")
    if root:
        rot[:, root[0], 1] += rng.uniform(-0.5, 0.5)
    trans[:, [0, 2]] += _smooth_noise(rng, num_frames, (2,), 0.03)
    return rot, trans, motion


# ARKit coefficient groups that move together in simple expressions.
EXPRESSIONS: dict[str, dict[str, float]] = {
    "smile": {"mouthSmileLeft": 1, "mouthSmileRight": 1, "cheekSquintLeft": 0.5, "cheekSquintRight": 0.5},
    "surprise": {
        "jawOpen": 0.6,
        "browInnerUp": 1,
        "browOuterUpLeft": 0.8,
        "browOuterUpRight": 0.8,
        "eyeWideLeft": 0.8,
        "eyeWideRight": 0.8,
    },
    "frown": {"browDownLeft": 1, "browDownRight": 1, "mouthFrownLeft": 0.8, "mouthFrownRight": 0.8},
    "pucker": {"mouthPucker": 1, "mouthFunnel": 0.3},
    "sneer": {"noseSneerLeft": 1, "noseSneerRight": 1, "mouthUpperUpLeft": 0.5, "mouthUpperUpRight": 0.5},
    "smirk": {"mouthSmileLeft": 0.8, "mouthDimpleLeft": 0.4},
    "sad": {"browInnerUp": 0.8, "mouthFrownLeft": 0.6, "mouthFrownRight": 0.6, "mouthLowerDownLeft": 0.2},
    "jaw_left": {"jawLeft": 1, "mouthLeft": 0.5},
    "cheek_puff": {"cheekPuff": 1},
}


def expression_vector(names: Sequence[str], expression: str, strength: float) -> np.ndarray:
    """One named expression at `strength` as coefficients over `names` [E]."""
    e = np.zeros(len(names))
    for k, v in EXPRESSIONS[expression].items():
        if k in names:
            e[names.index(k)] = v * strength
    return np.clip(e, 0, 1)


def generate_expressions(
    rng: np.random.Generator,
    names: Sequence[str],
    num_frames: int,
    *,
    fps: float = 15.0,
    talking: bool | None = None,
    subtle: bool = False,
) -> np.ndarray:
    """Expression curves [F, E]: blends of named expressions rising and falling, blinks, optional talking jaw."""
    names = list(names)
    E = len(names)
    out = np.zeros((num_frames, E))
    if E == 0:
        return out
    t = np.arange(num_frames) / fps
    for _ in range(int(rng.integers(1, 3))):
        kind = str(rng.choice(list(EXPRESSIONS)))
        strength = rng.uniform(0.1, 0.35) if subtle else rng.uniform(0.3, 1.0)
        centre, width = rng.uniform(0, max(t[-1], 1e-3)), rng.uniform(0.4, 2.0)
        env = np.exp(-0.5 * ((t - centre) / width) ** 2)
        out += env[:, None] * expression_vector(names, kind, strength)[None]
    talking = bool(rng.uniform() < 0.4) if talking is None else talking
    if talking and "jawOpen" in names:
        syll = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6)), 0, None)
        out[:, names.index("jawOpen")] += 0.35 * syll * rng.uniform(0.5, 1)
    for side in ("Left", "Right"):
        if f"eyeBlink{side}" in names:
            j = names.index(f"eyeBlink{side}")
            period = rng.uniform(2.0, 5.0)
            for start in np.arange(rng.uniform(0, period), t[-1] + 1e-6 if num_frames > 1 else 0, period):
                out[:, j] = np.maximum(out[:, j], np.clip(1 - np.abs(t - start) / 0.12, 0, 1))
    return np.clip(out, 0, 1)


def generate_gaze(rng: np.random.Generator, num_frames: int, *, fps: float = 15.0) -> np.ndarray:
    """Gaze (yaw, pitch) in radians [F, 2]: fixations with saccades between them."""
    gaze = np.zeros((num_frames, 2))
    cur = rng.normal(0, 0.15, 2)
    for f in range(num_frames):
        if rng.uniform() < 1.2 / fps:  # about one saccade a second
            cur = np.clip(rng.normal(0, 0.25, 2), -0.5, 0.5)
        gaze[f] = cur
    return gaze
