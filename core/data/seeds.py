"""Seeds of the synthetic world: every sample is a pure function of (world seed, split, kind, index).

Train and held-out identities are drawn from disjoint seed streams, so they never overlap.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np

Split = Literal["train", "wild-test", "studio-test", "val", "loose-test"]
Kind = Literal["wild", "studio"]
SPLITS: tuple[str, ...] = ("train", "val", "wild-test", "studio-test", "loose-test")


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of names and numbers (stable across runs, platforms and processes)."""
    text = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & ((1 << 63) - 1)


def identity_seed(world_seed: int, split: str, index: int) -> int:
    """Seed of identity `index` of `split`; the split name is hashed in, so splits never share an identity."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    return derive_seed("identity", world_seed, split, index)


def rng_for(*parts: object) -> np.random.Generator:
    """A numpy generator seeded from `parts` (see `derive_seed`)."""
    return np.random.default_rng(derive_seed(*parts))
