"""An experiment: reading face expressions with a ridge regression from face measurements to ARKit
coefficients (fitted by `python -m core.eval.face_regressor_fit` on renders of synthetic training identities
with known coefficients; its docstring describes the data). This module is what a tracker reads with: the
features and the fitted regressor. It is not what the studio uses: fitted on synthetic faces it reads real ones
poorly (docs/RESULTS.md, "Live driving accuracy: the face").
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.tracking.face_geometry import rotvec_from_matrix

log = logging.getLogger(__name__)

DEFAULT_REGRESSOR = Path(__file__).resolve().parents[2] / "runs" / "face_regressor.npz"


def features(
    names: tuple[str, ...], measurements: dict[str, float], neutral: dict[str, float], R_world_head: np.ndarray
) -> np.ndarray:
    """[measurement deltas in `names` order, head rotation vector, 1]: the regressor's input."""
    d = [measurements[k] - neutral[k] for k in names]
    return np.concatenate([d, rotvec_from_matrix(R_world_head), [1.0]])


@dataclass(frozen=True)
class FaceRegressor:
    """coefficients = clip([measurement deltas, head rotvec, 1] @ weights, 0, 1)."""

    measurements: tuple[str, ...]  # feature order
    channels: tuple[str, ...]  # output order (ARKit names)
    weights: np.ndarray  # [len(measurements) + 3 + 1, len(channels)]
    info: dict

    def __call__(self, measurements: dict[str, float], neutral: dict[str, float], R_world_head: np.ndarray) -> dict:
        y = np.clip(features(self.measurements, measurements, neutral, R_world_head) @ self.weights, 0.0, 1.0)
        return {c: float(v) for c, v in zip(self.channels, y, strict=True)}

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            weights=self.weights.astype(np.float32),
            measurements=np.array(self.measurements),
            channels=np.array(self.channels),
            info=np.array(json.dumps(self.info)),
        )
        tmp.replace(path)
        return path


@functools.cache
def load_face_regressor(path: Path | str | None = None) -> FaceRegressor:
    """A regressor written by this module's command (default: runs/face_regressor.npz); a clear error when unusable."""
    path = Path(path) if path is not None else DEFAULT_REGRESSOR
    if not path.is_file():
        raise FileNotFoundError(
            f"face regressor {path} is missing: fit it with `python -m core.eval.face_regressor_fit --out {path}`"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            reg = FaceRegressor(
                tuple(str(s) for s in z["measurements"]),
                tuple(str(s) for s in z["channels"]),
                z["weights"].astype(np.float64),
                json.loads(str(z["info"])),
            )
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(
            f"face regressor {path} is not readable ({e}); refit it with `python -m core.eval.face_regressor_fit`"
        ) from e
    if reg.weights.shape != (len(reg.measurements) + 4, len(reg.channels)):
        raise ValueError(
            f"face regressor {path}: weights {reg.weights.shape} do not match its measurements and channels"
        )
    return reg
