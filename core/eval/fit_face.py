"""Build the neutral face template of face retargeting from frontal renders of synthetic training identities.

    python -m core.eval.fit_face [--count 12] [--size 256] [--out assets/tracking/face_template.npz]

The template is the mean mediapipe face mesh (478 points with irises) of neutral, frontal, eyes-ahead faces,
centred on the nose bridge and scaled to unit interocular distance: it fixes "head rotation zero", the
neutral value of every face measurement and the iris rest position. Identities come from the world's
"train" split, so the "wild-test" identities of the accuracy evaluation stay unseen.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from core.tracking.face_geometry import landmarks_to_pixels, normalise_template

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "assets" / "tracking" / "face_template.npz"


def build_template(*, count: int = 12, size: int = 256, world_seed: int = 0) -> tuple[np.ndarray, dict]:
    """Mean normalised neutral face [478, 3] over `count` training identities, and a record of how it was made."""
    from core.data.seeds import identity_seed
    from core.eval.face_renders import SyntheticFaceCamera
    from core.tracking.landmarks import Tracker

    faces, used = [], []
    for i in range(count):
        seed = identity_seed(world_seed, "train", i)
        cam = SyntheticFaceCamera(seed, size=size)
        with Tracker(face=True, body=False, hands=False) as tracker:
            lm = tracker.track(cam.render(), 0)
        if lm.face is None:
            log.warning("train identity %d: no face found in its frontal render; skipped", i)
            continue
        faces.append(normalise_template(landmarks_to_pixels(lm.face, lm.image_size)))
        used.append(i)
    if len(faces) < max(2, count // 2):
        raise RuntimeError(
            f"the face mesh found only {len(faces)} of {count} synthetic faces: the renders or mediapipe changed; "
            "look at SyntheticFaceCamera(seed).render() before building a template"
        )
    template = normalise_template(np.mean(faces, axis=0))
    info = {"world_seed": world_seed, "split": "train", "identities": used, "size": size, "count": len(faces)}
    return template.astype(np.float32), info


def save_template(path: Path, template: np.ndarray, info: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, landmarks=template, info=np.array(json.dumps(info)))
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=12, help="training identities to average")
    p.add_argument("--size", type=int, default=256, help="render size in pixels")
    p.add_argument("--out", type=Path, default=DEFAULT_TEMPLATE)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    template, info = build_template(count=args.count, size=args.size)
    log.info("template from %d identities written to %s", info["count"], save_template(args.out, template, info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
