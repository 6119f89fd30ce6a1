"""Accuracy of body retargeting: joint position error against ground truth.

Two measurements:
- `evaluate_rendered`: held-out synthetic people (core.data, split "wild-test") perform motion clips, rendered
  at 640x480 from a camera in front of them (random azimuth), tracked by mediapipe (core.tracking.landmarks),
  retargeted, and the body model posed with the recovered channels is compared with the true pose.
- `evaluate_ik`: the inverse kinematics alone, fed the landmarks the true skeleton gives (plus optional noise).

Errors are mean per-joint position errors (mm) on 12 joints (hips, knees, ankles, shoulders, elbows, wrists)
after moving both skeletons' mid-hips to the origin (MPJPE), and after also the best rotation (PA-MPJPE).
The truth is seen as the camera sees it: a person filmed from 30 degrees to their left should be driven
turned 30 degrees, since the avatar reproduces what the camera shows.

    python -m core.eval.tracking_body --out bench/results/tracking_body.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from core.body.frame import rotations_from_channels  # noqa: F401  (re-exported)
from core.io import save_image_bgr, write_json
from core.tracking.body import BodyRetargeter
from core.tracking.body_landmarks import hand_points, pose_points
from core.tracking.body_skeleton import Skeleton, default_skeleton, forward_kinematics, local_rotations
from core.tracking.types import Landmarks

log = logging.getLogger(__name__)

MAIN_JOINTS: tuple[str, ...] = tuple(
    f"{b}.{s}" for b in ("upperleg01", "lowerleg01", "foot", "upperarm01", "lowerarm01", "wrist") for s in "LR"
)
ARM_JOINTS = tuple(j for j in MAIN_JOINTS if j.startswith(("upperarm", "lowerarm", "wrist")))
FLIP = np.diag([1.0, -1.0, -1.0])  # project frame <-> OpenCV camera axes of a camera facing the person


def posed_joints(sk: Skeleton, rotations_deg: Mapping[str, Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics of a PoseEdit-style pose -> (heads [J, 3], world rotations [J, 3, 3])."""
    return forward_kinematics(sk, local_rotations(sk, {k: np.asarray(v, float) for k, v in rotations_deg.items()}))


def landmarks_from_pose(
    sk: Skeleton,
    rotations_deg: Mapping[str, Sequence[float]],  # {bone: axis-angle degrees [3]}
    *,
    view: np.ndarray | None = None,  # [3, 3] world -> OpenCV camera rotation; None: a camera facing the person
    noise_m: float = 0.0,
    rng: np.random.Generator | None = None,
    hands: bool = True,
    frame_index: int = 0,
) -> Landmarks:
    """The landmarks mediapipe would report for a posed skeleton if it were exact (plus Gaussian noise)."""
    rng = rng or np.random.default_rng(0)
    R = FLIP if view is None else np.asarray(view, float)
    x, G = posed_joints(sk, rotations_deg)
    P = pose_points(sk, x, G)
    P = (P - 0.5 * (P[23] + P[24])) @ R.T  # hip-centred, camera axes

    def noisy(p: np.ndarray) -> np.ndarray:
        return p + rng.normal(0.0, noise_m, p.shape) if noise_m > 0 else p

    out = {}
    if hands:
        for side, key in (("L", "left_hand_world"), ("R", "right_hand_world")):
            H = hand_points(sk, x, G, side)
            out[key] = noisy((H - H.mean(0)) @ R.T)
    return Landmarks(
        frame_index=frame_index, image_size=(640, 480), pose=np.c_[np.zeros((33, 3)), np.ones(33)],
        pose_world=noisy(P), **out,
    )  # fmt: skip


def joint_errors_mm(
    sk: Skeleton,
    pred: np.ndarray,  # [J, 3] posed heads from the recovered pose
    true: np.ndarray,  # [J, 3] posed heads of the true pose, already in the expected orientation
    joints: Sequence[str] = MAIN_JOINTS,
) -> tuple[np.ndarray, np.ndarray]:
    """-> (per-joint errors [K] after mid-hip alignment, per-joint errors [K] after also the best rotation), mm."""
    idx = [sk.index(j) for j in joints]
    hips = [sk.index("upperleg01.L"), sk.index("upperleg01.R")]
    a = pred[idx] - pred[hips].mean(0)
    b = true[idx] - true[hips].mean(0)
    U, _, Vt = np.linalg.svd(a.T @ b)  # Kabsch: rotation taking a onto b
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = (U @ D @ Vt).T
    return np.linalg.norm(a - b, axis=1) * 1e3, np.linalg.norm(a @ R.T - b, axis=1) * 1e3


def _summary(errors: list[np.ndarray], pa: list[np.ndarray], rest: list[np.ndarray]) -> dict:
    E, P, B = np.stack(errors), np.stack(pa), np.stack(rest)  # [F, K]
    arms = [MAIN_JOINTS.index(j) for j in ARM_JOINTS]
    legs = [i for i in range(len(MAIN_JOINTS)) if i not in arms]
    return {
        "frames": int(E.shape[0]),
        "mpjpe_mm": float(E.mean()),
        "pa_mpjpe_mm": float(P.mean()),
        "arms_mm": float(E[:, arms].mean()),
        "legs_mm": float(E[:, legs].mean()),
        "rest_pose_baseline_mm": float(B.mean()),
        "per_joint_mm": {j: float(E[:, i].mean()) for i, j in enumerate(MAIN_JOINTS)},
    }


def _motion_poses(sk: Skeleton, count: int, frames: int, seed: int) -> list[list[dict[str, np.ndarray]]]:
    """`count` motion clips of the synthetic world, `frames` each, as lists of {bone: degrees [3]}."""
    from core.data.motion import MOTIONS, generate_motion

    rng = np.random.default_rng(seed)
    motions = [m for m in MOTIONS if m not in ("idle", "talk")]
    clips = []
    for c in range(count):
        rot, _, _ = generate_motion(rng, sk.names, frames, motion=motions[c % len(motions)])
        clips.append([{n: np.degrees(rot[f, j]) for j, n in enumerate(sk.names)} for f in range(frames)])
    return clips


def evaluate_ik(noise_mm: Sequence[float] = (0.0, 10.0, 25.0), *, clips: int = 6, frames: int = 12, seed: int = 0):
    """Retargeting alone on exact (or noisy) landmarks of the true skeleton: {noise: summary}."""
    sk = default_skeleton()
    poses = [p for clip in _motion_poses(sk, clips, frames, seed) for p in clip]
    rest, _ = posed_joints(sk, {})
    out = {}
    for noise in noise_mm:
        rng = np.random.default_rng(seed + 1)
        errs, pas, base = [], [], []
        for k, pose in enumerate(poses):
            lm = landmarks_from_pose(sk, pose, noise_m=noise / 1e3, rng=rng, hands=False, frame_index=k)
            pred, _ = posed_joints(sk, rotations_from_channels(BodyRetargeter(hands=False)(lm)))
            true, _ = posed_joints(sk, pose)
            e, p = joint_errors_mm(sk, pred, true)
            errs.append(e)
            pas.append(p)
            base.append(joint_errors_mm(sk, rest, true)[0])
        out[f"{noise:g}mm"] = _summary(errs, pas, base)
    return out


def evaluate_rendered(
    *, identities: int = 6, frames: int = 16, width: int = 640, height: int = 480, seed: int = 0, save_dir=None
) -> dict:
    """Rendered clips of held-out synthetic people -> mediapipe -> retargeting -> joint errors (see module doc)."""
    import torch

    from core.data.body_bridge import world_body
    from core.data.cameras import intrinsics, look_at_matrix, to_camera
    from core.data.identity import build_identity
    from core.data.identity_spec import draw_identity_spec
    from core.data.render import lit_gaussians, pose_identity, render_views
    from core.data.seeds import identity_seed
    from core.raster.lighting import uniform_lighting
    from core.tracking.body_skeleton import skeleton_from_body
    from core.tracking.landmarks import Tracker

    body = world_body()
    sk_default = default_skeleton()
    clips = _motion_poses(sk_default, identities, frames, seed)
    rng = np.random.default_rng(seed + 7)
    E = len(body.expression_names)
    errs, pas, base, ms, detected, total = [], [], [], [], 0, 0
    examples = []
    for i, clip in enumerate(clips):
        spec = draw_identity_spec(identity_seed(seed, "wild-test", i))
        ident = build_identity(spec, body, detail=0.5)
        sk = skeleton_from_body(body.model, body.shape_vector(spec.phenotype).float())
        azimuth = rng.uniform(-30.0, 30.0)
        a = math.radians(azimuth)
        eye = np.array([3.2 * math.sin(a), 1.0, 3.2 * math.cos(a)])
        T = look_at_matrix(eye, np.array([0.0, 0.9, 0.0]))
        camera = to_camera(intrinsics(1.0 * width, width, height)[None], T[None], width, height)
        view = FLIP @ T[:3, :3]  # what a camera-facing person looks like from this camera, in project axes
        rest, _ = posed_joints(sk, {})
        retarget = BodyRetargeter()
        with Tracker(face=False, body=True, hands=True, body_every=1, hands_every=1) as tracker:
            for f, pose in enumerate(clip):
                rot = torch.zeros(1, len(sk.names), 3, dtype=torch.float64)
                for j, n in enumerate(sk.names):
                    rot[0, j] = torch.from_numpy(np.radians(pose[n]))
                zeros = torch.zeros(1, 3, dtype=torch.float64)
                posed = pose_identity(ident, body, rot, zeros, torch.zeros(1, E, dtype=torch.float64), zeros[:, :2])
                color, alpha, _ = render_views(
                    lit_gaussians(ident, posed, 0, uniform_lighting(1.0)), camera, with_parts=False
                )
                img = (np.clip(color[0] + 0.55 * (1.0 - alpha[0, ..., None]), 0, 1) * 255).astype(np.uint8)
                lm = tracker.track(img, f)
                total += 1
                if lm.pose_world is None:
                    continue
                detected += 1
                t0 = time.perf_counter()
                channels = retarget(lm)
                ms.append((time.perf_counter() - t0) * 1e3)
                pred, _ = posed_joints(sk, rotations_from_channels(channels))
                true, _ = posed_joints(sk, pose)
                true = true @ view.T
                e, p = joint_errors_mm(sk, pred, true)
                errs.append(e)
                pas.append(p)
                base.append(joint_errors_mm(sk, rest, true)[0])
                if f == frames // 2:
                    examples.append((img, lm, channels, float(e.mean())))
        log.info("identity %d (%s): azimuth %.0f deg, running MPJPE %.1f mm", i, spec.top.kind, azimuth, np.mean(errs))
    if not errs:
        raise RuntimeError("mediapipe found no body in any rendered frame: nothing to measure")
    result = _summary(errs, pas, base)
    result.update(
        detection_rate=detected / total,
        retarget_ms_median=float(np.median(ms)),
        identities=identities,
        size=[width, height],
        camera_azimuth_deg="uniform in [-30, 30] per clip, 3.2 m, eye height 1.0 m, f = 1.0 x width",
        motions=[m for m in ("walk", "wave", "squat", "turn", "dance", "reach")][:identities],
    )
    if save_dir is not None:
        _save_examples(Path(save_dir), examples)
    return result


def _save_examples(folder: Path, examples: list) -> None:
    """Middle frame of each clip (uint8 RGB .npy) with its landmarks and channels, for pictures."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, (img, lm, channels, err) in enumerate(examples):
        np.savez_compressed(folder / f"example{k}.npz", image=img, pose=lm.pose, channels=json.dumps(channels), err=err)


POSE_EDGES = (
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
    (23, 25), (25, 27), (27, 31), (24, 26), (26, 28), (28, 32), (15, 19), (16, 20),
)  # fmt: skip


def draw_pose(image: np.ndarray, pose: np.ndarray | None, min_visibility: float = 0.5) -> np.ndarray:
    """A copy of an RGB image [H, W, 3] uint8 with the pose landmarks [33, 4] drawn (person's left in green)."""
    import cv2

    out = image.copy()
    if pose is None:
        return out
    h, w = out.shape[:2]
    px = [(int(round(p[0] * w)), int(round(p[1] * h))) for p in pose]
    for a, b in POSE_EDGES:
        if min(pose[a, 3], pose[b, 3]) >= min_visibility:
            left = a % 2 == 1 and b % 2 == 1 and a > 10
            cv2.line(out, px[a], px[b], (40, 220, 60) if left else (240, 120, 30), 2, cv2.LINE_AA)
    for i in range(11, 33):
        if pose[i, 3] >= min_visibility:
            cv2.circle(out, px[i], 3, (255, 255, 255), -1, cv2.LINE_AA)
    return out


def drive_figure(path: str | Path, *, seed: int = 0, size: int = 320) -> Path:
    """A picture: input frames with their pose landmarks next to a synthetic avatar driven by the recovered
    channels (two rendered held-out people and a real photo: scikit-image's astronaut)."""
    import cv2
    import torch
    from skimage import data as skdata

    from core.data.body_bridge import world_body
    from core.data.cameras import intrinsics, look_at_matrix, to_camera
    from core.data.identity import build_identity
    from core.data.identity_spec import draw_identity_spec
    from core.data.render import lit_gaussians, pose_identity, render_views
    from core.data.seeds import identity_seed
    from core.raster.lighting import uniform_lighting
    from core.tracking.landmarks import Tracker

    body = world_body()
    E, J = len(body.expression_names), body.num_bones
    sk = default_skeleton()

    def render(ident, rotations_deg, root_y, azimuth_deg=0.0, w=640, h=480) -> np.ndarray:
        rot = torch.zeros(1, J, 3, dtype=torch.float64)
        for n, v in rotations_deg.items():
            rot[0, body.bone_index[n]] = torch.from_numpy(np.radians(np.asarray(v, float)))
        trans = torch.tensor([[0.0, root_y, 0.0]], dtype=torch.float64)
        posed = pose_identity(ident, body, rot, trans, torch.zeros(1, E, dtype=torch.float64), trans[:, :2] * 0)
        a = math.radians(azimuth_deg)
        T = look_at_matrix(np.array([3.2 * math.sin(a), 1.0, 3.2 * math.cos(a)]), np.array([0.0, 0.9, 0.0]))
        cam = to_camera(intrinsics(1.0 * w, w, h)[None], T[None], w, h)
        color, alpha, _ = render_views(lit_gaussians(ident, posed, 0, uniform_lighting(1.0)), cam, with_parts=False)
        return (np.clip(color[0] + 0.55 * (1.0 - alpha[0, ..., None]), 0, 1) * 255).astype(np.uint8)

    avatar = build_identity(draw_identity_spec(identity_seed(seed, "wild-test", 99)), body, detail=0.5)
    clips = _motion_poses(sk, 3, 12, seed + 3)
    inputs = []
    for k, clip in enumerate(clips[1:3]):  # wave, squat
        person = build_identity(draw_identity_spec(identity_seed(seed, "wild-test", 20 + k)), body, detail=0.5)
        inputs.append(render(person, clip[10], 0.0 if k == 0 else -0.15))
    inputs.append(np.ascontiguousarray(skdata.astronaut()))
    rows = []
    for img in inputs:
        with Tracker(face=False, body=True, hands=False, body_every=1) as tracker:
            lm = tracker.track(img, 0)
        ch = BodyRetargeter()(lm) if lm.pose_world is not None else {}
        driven = render(avatar, rotations_from_channels(ch), ch.get("root.y", 0.0))
        tiles = []
        for tile in (draw_pose(img, lm.pose), driven):
            hh, ww = tile.shape[:2]
            s = size / max(hh, ww)
            tile = cv2.resize(tile, (round(ww * s), round(hh * s)), interpolation=cv2.INTER_AREA)
            canvas = np.full((size, size, 3), 140, np.uint8)
            y0, x0 = (size - tile.shape[0]) // 2, (size - tile.shape[1]) // 2
            canvas[y0 : y0 + tile.shape[0], x0 : x0 + tile.shape[1]] = tile
            tiles.append(canvas)
        rows.append(np.concatenate(tiles, axis=1))
    path = Path(path)
    save_image_bgr(path, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench/results/tracking_body.json")
    ap.add_argument("--identities", type=int, default=6)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--examples", default=None, help="folder for example frames (for docs pictures)")
    ap.add_argument("--figure", default=None, help="also draw input/driven pairs into this PNG")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.figure:
        log.info("wrote %s", drive_figure(args.figure))
    t0 = time.perf_counter()
    result = {
        "ik_only": evaluate_ik(),
        "rendered": evaluate_rendered(identities=args.identities, frames=args.frames, save_dir=args.examples),
        "seconds": None,
    }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(args.out, result)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
