"""The studio's face view of an avatar with the jaw shut and open, the eyes open and shut: the real studio (Dear PyGui,
its preview renderer) under a display, its preview pictures in a 2 x 2 grid (PNG), plus a screenshot of the window.

xvfb-run -a -s "-screen 0 1280x800x24" python bench/default_avatar_face.py --out docs/screenshots/default_avatar_face.png
xvfb-run -a -s "-screen 0 1280x800x24" python bench/default_avatar_face.py --avatar other.safetensors --out x.png
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

STATES = (
    ("neutral", {}),
    ("jawOpen 1", {"jawOpen": 1.0}),
    ("eyeBlink 1", {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}),
    ("jawOpen 1, eyeBlink 1", {"jawOpen": 1.0, "eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--avatar", type=Path, default=None, help="an avatar file (default: the studio's default avatar)")
    ap.add_argument("--out", type=Path, required=True, help="the 2 x 2 grid (PNG); the window goes beside it")
    ap.add_argument("--size", default="480x360", help="preview size WxH")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("LCA_STUDIO_HOME", tempfile.mkdtemp(prefix="lca-face-"))
    from app.avatar_source import default_avatar, load_avatar
    from app.session import Session
    from app.studio import Studio

    avatar = load_avatar(args.avatar) if args.avatar else default_avatar()
    w, h = (int(v) for v in args.size.split("x"))
    studio = Studio(Session(avatar), preview=(w, h), interactive_scale=1.0)
    try:
        studio.run(max_frames=3)
        studio.show_panel("Expression")
        studio.session.camera_preset("face")
        tiles = []
        for label, values in STATES:
            studio.session.apply(replace(studio.session.edit, expression=()).with_expression(values))
            if not studio.settle():
                raise RuntimeError("the preview did not settle")
            rgb = (np.clip(studio.preview_image[..., :3], 0, 1) * 255).round().astype(np.uint8)[..., ::-1].copy()
            cv2.putText(rgb, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(rgb)
            if label == STATES[1][0]:
                studio.screenshot(args.out.with_name(args.out.stem + "_window.png"))
        grid = np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:], 1)], 0)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.out), grid)
        logging.info("wrote %s (%s)", args.out, avatar.description)
    finally:
        studio.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
