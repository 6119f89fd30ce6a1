"""How well real-footage ingestion recovers a rendered clip whose truth is known, and a picture of a fit.

`ingest_error` compares an ingested clip with the synthetic wild clip it was made from (same image size):
detection rate, mask IoU, head-box centre error, 2D joint reprojection error, 3D joint position error after
root alignment (in each clip's camera frame, so the unknown world frame of the footage does not matter), and
the relative error of the head depth (the estimate rescaled by the true focal length, which footage does not tell).
"""

from __future__ import annotations

import numpy as np

from core.data.shards import Sample

# Joints compared (bone heads that mediapipe's pose landmarks stand for) and the root that aligns them.
EVAL_JOINTS: tuple[str, ...] = tuple(
    f"{b}.{s}" for b in ("upperarm01", "lowerarm01", "wrist", "upperleg01", "lowerleg01", "foot") for s in "LR"
) + ("head",)
ROOT_JOINTS: tuple[str, ...] = ("upperleg01.L", "upperleg01.R")  # mid-hip


def _joints(body, arrays: dict, prefix: str, frames: list[int]) -> np.ndarray:
    """World joints [F, J, 3] of the body that `prefix`_* arrays describe, at `frames`."""
    import torch  # noqa: PLC0415

    t = lambda x: torch.as_tensor(np.asarray(x)[frames], dtype=torch.float32)  # noqa: E731
    phen = dict(zip(body.phenotype_names, np.asarray(arrays[f"{prefix}shape"]).tolist(), strict=True))
    return (
        body.pose(
            phen,
            t(arrays[f"{prefix}pose"]),
            t(arrays[f"{prefix}translation"]),
            t(arrays[f"{prefix}expression"]),
            t(arrays[f"{prefix}gaze"]),
        )
        .joints.float()
        .numpy()
    )


def _to_camera(X: np.ndarray, T: np.ndarray) -> np.ndarray:
    """World points [F, J, 3] -> camera frame with T_cam_world [F, 4, 4]."""
    return np.einsum("fab,fjb->fja", T[:, :3, :3], X) + T[:, None, :3, 3]


def _project(Xc: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera points [F, J, 3] -> pixels [F, J, 2] with K [F, 3, 3]."""
    p = np.einsum("fab,fjb->fja", K, Xc)
    return p[..., :2] / np.maximum(p[..., 2:3], 1e-6)


def ingest_error(gt: Sample, est: Sample, kept: list[int], *, camera: int = 0) -> dict[str, float]:
    """Errors of the ingested clip `est` (its frames are `kept` frames of `gt`) against the truth `gt`.

    Keys: detection_rate, mask_iou, head_centre_px, head_depth_rel, and where `est` holds a body fit
    (est_pose ...): joint_reproj_px (mean over EVAL_JOINTS of the 2D distance between the fitted joints seen
    by the estimated camera and the true joints seen by the true camera), joint_error_mm (3D, camera frame,
    after moving both mid-hips to the origin; the estimate's depth rescaled by the true focal length first).
    """
    from core.data.body_bridge import world_body  # noqa: PLC0415

    if est.rgb.shape[2:4] != gt.rgb.shape[2:4]:
        raise ValueError(f"ingest at the ground truth's size: est {est.rgb.shape[2:4]} vs gt {gt.rgb.shape[2:4]}")
    if len(kept) != est.num_frames:
        raise ValueError(f"kept lists {len(kept)} frames but the estimate has {est.num_frames}")
    mean = lambda v: float(np.mean(v)) if len(v) else float("nan")  # noqa: E731
    out = {"detection_rate": len(kept) / gt.num_frames}
    if not kept:
        return out | {k: float("nan") for k in ("mask_iou", "head_centre_px", "head_depth_rel")}
    a, e = gt.arrays, est.arrays
    ious, centre = [], []
    for i, f in enumerate(kept):
        m_gt, m_est = gt.mask[f, camera] > 127, est.mask[i, 0] > 127
        ious.append((m_gt & m_est).sum() / max(1, (m_gt | m_est).sum()))
        hb_gt, hb_est = a["head_box"][f, camera], e["head_box"][i, 0]
        centre.append(float(np.linalg.norm((hb_gt[:2] + hb_gt[2:]) / 2 - (hb_est[:2] + hb_est[2:]) / 2)))
    out |= {"mask_iou": mean(ious), "head_centre_px": mean(centre)}

    body = world_body()
    K_gt, T_gt = a["K"][kept, camera].astype(np.float64), a["T_cam_world"][kept, camera].astype(np.float64)
    K_est, T_est = e["K"][:, 0].astype(np.float64), e["T_cam_world"][:, 0].astype(np.float64)
    focal_ratio = K_gt[:, 0, 0] / K_est[:, 0, 0]  # [F] depth scales with the focal length for a fixed image
    jx = [body.bone_index[n] for n in EVAL_JOINTS]
    root = [body.bone_index[n] for n in ROOT_JOINTS]
    head = body.bone_index["head"]
    Xg = _to_camera(_joints(body, a, "gt_", kept), T_gt)  # [F, J, 3]
    if "est_pose" in e:
        Xe = _to_camera(_joints(body, e, "est_", list(range(len(kept)))), T_est)
    else:  # a clip without a body fit: the reference body's head where the camera put it
        Xe = np.zeros_like(Xg)
        Xe[:, head] = (T_est[:, :3, :3] @ np.array([0.0, 1.5, 0.0]) + T_est[:, :3, 3])[:, :]
    z_gt, z_est = Xg[:, head, 2], Xe[:, head, 2] * focal_ratio
    out["head_depth_rel"] = mean(np.abs(z_est - z_gt) / z_gt)
    if "est_pose" not in e:
        return out | {"joint_reproj_px": float("nan"), "joint_error_mm": float("nan")}
    uv_gt, uv_est = _project(Xg[:, jx], K_gt), _project(Xe[:, jx], K_est)
    out["joint_reproj_px"] = mean(np.linalg.norm(uv_gt - uv_est, axis=-1).ravel())
    Xe_scaled = Xe * focal_ratio[:, None, None]
    rel_g = Xg[:, jx] - Xg[:, root].mean(1, keepdims=True)
    rel_e = Xe_scaled[:, jx] - Xe_scaled[:, root].mean(1, keepdims=True)
    out["joint_error_mm"] = 1000.0 * mean(np.linalg.norm(rel_g - rel_e, axis=-1).ravel())
    return out


def draw_fit(
    sample: Sample,  # an ingested clip
    frame: int,
    *,
    pose_uv: np.ndarray | None = None,  # [33, 2] mediapipe's landmarks in the sample's pixels (drawn as dots)
    truth_uv: np.ndarray | None = None,  # [J, 2] true joints in pixels (drawn as green crosses)
) -> np.ndarray:
    """[H, 3W, 3] uint8: the frame, its mask over it, and the fitted body's skeleton projected by its camera."""
    import cv2  # noqa: PLC0415

    from core.body.frame import BodyArrays  # noqa: PLC0415
    from core.data.video_fit import SKELETON_LINES, landmarks_of_body, project_points  # noqa: PLC0415
    from core.tracking.body_skeleton import default_skeleton  # noqa: PLC0415

    a = sample.arrays
    rgb = sample.rgb[frame, 0].copy()
    H, W = rgb.shape[:2]
    m = sample.mask[frame, 0] > 127
    tint = rgb.copy()
    tint[m] = (0.45 * tint[m] + 0.55 * np.array([255, 80, 200])).astype(np.uint8)
    tint[~m] = (tint[~m] * 0.35).astype(np.uint8)
    skel = rgb.copy()
    body = BodyArrays(
        a["est_pose"][frame], a["est_expression"][frame], a["est_gaze"][frame], a["est_translation"][frame]
    )
    uv = project_points(landmarks_of_body(default_skeleton(), body), a["K"][frame, 0], a["T_cam_world"][frame, 0])
    thick = max(1, round(W / 160))
    if pose_uv is not None:
        for p in pose_uv:
            if np.isfinite(p).all():
                cv2.circle(skel, (int(p[0]), int(p[1])), thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
    for i, j in SKELETON_LINES:
        if np.isfinite(uv[[i, j]]).all():
            p, q = (tuple(int(round(c)) for c in uv[k]) for k in (i, j))
            cv2.line(skel, p, q, (255, 200, 0), thick, cv2.LINE_AA)
    for k in np.unique(np.array(SKELETON_LINES)):
        if np.isfinite(uv[k]).all():
            cv2.circle(skel, (int(uv[k, 0]), int(uv[k, 1])), thick + 1, (255, 60, 0), -1, cv2.LINE_AA)
    if truth_uv is not None:
        for p in truth_uv:
            c = (int(p[0]), int(p[1]))
            cv2.drawMarker(skel, c, (0, 255, 0), cv2.MARKER_CROSS, 4 * thick + 2, thick, cv2.LINE_AA)
    x0, y0, x1, y1 = (int(round(v)) for v in a["head_box"][frame, 0])
    cv2.rectangle(skel, (x0, y0), (x1, y1), (0, 220, 255), thick)
    return np.concatenate([rgb, tint, skel], axis=1)
