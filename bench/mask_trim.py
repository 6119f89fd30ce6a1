"""How much of each ingested source's person masks the trim to the fitted body takes out (core.capture.mask_trim,
what `prepare video` now writes as `arrays["fit_mask"]` and refinement fits), per frame and per source, with
overlays: the kept mask green, the trimmed part red, the dressed body's outline white. With --write, the sources are
also written again with their trimmed masks (a folder ingested before the trim, for `main.py eval --real`).

    python bench/mask_trim.py out/real [--out out/mask_trim] [--write out/real_trimmed]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("real", type=Path)
    ap.add_argument("--out", type=Path, default=Path("out/mask_trim"))
    ap.add_argument("--write", type=Path, default=None, help="write the sources with arrays['fit_mask'] here")
    args = ap.parse_args()
    from core.capture.mask_trim import with_fit_masks
    from core.capture.photo_fit import body_silhouette
    from core.capture.photos import _fit_rig
    from core.data.shards import iter_shard, list_shards, write_shard
    from core.train.evaluate import natural_key
    from core.train.evaluate_real import ROLE_RECONSTRUCTION, ROLE_REF, held_out_roles
    from core.train.refine_frames import frame_estimates

    rig = _fit_rig()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for shard in sorted(list_shards(args.real / "video"), key=natural_key):
        (s,) = [x for x in iter_shard(shard) if x.meta.get("kind") == "video"]
        name = Path(s.meta.get("source", s.key)).stem
        frames = np.arange(s.num_frames)
        refs = np.nonzero(np.isin(held_out_roles(s), (ROLE_REF, ROLE_RECONSTRUCTION)))[0]
        trimmed, trims = with_fit_masks(s, rig)
        if args.write is not None:
            dest = args.write / shard.relative_to(args.real)
            dest.parent.mkdir(parents=True, exist_ok=True)
            write_shard(dest, [trimmed])
        g = (s.meta.get("fit_quality") or {}).get("garment_m")
        tiles = []
        for f, est, t in zip(frames, frame_estimates(s, frames), trims, strict=True):
            raw = s.mask[f, 0] > 127
            kept = t.mask > 127
            img = s.rgb[f, 0].astype(np.float32)
            img[kept] = 0.5 * img[kept] + 0.5 * np.array([0, 255, 0])
            img[raw & ~kept] = 0.4 * img[raw & ~kept] + 0.6 * np.array([255, 0, 0])
            sil = body_silhouette(rig, est, raw.shape, None if g is None else np.asarray(g, np.float32))
            cs, _ = cv2.findContours((sil > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            img = np.ascontiguousarray(img.astype(np.uint8))
            cv2.drawContours(img, cs, -1, (255, 255, 255), 1)
            tag = ("R" if f in refs else "") + (" POOR" if t.note.startswith("POOR") else "")
            cv2.putText(img, f"{f}{tag} {100 * t.trimmed:.0f}%", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0))
            tiles.append(img)
        while len(tiles) % 8:
            tiles.append(np.zeros_like(tiles[0]))
        sheet = np.concatenate([np.concatenate(tiles[i : i + 8], 1) for i in range(0, len(tiles), 8)], 0)
        cv2.imwrite(str(args.out / f"{name}.png"), sheet[..., ::-1])
        share = [round(t.trimmed, 4) for t in trims]
        raw_px = [int((s.mask[f, 0] > 127).sum()) for f in frames]
        cut_px = [r * t for r, t in zip(raw_px, share, strict=True)]
        rows[name] = {
            "trimmed_per_frame": share,
            "reference_frames": refs.tolist(),
            "trimmed_all": round(sum(cut_px) / max(sum(raw_px), 1), 4),
            "trimmed_refs": round(sum(cut_px[i] for i in refs) / max(sum(raw_px[i] for i in refs), 1), 4),
            "untrimmed": {int(f): t.note for f, t in zip(frames, trims, strict=True) if t.note},
        }
        print(f"{name:28s} trimmed {100 * rows[name]['trimmed_all']:5.1f}% of mask pixels "
              f"(references {100 * rows[name]['trimmed_refs']:5.1f}%), {len(rows[name]['untrimmed'])} untrimmed")  # fmt: skip
    (args.out / "mask_trim.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
