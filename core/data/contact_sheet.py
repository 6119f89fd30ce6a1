"""Contact sheets of generated shards: a grid of frames (wild) and views (studio) with masks and part labels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.data.shards import Sample, iter_shard, list_shards
from core.io import save_image_bgr

# One colour per PART_NAMES entry for label previews (skin, face, hair, upper, lower, shoes, accessories).
PART_PALETTE = np.array(
    [[224, 172, 140], [255, 120, 120], [90, 60, 30], [60, 120, 230], [60, 180, 90], [200, 200, 40], [230, 60, 230]],
    np.uint8,
)


def colour_parts(parts: np.ndarray) -> np.ndarray:
    """Part ids [H, W] (255 = background) -> RGB preview [H, W, 3]."""
    out = np.zeros((*parts.shape, 3), np.uint8)
    known = parts < len(PART_PALETTE)
    out[known] = PART_PALETTE[parts[known]]
    return out


def sample_strip(sample: Sample, num: int = 4) -> np.ndarray:
    """A row of `num` images of one sample (frames of a clip, or views of a capture) plus one part-label tile."""
    F, C = sample.num_frames, sample.num_cameras
    if C == 1:
        picks = [(int(f), 0) for f in np.linspace(0, F - 1, num).round()]
    else:
        picks = [(0, int(c)) for c in np.linspace(0, C - 1, num - 1).round()] + [(F - 1, 0)]  # last: a relit frame
    tiles = [sample.rgb[f, c] for f, c in picks]
    if sample.parts is not None:
        tiles.append(colour_parts(sample.parts[picks[0]]))
    return np.concatenate(tiles, axis=1)


def contact_sheet(root: Path, out: Path, *, per_kind: int = 3, num: int = 4) -> Path:
    """Write a PNG grid of up to `per_kind` wild and studio samples from the shards under `root`."""
    rows: list[np.ndarray] = []
    for kind in ("wild", "studio", "video"):
        got = 0
        for shard in list_shards(root):
            if not shard.name.startswith(kind) or got >= per_kind:
                continue
            for s in iter_shard(shard):
                if got >= per_kind:
                    break
                rows.append(sample_strip(s, num))
                got += 1
    if not rows:
        raise FileNotFoundError(f"no samples under {root}")
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    save_image_bgr(out, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    return out
