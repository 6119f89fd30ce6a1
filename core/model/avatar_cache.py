"""A decoded avatar is a pure function of its input files and the model code: decode once, then read it back.

The studio's example avatars take a transformer pass over 8,192 anchors (about 10 s on 2 CPU cores) on every
start; the result is kept in the user's cache folder (`core.paths.user_cache_dir`), keyed by the bytes of the
input files (model checkpoint, example inputs) and of the code under core/model and core/body, so an edited
file or changed code decodes afresh. A missing, unreadable or unwritable cache only costs the decode.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import torch

from core.io import FileFormatError
from core.model.avatar import Avatar

log = logging.getLogger(__name__)

CACHE_VERSION = 1
CODE_DIRS = ("model", "body")  # under core/: the code a decoded avatar depends on


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of the source files under core/model and core/body."""
    core = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for folder in CODE_DIRS:
        for f in sorted((core / folder).glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def avatar_key(inputs: Sequence[str | Path], tag: str = "") -> str:
    """A hash of the cache version, `tag`, the input files' bytes and the model code."""
    h = hashlib.sha256(f"v{CACHE_VERSION}:{tag}:{code_fingerprint()}".encode())
    for p in inputs:
        h.update(hashlib.sha256(Path(p).read_bytes()).digest())
    return h.hexdigest()[:32]


def cached_avatar(
    inputs: Sequence[str | Path],
    make: Callable[[], Avatar],
    *,
    tag: str = "",
    device: torch.device | str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> Avatar:
    """`make()`'s avatar, read from the cache when the same inputs were decoded by the same code before.

    `progress(text)` hears which of the two happens ("reading ... from the cache"; `make` reports its own steps).
    """
    from core.paths import user_cache_dir

    try:
        path = user_cache_dir("avatars") / f"{avatar_key(inputs, tag)}.safetensors"
    except OSError as e:
        log.debug("no avatar cache (%s)", e)
        return make()
    if path.is_file():
        if progress is not None:
            progress(f"reading the decoded {tag or 'avatar'} from the cache")
        try:
            return Avatar.load(path, device=device)
        except (FileFormatError, OSError, ValueError, KeyError, RuntimeError) as e:
            log.warning("ignoring the cached avatar %s (%s); decoding again", path, e)
    t = time.perf_counter()
    avatar = make()
    log.info("decoded %s in %.1f s (cached for the next start)", tag or "the avatar", time.perf_counter() - t)
    try:
        avatar.save(path)
    except OSError as e:
        log.debug("could not write the avatar cache %s (%s)", path, e)
    return avatar
