"""The live anny model: construction (building its cache once, with progress) and its frame conversion.

Anny is z-up, in metres, facing -y, its root at the origin. The project frame is y-up, facing +z, feet near
y=0, so every anny quantity goes through one fixed transform T_project_anny = [R | (0, lift, 0)]:
R maps (x, y, z) -> (x, z, -y) (a -90 degree turn about x), and `lift` puts the lowest vertex of the
default body in its reference pose on y=0.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)

# Rows: project axes in anny coordinates. project = R @ anny.
R_PROJECT_ANNY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
ANNY_KWARGS: dict[str, Any] = dict(rig="anny", topology="anny", facial_actions="all")


def _cache_is_built() -> bool:
    from anny.models.model_data import CURRENT_DATA_VERSION
    from anny.paths import get_anny_cache_path

    folder = get_anny_cache_path() / f"v{CURRENT_DATA_VERSION}"
    return folder.is_dir() and any(folder.glob("build_compact_model_data_*.safetensors"))


def load_anny(skinning_method: str = "lbs") -> torch.nn.Module:
    """Construct anny (float64). The first construction builds an ~800 MB cache; it is announced and timed."""
    try:
        import anny
        from anny.paths import get_anny_cache_path
    except ImportError as e:
        raise ImportError(
            "The 'anny' body backend needs the anny package: `pip install \"anny>=0.6,<0.7\"`. "
            "Use backend='baked' to run from assets/body/anny_body.safetensors without it."
        ) from e
    if _cache_is_built():
        return anny.Anny(**ANNY_KWARGS, skinning_method=skinning_method)

    from tqdm import tqdm

    log.warning(
        "Building the anny model cache once in %s (about a minute on 2 cores, ~800 MB; "
        "set ANNY_CACHE_DIR to move it). Later constructions take under a second.",
        get_anny_cache_path(),
    )
    result: dict[str, Any] = {}

    def build() -> None:
        try:
            result["model"] = anny.Anny(**ANNY_KWARGS, skinning_method=skinning_method)
        except BaseException as e:  # re-raised in the caller's thread
            result["error"] = e

    worker = threading.Thread(target=build, daemon=True)
    start = time.monotonic()
    worker.start()
    with tqdm(desc="building anny cache", unit="s", bar_format="{desc}: {elapsed} elapsed") as bar:
        while worker.is_alive():
            worker.join(timeout=1.0)
            bar.update(1)
    if "error" in result:
        raise result["error"]
    log.info("anny cache built in %.0f s", time.monotonic() - start)
    return result["model"]


def anny_lift(model: torch.nn.Module) -> float:
    """Height that puts the lowest vertex of the default body, in its reference pose, on y=0 (project frame)."""
    with torch.no_grad():
        out = model()  # identity pose, default phenotype, root at anny's origin
        up = (out["vertices"][0].to(torch.float64) @ R_PROJECT_ANNY.T)[:, 1]
    return float(-up.min())


def T_project_anny(lift: float, dtype: torch.dtype = torch.float64) -> Tensor:
    """[4, 4] transform from anny's frame to the project frame."""
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = R_PROJECT_ANNY
    T[1, 3] = lift
    return T.to(dtype)


def to_anny_rotations(rot_project: Tensor) -> Tensor:
    """Per-bone world-aligned rotations [..., 3, 3] from project axes to anny axes: R^T D R."""
    R = R_PROJECT_ANNY.to(rot_project)
    return R.T @ rot_project @ R
