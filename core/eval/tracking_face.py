"""Face tracking accuracy on rendered driving clips of held-out synthetic identities with known ground truth.

    python -m core.eval.tracking_face [--identities 6] [--frames 16] [--out bench/results/tracking_face.json]
        [--sheet docs/drive_synthetic_faces.png] [--learned runs/face_regressor.npz]

Each identity of the world's "wild-test" split (never used to build the face template) is filmed close up
while it runs a random script of expressions (jaw, blinks, smiles, brows, ...), head rotations and gaze.
The mediapipe face mesh (`core.tracking.landmarks.Tracker`) and `FaceRetargeter` read every frame back;
errors are reported with the default (real-face) neutral and after a neutral capture on the identity's first
frame, as a user would press "calibrate" in front of the camera.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.io import save_image_bgr, write_json
from core.tracking.face import EXPRESSION_CHANNELS, FaceRetargeter
from core.tracking.face_geometry import matrix_from_rotvec

log = logging.getLogger(__name__)

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "bench" / "results" / "tracking_face.json"
# What a script frame may set, with the largest coefficient drawn.
SCRIPT_EXPRESSIONS: dict[str, dict[str, float]] = {
    "jaw": {"jawOpen": 0.9},
    "blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},
    "smile": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
    "brows": {"browInnerUp": 1.0, "browOuterUpLeft": 1.0, "browOuterUpRight": 1.0},
    "talk_smile": {"jawOpen": 0.5, "mouthSmileLeft": 0.7, "mouthSmileRight": 0.7},
    "pucker": {"mouthPucker": 1.0},
    "wink": {"eyeBlinkLeft": 1.0},
}


@dataclass(frozen=True)
class ScriptFrame:
    """Ground truth of one rendered frame."""

    expression: dict[str, float]
    head_deg: tuple[float, float, float]  # world-axis axis-angle of the head bone, degrees
    gaze_deg: tuple[float, float]  # yaw right+, pitch up+


def driving_script(rng: np.random.Generator, frames: int) -> list[ScriptFrame]:
    """Frame 0 is neutral and frontal; the rest draw an expression, a head rotation and a gaze."""
    out = [ScriptFrame({}, (0.0, 0.0, 0.0), (0.0, 0.0))]
    kinds = list(SCRIPT_EXPRESSIONS)
    for _ in range(frames - 1):
        kind = kinds[int(rng.integers(len(kinds)))]
        strength = float(rng.uniform(0.3, 1.0))
        expr = {k: v * strength for k, v in SCRIPT_EXPRESSIONS[kind].items()}
        out.append(ScriptFrame(expr, *random_head_and_gaze(rng)))
    return out


def random_head_and_gaze(rng: np.random.Generator) -> tuple[tuple[float, float, float], tuple[float, float]]:
    """A head rotation (pitch ±15°, yaw ±25°, roll ±8°) and a gaze (yaw ±15°, pitch ±10°), degrees."""
    head = (float(rng.uniform(-15, 15)), float(rng.uniform(-25, 25)), float(rng.uniform(-8, 8)))
    gaze = (float(rng.uniform(-15, 15)), float(rng.uniform(-10, 10)))
    return head, gaze


def rotation_error_deg(est_deg: np.ndarray, gt_deg: np.ndarray) -> float:
    """Geodesic angle between two axis-angle rotations given in degrees [3]."""
    Ra, Rb = matrix_from_rotvec(np.radians(est_deg)), matrix_from_rotvec(np.radians(gt_deg))
    return math.degrees(math.acos(float(np.clip((np.trace(Ra.T @ Rb) - 1) / 2, -1.0, 1.0))))


def _frame_errors(ch: dict[str, float], gt: ScriptFrame) -> dict[str, float]:
    e = {name: abs(ch.get(f"expr.{name}", 0.0) - gt.expression.get(name, 0.0)) for name in EXPRESSION_CHANNELS}
    head = np.array([ch.get(f"pose.head.{a}", 0.0) for a in "xyz"])
    return {
        "expr_mae": float(np.mean(list(e.values()))),
        "jawOpen": e["jawOpen"],
        "eyeBlink": (e["eyeBlinkLeft"] + e["eyeBlinkRight"]) / 2,
        "mouthSmile": (e["mouthSmileLeft"] + e["mouthSmileRight"]) / 2,
        "head_deg": rotation_error_deg(head, np.array(gt.head_deg)),
        "head_yaw_deg": abs(head[1] - gt.head_deg[1]),
        "gaze_deg": float(
            np.hypot(ch.get("gaze.yaw", 0.0) - gt.gaze_deg[0], ch.get("gaze.pitch", 0.0) - gt.gaze_deg[1])
        ),
        "zero_expr_mae": float(np.mean([gt.expression.get(n, 0.0) for n in EXPRESSION_CHANNELS])),
    }


def contact_sheet(shots: list[tuple[np.ndarray, object, ScriptFrame, dict[str, float]]], path: Path) -> Path:
    """Frames with their face-mesh points, each labelled with the truth -> reading of its strongest channel."""
    import cv2

    from core.tracking.preview import preview_image

    tiles = []
    for image, lm, gt, ch in shots:
        tile = (preview_image(image, lm, 256, 256)[..., :3] * 255).astype(np.uint8)
        name = max(gt.expression, key=gt.expression.get) if gt.expression else "jawOpen"
        text = f"{name} {gt.expression.get(name, 0.0):.2f} -> {ch.get(f'expr.{name}', 0.0):.2f}"
        cv2.putText(tile, text, (6, 248), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    cols = 6
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
    sheet = np.concatenate([np.concatenate(tiles[i : i + cols], 1) for i in range(0, len(tiles), cols)], 0)
    save_image_bgr(path, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def evaluate_face(
    *,
    identities: int = 6,
    frames: int = 16,
    size: int = 256,
    world_seed: int = 0,
    split: str = "wild-test",
    sheet: Path | None = None,
    learned: Path | None = None,
) -> dict:
    """Mean errors over all frames where a face was found; see the module docstring."""
    from core.data.seeds import identity_seed, rng_for
    from core.eval.face_renders import SyntheticFaceCamera
    from core.tracking.landmarks import Tracker

    if split == "train":
        raise ValueError("split='train' holds the identities the face template was built from: evaluate held-out ones")
    t0 = time.perf_counter()
    rows: dict[str, list[dict[str, float]]] = {"default_neutral": [], "calibrated_neutral": []}
    if learned is not None:
        rows["learned_calibrated"] = []
    found = total = 0
    shots: list = []  # frames for the contact sheet
    for i in range(identities):
        cam = SyntheticFaceCamera(identity_seed(world_seed, split, i), size=size)
        script = driving_script(rng_for("face-eval", world_seed, split, i), frames)
        default, calibrated = FaceRetargeter(), FaceRetargeter()
        fitted = FaceRetargeter(reading="learned", regressor=learned) if learned is not None else None
        with Tracker(face=True, body=False, hands=False) as tracker:
            for f, gt in enumerate(script):
                image = cam.render(gt.expression, head_deg=gt.head_deg, gaze_deg=gt.gaze_deg)
                lm = tracker.track(image, f)
                if f == 0:
                    calibrated.set_neutral(lm)
                    if fitted is not None:
                        fitted.set_neutral(lm)
                    continue  # the neutral frame is the calibration, not a test
                total += 1
                if lm.face is None:
                    continue
                found += 1
                rows["default_neutral"].append(_frame_errors(default(lm), gt))
                read = calibrated(lm)
                rows["calibrated_neutral"].append(_frame_errors(read, gt))
                if fitted is not None:
                    rows["learned_calibrated"].append(_frame_errors(fitted(lm), gt))
                if sheet is not None and len(shots) < 18 and gt.expression:
                    shots.append((image, lm, gt, read))
        log.info("identity %d/%d done (%d of %d test frames with a face)", i + 1, identities, found, total)
    result: dict = {
        "split": split,
        "world_seed": world_seed,
        "identities": identities,
        "frames_per_identity": frames,
        "image_size": size,
        "test_frames": total,
        "face_found": found,
        "driven_expression_channels": list(EXPRESSION_CHANNELS),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if sheet is not None and shots:
        result["sheet"] = str(contact_sheet(shots, sheet))
    for name, rs in rows.items():
        if rs:
            result[name] = {k: round(float(np.mean([r[k] for r in rs])), 4) for k in rs[0]}
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--identities", type=int, default=6)
    p.add_argument("--frames", type=int, default=16, help="frames per identity (the first is the neutral)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--sheet", type=Path, default=None, help="PNG of tracked frames with truth -> reading")
    p.add_argument("--learned", type=Path, default=None, help="also evaluate this fitted regressor (an experiment)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    res = evaluate_face(
        identities=args.identities, frames=args.frames, size=args.size, sheet=args.sheet, learned=args.learned
    )
    write_json(args.out, res)
    log.info("written %s", args.out)
    print(json.dumps(res, indent=2))  # noqa: T201 (the command's output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
