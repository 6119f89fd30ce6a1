"""Per-frame body fit of real footage: mediapipe landmarks -> body pose, expression, gaze and a camera.

Pose, expression and gaze come from the live-driving retargeters (core.tracking.retarget), smoothed over time
with One-Euro filters, and converted to body arrays by core.body.frame. The body's orientation is
the one the retargeter measures relative to a camera that faces it, so the camera's rotation is fixed
(R_cam_world = diag(1, -1, -1): the project frame seen from +z) and only its translation is solved, by least
squares on the visible pose landmarks: the posed body's landmarks, projected, must land on the 2D ones. The
depth comes out of the body's known size and the assumed focal length. A frame fails (and is skipped by the
caller) with too few visible landmarks, a camera behind the body, or a reprojection error above a threshold.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.body.frame import BodyArrays, body_arrays_from_channels
from core.tracking.body_landmarks import ANKLE, ELBOW, HIP, KNEE, NOSE, NUM_POSE, SHOULDER, WRIST, pose_points
from core.tracking.body_skeleton import Skeleton, default_skeleton, forward_kinematics, rotvec_to_matrix
from core.tracking.filters import ChannelFilter
from core.tracking.types import Landmarks

log = logging.getLogger(__name__)

R_CAM_WORLD = np.diag([1.0, -1.0, -1.0])  # a camera on +z looking back at a person who faces +z (OpenCV axes)
EYE_OUTER, EAR = {"L": 2, "R": 5}, {"L": 7, "R": 8}  # mediapipe pose indices (person's own sides)
# Landmarks the camera solve uses, with weights: the limb joints are bone heads of the body model; the face
# points are fixed offsets in the head's frame (pose_points), looser, but they anchor upper-body shots.
FIT_POINTS: dict[int, float] = {
    NOSE: 0.5,
    **{m[s]: 0.5 for m in (EYE_OUTER, EAR) for s in "LR"},
    **{m[s]: 1.0 for m in (SHOULDER, ELBOW, WRIST, HIP, KNEE, ANKLE) for s in "LR"},
}
SKELETON_LINES: tuple[tuple[int, int], ...] = (
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
    (23, 25), (25, 27), (24, 26), (26, 28), (0, 7), (0, 8),
)  # fmt: skip


@dataclass(frozen=True)
class FitConfig:
    """Knobs of the per-frame fit."""

    focal_factor: float = 1.2  # unknown lens: focal = factor x the frame's longer side (about 43 mm full-frame)
    min_visibility: float = 0.5  # pose landmarks seen less than this are not used
    min_points: int = 5  # fewer usable landmarks than this: the fit fails
    max_reproj: float = 0.08  # RMS reprojection error / person size in pixels above which the fit fails
    min_cutoff: float = 1.0  # One-Euro smoothing of the channels and the camera (Hz at rest)
    beta: float = 0.05  # One-Euro speed coefficient


class FitFailed(Exception):
    """A frame whose body fit failed; the message is the reason written into the report."""


@dataclass(frozen=True)
class FrameFit:
    """The fitted body and camera of one frame (frame pixels, project frame)."""

    body: BodyArrays  # smoothed pose, expression, gaze, translation
    K: np.ndarray  # [3, 3] assumed intrinsics of the full frame
    T_cam_world: np.ndarray  # [4, 4]
    points_world: np.ndarray  # [33, 3] pose landmarks of the fitted body
    points_uv: np.ndarray  # [33, 2] those landmarks projected into the frame (pixels)
    used: np.ndarray  # [33] bool: landmarks the camera solve used
    reproj_px: float  # RMS distance of the used landmarks to mediapipe's (pixels)
    person_px: float  # size of the person in the frame (pixels): the larger side of the used landmarks' box


def solve_translation(
    P: np.ndarray,  # [K, 3] points already rotated into camera axes (R_cam_world @ X), not yet translated
    uv: np.ndarray,  # [K, 2] observed pixels
    w: np.ndarray,  # [K] weights >= 0
    K: np.ndarray,  # [3, 3] intrinsics
    iters: int = 5,
) -> np.ndarray:
    """Camera translation t [3] minimising the weighted squared reprojection error of P + t: a linear solve
    of the cross-multiplied projection equations, then Gauss-Newton on the pixel error."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    du, dv = uv[:, 0] - cx, uv[:, 1] - cy
    z = np.zeros_like(du)
    # fx (Px + tx) = du (Pz + tz)  and  fy (Py + ty) = dv (Pz + tz)
    A = np.concatenate([np.stack([fx + z, z, -du], 1), np.stack([z, fy + z, -dv], 1)])  # [2K, 3]
    b = np.concatenate([du * P[:, 2] - fx * P[:, 0], dv * P[:, 2] - fy * P[:, 1]])  # [2K]
    sw = np.sqrt(np.concatenate([w, w]))
    t = np.linalg.lstsq(A * sw[:, None], b * sw, rcond=None)[0]
    for _ in range(iters):
        X = P + t
        zc = np.maximum(X[:, 2], 1e-3)
        r = np.concatenate([fx * X[:, 0] / zc + cx - uv[:, 0], fy * X[:, 1] / zc + cy - uv[:, 1]])
        J = np.concatenate(
            [np.stack([fx / zc, z, -fx * X[:, 0] / zc**2], 1), np.stack([z, fy / zc, -fy * X[:, 1] / zc**2], 1)]
        )
        step = np.linalg.lstsq(J * sw[:, None], -r * sw, rcond=None)[0]
        t = t + step
        if np.linalg.norm(step) < 1e-7:
            break
    return t


def project_points(X: np.ndarray, K: np.ndarray, T_cam_world: np.ndarray) -> np.ndarray:
    """World points [..., 3] -> pixels [..., 2] (points behind the camera get NaN)."""
    Xc = X @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    z = Xc[..., 2:3]
    uv = (Xc @ K.T)[..., :2] / np.where(z > 1e-6, z, np.nan)
    return uv


def landmarks_of_body(sk: Skeleton, body: BodyArrays) -> np.ndarray:
    """The 33 pose landmarks [33, 3] (project frame) of the skeleton posed by `body` (BodyParams convention)."""
    x, G = forward_kinematics(sk, rotvec_to_matrix(body.pose))
    return pose_points(sk, x + body.translation, G)


def fit_camera(
    points_world: np.ndarray,  # [33, 3] landmarks of the posed body
    pose: np.ndarray,  # [33, 4] mediapipe pose landmarks: normalised x, y, z, visibility
    size: tuple[int, int],  # (W, H) of the frame
    K: np.ndarray,  # [3, 3]
    cfg: FitConfig,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """-> (T_cam_world [4, 4], used [33] bool, RMS reprojection px, person size px); raises FitFailed."""
    W, H = size
    idx = np.array(sorted(FIT_POINTS))
    uv_all = pose[:, :2].astype(np.float64) * np.array([W, H])
    inside = (pose[:, 0] > -0.02) & (pose[:, 0] < 1.02) & (pose[:, 1] > -0.02) & (pose[:, 1] < 1.02)
    seen = (np.nan_to_num(pose[:, 3]) >= cfg.min_visibility) & inside
    used = np.zeros(NUM_POSE, bool)
    used[idx] = seen[idx]
    n_body = int(sum(used[i] for i, wt in FIT_POINTS.items() if wt >= 1.0))
    if used.sum() < cfg.min_points or n_body < 2:
        raise FitFailed(
            f"fit failed: {int(used.sum())} usable pose landmarks ({n_body} body joints); "
            f"at least {cfg.min_points} (2 body joints) are needed"
        )
    P = points_world[used] @ R_CAM_WORLD.T
    w = np.array([FIT_POINTS[i] for i in np.nonzero(used)[0]])
    t = solve_translation(P, uv_all[used], w, K)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R_CAM_WORLD, t
    if not np.all(P[:, 2] + t[2] > 0.05):
        raise FitFailed("fit failed: the solved camera is not in front of the body")
    uv = project_points(points_world[used], K, T)
    rms = float(np.sqrt(np.mean(np.sum((uv - uv_all[used]) ** 2, -1))))
    span = uv_all[used].max(0) - uv_all[used].min(0)
    person = float(max(span.max(), 1.0))
    if rms > cfg.max_reproj * person:
        raise FitFailed(
            f"fit failed: reprojection error {rms:.1f} px is {100 * rms / person:.0f}% of the person's "
            f"{person:.0f} px (limit {100 * cfg.max_reproj:.0f}%)"
        )
    return T, used, rms, person


def assumed_intrinsics(size: tuple[int, int], focal_factor: float) -> np.ndarray:
    """K [3, 3] of an unknown lens: focal = focal_factor x the longer side, principal point at the centre."""
    W, H = size
    f = focal_factor * max(W, H)
    return np.array([[f, 0.0, W / 2], [0.0, f, H / 2], [0.0, 0.0, 1.0]])


class BodyFitter:
    """Landmarks of consecutive frames -> FrameFit per frame (smoothed over time). Not thread-safe."""

    def __init__(
        self,
        bone_names: Sequence[str],  # [J] of the body the arrays are for
        expression_names: Sequence[str],  # [E]
        *,
        config: FitConfig | None = None,
        skeleton: Skeleton | None = None,
    ) -> None:
        from core.tracking.retarget import Retargeter  # noqa: PLC0415

        self.cfg = config or FitConfig()
        self.skeleton = skeleton or default_skeleton()
        if tuple(self.skeleton.names) != tuple(bone_names):
            raise ValueError("the skeleton's bones differ from the body's: pass the skeleton of the same body model")
        self.bone_names, self.expression_names = tuple(bone_names), tuple(expression_names)
        self.retarget = Retargeter(face=True, body=True, hands=True)
        self.channel_filter = ChannelFilter(min_cutoff=self.cfg.min_cutoff, beta=self.cfg.beta)
        # The camera translation is smoothed as metres (One-Euro's root.* channels) by a filter of its own.
        self.camera_filter = ChannelFilter(min_cutoff=self.cfg.min_cutoff, beta=self.cfg.beta)

    def __call__(
        self,
        lm: Landmarks,
        size: tuple[int, int],  # (W, H) of the frame the landmarks were normalised by
        t: float,  # seconds (frame time, for the filters)
        K: np.ndarray | None = None,  # [3, 3] frame intrinsics (default: assumed_intrinsics)
    ) -> FrameFit:
        """Fit one frame; raises FitFailed with the reason."""
        if lm.pose is None or lm.pose_world is None:
            raise FitFailed("fit failed: no body landmarks (the pose model found nobody)")
        channels = self.channel_filter(self.retarget(lm), t)
        body = body_arrays_from_channels(channels, self.bone_names, self.expression_names)
        K = assumed_intrinsics(size, self.cfg.focal_factor) if K is None else np.asarray(K, np.float64)
        points = landmarks_of_body(self.skeleton, body)
        T, used, _, person = fit_camera(points, np.asarray(lm.pose, np.float64), size, K, self.cfg)
        smooth = self.camera_filter({f"root.{a}": v for a, v in zip("xyz", T[:3, 3], strict=True)}, t)
        T[:3, 3] = [smooth[f"root.{a}"] for a in "xyz"]
        uv = project_points(points, K, T)
        obs = np.asarray(lm.pose, np.float64)[:, :2] * np.array(size)
        rms = float(np.sqrt(np.mean(np.sum((uv[used] - obs[used]) ** 2, -1))))
        return FrameFit(body, K, T, points, uv, used, rms, person)

    def reset(self) -> None:
        self.retarget.reset()
        self.channel_filter.reset()
        self.camera_filter.reset()
