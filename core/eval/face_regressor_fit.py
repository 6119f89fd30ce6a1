"""An experiment: reading face expressions with a ridge regression from face measurements to ARKit
coefficients, fitted on renders of synthetic training identities with known coefficients.

    python -m core.eval.face_regressor_fit [--identities 40] [--frames 24] [--data runs/face_frames.npz]
        [--out runs/face_regressor.npz]
    python -m core.eval.tracking_face --learned runs/face_regressor.npz     # compared with the geometric rules

Each training identity (the world's "train" split; "wild-test" stays unseen for the accuracy evaluation) is
filmed close up, first neutral (its calibration), then with random sparse mixes of the expression channels at
random strengths, head rotations and gazes. The features are the geometric retargeter's measurements minus the
identity's neutral ones, plus the head rotation (so the fit can undo what a turned head does to the
measurements); the targets are the true coefficients of `EXPRESSION_CHANNELS`. `FaceRetargeter(reading=
"learned", regressor=PATH)` uses it in place of the hand-set rules. It is not what the studio uses: fitted on
synthetic faces it reads real ones poorly (docs/RESULTS.md, "Live driving accuracy: the face").
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from core.tracking.face_regressor import DEFAULT_REGRESSOR, FaceRegressor, features

log = logging.getLogger(__name__)


def random_expression(rng: np.random.Generator, channels: tuple[str, ...]) -> dict[str, float]:
    """A sparse mix: one to three channels (a left/right pair counts once, often both sides) at random strengths."""
    out: dict[str, float] = {}
    for _ in range(int(rng.integers(1, 4))):
        name = channels[int(rng.integers(len(channels)))]
        v = float(rng.uniform(0.2, 1.0))
        out[name] = v
        for a, b in (("Left", "Right"), ("Right", "Left")):
            if name.endswith(a) and rng.uniform() < 0.6 and name[: -len(a)] + b in channels:
                out[name[: -len(a)] + b] = v
    if "jawLeft" in out and "jawRight" in out:
        del out["jawRight"]
    return out


def collect(*, identities: int, frames: int, size: int = 256, world_seed: int = 0, split: str = "train"):
    """(features [N, F], targets [N, C], measurement names) from rendered, tracked training faces."""
    from core.data.seeds import identity_seed, rng_for
    from core.eval.face_renders import SyntheticFaceCamera
    from core.eval.tracking_face import random_head_and_gaze
    from core.tracking.face import EXPRESSION_CHANNELS, FaceRetargeter
    from core.tracking.landmarks import Tracker

    X, Y, names = [], [], None
    for i in range(identities):
        cam = SyntheticFaceCamera(identity_seed(world_seed, split, i), size=size)
        rng = rng_for("face-regressor", world_seed, split, i)
        ret = FaceRetargeter()
        with Tracker(face=True, body=False, hands=False) as tracker:
            if not ret.set_neutral(tracker.track(cam.render(), 0)):
                log.info("identity %d: no face in the neutral frame; skipped", i)
                continue
            for f in range(1, frames):
                expr = random_expression(rng, EXPRESSION_CHANNELS)
                head, gaze = random_head_and_gaze(rng)
                obs = ret.observe(tracker.track(cam.render(expr, head_deg=head, gaze_deg=gaze), f))
                if obs is None:
                    continue
                names = names or tuple(sorted(obs.measurements))
                X.append(features(names, obs.measurements, ret.neutral, obs.R_world_head))
                Y.append([expr.get(c, 0.0) for c in EXPRESSION_CHANNELS])
        log.info("identity %d/%d: %d samples so far", i + 1, identities, len(X))
    if len(X) < 20:
        raise RuntimeError(f"only {len(X)} tracked training frames: too few to fit a regressor")
    return np.array(X), np.array(Y), names


def fit(X: np.ndarray, Y: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """Ridge weights [F, C] (the bias column, the last, is not penalised)."""
    F = X.shape[1]
    reg = ridge * len(X) * np.eye(F)
    reg[-1, -1] = 0.0
    return np.linalg.solve(X.T @ X + reg, X.T @ Y)


def main(argv: list[str] | None = None) -> int:
    from core.tracking.face import EXPRESSION_CHANNELS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--identities", type=int, default=40, help="training identities")
    p.add_argument("--frames", type=int, default=24, help="frames per identity (the first is the neutral)")
    p.add_argument("--ridge", type=float, default=1e-2)
    p.add_argument("--out", type=Path, default=DEFAULT_REGRESSOR)
    p.add_argument("--data", type=Path, default=None, help="keep the tracked frames here (reused when present)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    if args.data is not None and args.data.is_file():
        with np.load(args.data) as z:
            X, Y, names = z["X"], z["Y"], tuple(str(s) for s in z["names"])
        log.info("reusing %d tracked frames from %s", len(X), args.data)
    else:
        X, Y, names = collect(identities=args.identities, frames=args.frames)
        if args.data is not None:
            args.data.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(args.data, X=X, Y=Y, names=np.array(names))
    W = fit(X, Y, args.ridge)
    pred = np.clip(X @ W, 0, 1)
    info = {
        "split": "train", "identities": args.identities, "frames": args.frames, "samples": len(X),
        "ridge": args.ridge, "train_mae": round(float(np.abs(pred - Y).mean()), 4),
        "train_zero_mae": round(float(np.abs(Y).mean()), 4), "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    FaceRegressor(names, tuple(EXPRESSION_CHANNELS), W, info).save(args.out)
    log.info("fitted on %d frames (train MAE %.3f) -> %s", len(X), info["train_mae"], args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
