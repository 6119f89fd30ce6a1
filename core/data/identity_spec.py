"""Identity specifications: the random choices (body, skin, hair, garments, accessories) behind one person.

A spec is a small frozen record drawn from a seed; `core.data.identity` grows the Gaussians from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from core.data.seeds import rng_for

HairStyle = Literal["bald", "short", "long", "curly", "ponytail"]
TopKind = Literal["tight_top", "shirt", "jacket", "dress"]
BottomKind = Literal["trousers", "shorts", "skirt", "none"]
Pattern = Literal["solid", "stripes", "checks", "dots"]

HAIR_STYLES: tuple[str, ...] = ("bald", "short", "long", "curly", "ponytail")
TOP_KINDS: tuple[str, ...] = ("tight_top", "shirt", "jacket", "dress")
BOTTOM_KINDS: tuple[str, ...] = ("trousers", "shorts", "skirt")
PATTERNS: tuple[str, ...] = ("solid", "stripes", "checks", "dots")
ACCESSORIES: tuple[str, ...] = ("glasses", "necklace", "wristband", "cap")

# Linear-ish RGB skin tones from light to deep; a person's tone is an interpolation between neighbours.
SKIN_TONES = np.array(
    [
        [0.93, 0.78, 0.68],
        [0.87, 0.68, 0.55],
        [0.76, 0.57, 0.43],
        [0.62, 0.44, 0.31],
        [0.45, 0.30, 0.20],
        [0.30, 0.19, 0.13],
    ]
)
HAIR_COLOURS = np.array(
    [
        [0.05, 0.04, 0.03],
        [0.22, 0.13, 0.07],
        [0.45, 0.30, 0.15],
        [0.80, 0.65, 0.40],
        [0.55, 0.20, 0.08],
        [0.70, 0.70, 0.70],
    ]
)
EYE_COLOURS = np.array([[0.25, 0.15, 0.08], [0.20, 0.35, 0.55], [0.30, 0.45, 0.25], [0.12, 0.08, 0.05]])


@dataclass(frozen=True)
class Garment:
    kind: str  # one of TOP_KINDS / BOTTOM_KINDS / "shoes"
    colour: tuple[float, float, float]  # base albedo, linear RGB in [0, 1]
    colour2: tuple[float, float, float]  # second colour of the pattern
    pattern: str  # one of PATTERNS
    pattern_scale: float  # metres per pattern period
    thickness: float  # metres of offset from the skin


@dataclass(frozen=True)
class IdentitySpec:
    """Everything random about one synthetic person; `draw_identity_spec(seed)` is its only constructor."""

    seed: int
    phenotype: dict[str, float]  # body model phenotype parameters in [0, 1] (gender, age, muscle, ...)
    skin: tuple[float, float, float]
    skin_detail: float  # amplitude of the low-frequency albedo noise (freckles, blotches)
    lips: tuple[float, float, float]
    eyes: tuple[float, float, float]
    hair_style: str
    hair_colour: tuple[float, float, float]
    hair_length: float  # metres (long styles), scaled per style
    beard: bool
    top: Garment
    bottom: Garment | None  # None when the top is a dress
    shoes: Garment
    accessories: tuple[str, ...]
    accessory_colour: tuple[float, float, float]

    def to_json(self) -> dict:
        return asdict(self)


def _colour(rng: np.random.Generator, *, saturation: tuple[float, float] = (0.2, 0.9)) -> tuple[float, float, float]:
    h = rng.uniform(0, 1)
    s = rng.uniform(*saturation)
    v = rng.uniform(0.15, 0.95)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return tuple(float(c) for c in rgb)  # type: ignore[return-value]


def _garment(rng: np.random.Generator, kind: str, thickness: tuple[float, float]) -> Garment:
    return Garment(
        kind=kind,
        colour=_colour(rng),
        colour2=_colour(rng),
        pattern=str(rng.choice(PATTERNS, p=[0.4, 0.25, 0.2, 0.15])),
        pattern_scale=float(rng.uniform(0.03, 0.12)),
        thickness=float(rng.uniform(*thickness)),
    )


def _mix(palette: np.ndarray, x: float) -> tuple[float, float, float]:
    pos = x * (len(palette) - 1)
    i = min(int(pos), len(palette) - 2)
    c = palette[i] * (1 - (pos - i)) + palette[i + 1] * (pos - i)
    return tuple(float(v) for v in c)  # type: ignore[return-value]


def draw_identity_spec(seed: int) -> IdentitySpec:
    """The identity of `seed` (see `core.data.seeds.identity_seed`); the same seed always gives the same person."""
    rng = rng_for("identity-spec", seed)
    gender = float(rng.uniform(0, 1))
    phenotype = {
        "gender": gender,
        "age": float(rng.uniform(0.35, 0.9)),
        "muscle": float(rng.uniform(0.2, 0.8)),
        "weight": float(rng.beta(2.5, 2.5)),
        "height": float(rng.uniform(0.2, 0.8)),
        "proportions": float(rng.uniform(0.3, 0.7)),
    }
    masculine = gender > 0.5
    skin = np.array(_mix(SKIN_TONES, float(rng.uniform(0, 1))))
    lips = np.clip(skin * np.array([0.95, 0.62, 0.62]) + rng.uniform(-0.03, 0.03, 3), 0, 1)
    hair_p = [0.12, 0.45, 0.1, 0.23, 0.1] if masculine else [0.02, 0.13, 0.4, 0.2, 0.25]
    hair_style = str(rng.choice(HAIR_STYLES, p=hair_p))
    top_kind = str(rng.choice(TOP_KINDS, p=[0.35, 0.3, 0.25, 0.1] if masculine else [0.3, 0.2, 0.2, 0.3]))
    bottom = None
    if top_kind != "dress":
        bottom = _garment(
            rng, str(rng.choice(BOTTOM_KINDS, p=[0.7, 0.25, 0.05] if masculine else [0.4, 0.25, 0.35])), (0.008, 0.02)
        )
    top = _garment(rng, top_kind, (0.012, 0.03) if top_kind == "jacket" else (0.005, 0.015))
    shoes = _garment(rng, "shoes", (0.015, 0.03))
    acc = tuple(a for a, p in zip(ACCESSORIES, (0.25, 0.15, 0.2, 0.12), strict=False) if rng.uniform() < p)
    if hair_style in ("long", "ponytail"):
        acc = tuple(a for a in acc if a != "cap")  # a cap over long hair needs a cloth sim we do not have
    return IdentitySpec(
        seed=int(seed),
        phenotype=phenotype,
        skin=tuple(float(v) for v in skin),  # type: ignore[arg-type]
        skin_detail=float(rng.uniform(0.02, 0.08)),
        lips=tuple(float(v) for v in lips),  # type: ignore[arg-type]
        eyes=_mix(EYE_COLOURS, float(rng.uniform(0, 1))),
        hair_style=hair_style,
        hair_colour=_mix(HAIR_COLOURS, float(rng.beta(1.2, 2.0))),
        hair_length=float(rng.uniform(0.18, 0.4)),
        beard=bool(masculine and rng.uniform() < 0.35),
        top=top,
        bottom=bottom,
        shoes=shoes,
        accessories=acc,
        accessory_colour=_colour(rng, saturation=(0.0, 0.6)),
    )
