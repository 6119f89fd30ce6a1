"""Anchors are a pure function of the body rig and the token config: sample them once and keep them on disk.

The cache lives in the user's cache folder (`core.paths.user_cache_dir`), keyed by a hash of everything
`sample_anchors` reads, so a changed body, anchor count, seed or sampler gives a new entry and a stale one is
never used. A missing, unreadable or unwritable cache only costs the sampling time (about a second).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import fields
from pathlib import Path

import torch
from torch import Tensor

from core.io import FileFormatError, load_tensors, save_tensors
from core.model.rig import BodyRig
from core.model.tokens import Anchors, sample_anchors

log = logging.getLogger(__name__)

CACHE_KIND = "lca-anchors"
SAMPLER_VERSION = 1  # bump when sample_anchors would give different anchors for the same inputs


def anchors_key(rig: BodyRig, num: int, seed: int, head_share: float | None = None) -> str:
    """A hash of the rig tensors `sample_anchors` reads, the count, the seed, the head's share and the sampler
    version."""
    share = "" if head_share is None else f":head{head_share!r}"
    h = hashlib.sha256(f"v{SAMPLER_VERSION}:{num}:{seed}{share}".encode())
    for name in ("vertices", "faces", "weights", "expression_basis", "shape_basis", "vertex_parts"):
        t = getattr(rig, name)
        h.update(name.encode())
        if t is not None:
            t = t.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


def _cache_path(key: str) -> Path | None:
    from core.paths import user_cache_dir

    try:
        return user_cache_dir("anchors") / f"{key}.safetensors"
    except OSError as e:  # no writable home: sample every time
        log.debug("no anchor cache (%s)", e)
        return None


def cached_anchors(rig: BodyRig, num: int, seed: int = 0, head_share: float | None = None) -> Anchors:
    """`sample_anchors(rig, num, seed, head_share=...)`, read from the cache when it was sampled before (identical
    tensors)."""
    key = anchors_key(rig, num, seed, head_share)
    path = _cache_path(key)
    if path is not None and path.is_file():
        try:
            tensors, meta = load_tensors(path, kind=CACHE_KIND)
            return _anchors_from(tensors, meta)
        except (FileFormatError, KeyError, TypeError, ValueError, OSError) as e:
            log.warning("ignoring the anchor cache %s (%s); sampling again", path, e)
    t = time.perf_counter()
    anchors = sample_anchors(rig, num, seed, head_share=head_share)
    log.info("sampled %d anchors on the body in %.1f s (cached for the next start)", num, time.perf_counter() - t)
    if path is not None:
        try:
            save_tensors(path, _tensors_of(anchors), {"spacing": anchors.spacing, "key": key}, kind=CACHE_KIND)
        except OSError as e:
            log.debug("could not write the anchor cache %s (%s)", path, e)
    return anchors


def _tensors_of(a: Anchors) -> dict[str, Tensor]:
    return {f.name: getattr(a, f.name) for f in fields(a) if isinstance(getattr(a, f.name), Tensor)}


def _anchors_from(tensors: dict[str, Tensor], meta: dict) -> Anchors:
    return Anchors(**{**tensors, "shape_basis": tensors.get("shape_basis")}, spacing=float(meta["spacing"]))
