"""A coarse body estimate for a photo from its person box alone: the template body standing in its reference
pose, seen from the photo's view (front, side, back), with a camera whose focal length and principal point put
the body's projected outline on the box. What personalisation needs when no body tracker has run on the photo."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from core.body.lbs import skin_points
from core.model.crops import BodyEstimate
from core.model.rig import BodyRig
from core.raster.types import Camera

VIEW_YAW_DEG = {"front": 0.0, "side": 90.0, "back": 180.0, "unknown": 0.0}
DISTANCE = 3.0  # metres from the camera to the body's centre


def box_estimate(
    rig: BodyRig,
    box: tuple[float, float, float, float],  # x0, y0, x1, y1 pixels of the whole person
    size: tuple[int, int],  # (H, W) of the photo
    view: str = "front",
    shape: torch.Tensor | None = None,  # [S] identity shape; None: the template's
) -> BodyEstimate:
    """The body estimate whose rest-pose outline, projected by its camera, fills `box` (height-fitted, centred)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    H, W = size
    if not (x1 > x0 and y1 > y0) or H < 1 or W < 1:
        raise ValueError(
            f"box_estimate: expected a box x0 < x1, y0 < y1 inside a photo of H, W >= 1, got {box}, {size}"
        )
    if view not in VIEW_YAW_DEG:
        raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEW_YAW_DEG)}")
    params = rig.neutral_params(1)
    if shape is not None:
        params = params.with_(shape=shape.reshape(1, -1).to(params.shape))
    verts = rig.rest(params.shape if rig.num_shape else None)[0][0].to(torch.float64)  # [V, 3]
    lo, hi = verts.min(0).values, verts.max(0).values
    centre = (lo + hi) / 2
    yaw = math.radians(VIEW_YAW_DEG[view])
    eye = centre + DISTANCE * torch.tensor([math.sin(yaw), 0.0, math.cos(yaw)], dtype=torch.float64)
    cam = Camera.look_at(tuple(eye.tolist()), tuple(centre.tolist()), width=W, height=H, dtype=torch.float64)
    T = cam.T_cam_world
    pc = verts @ T[:3, :3].T + T[:3, 3]  # [V, 3] camera frame
    xn, yn = pc[:, 0] / pc[:, 2], pc[:, 1] / pc[:, 2]  # normalised image coordinates
    f = (y1 - y0) / float(yn.max() - yn.min())  # the body's projected height fills the box's
    cx = (x0 + x1) / 2 - f * float(xn.max() + xn.min()) / 2
    cy = (y0 + y1) / 2 - f * float(yn.max() + yn.min()) / 2
    K = torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], dtype=torch.float32)
    return BodyEstimate(params, Camera(K, T.to(torch.float32), W, H))


# The fit of a real photo: the body posed from its landmarks, and how well it matches the photo ------------------

REPROJ_WARN = 0.06  # RMS landmark error / person size above which a photo's fit is called poor
IOU_WARN = 0.6  # silhouette IoU (fitted body vs person mask) below which a photo's fit is called poor


@dataclass(frozen=True)
class PhotoFit:
    """A photo's body estimate and how well it agrees with the photo (what the capture assistant reports)."""

    estimate: BodyEstimate
    method: str  # "landmarks" (pose fitted to the landmarker's joints) or "box" (standing template in the box)
    reproj_px: float  # RMS distance of the fitted body's landmarks to the landmarker's (pixels; nan for "box")
    person_px: float  # size of the person (pixels)
    iou: float  # silhouette IoU of the fitted body and the person mask (nan without a mask)
    silhouette: np.ndarray | None = None  # [H, W] uint8, 255 where the fitted body covers the photo
    note: str = ""  # why the landmark fit was not used, when it was not

    @property
    def reproj_rel(self) -> float:
        return self.reproj_px / max(self.person_px, 1.0)

    @property
    def poor(self) -> bool:
        return (
            self.method != "landmarks"
            or not (self.reproj_rel <= REPROJ_WARN)
            or (np.isfinite(self.iou) and self.iou < IOU_WARN)
        )

    def summary(self) -> str:
        """`fit: landmarks, error 2.1% (4 px), silhouette IoU 0.78` (+ `POOR FIT` when poor)."""
        err = "n/a" if not np.isfinite(self.reproj_px) else f"{100 * self.reproj_rel:.1f}% ({self.reproj_px:.0f} px)"
        iou = "n/a" if not np.isfinite(self.iou) else f"{self.iou:.2f}"
        s = f"fit: {self.method}, landmark error {err}, silhouette IoU {iou}"
        if self.poor:
            s += " - POOR FIT: the avatar may take colours from the wrong place" + (
                f" ({self.note})" if self.note else ""
            )
        return s


def posed_vertices(rig: BodyRig, est: BodyEstimate) -> torch.Tensor:
    """World positions [V, 3] of the rig's mesh posed by the estimate (its shape, pose, expression, gaze)."""
    p = est.params
    verts, rest_poses = rig.rest(p.shape.to(rig.vertices) if rig.num_shape else None)
    verts, rest_poses = verts.to(rig.vertices), rest_poses.to(rig.vertices)
    verts = verts + torch.einsum("be,evc->bvc", p.expression.to(verts), rig.expression_basis.to(verts))
    rot = rig.bone_rotations(p.rotations.to(verts), p.gaze.to(verts))
    T, _ = rig.pose(rot, rig.chain(rest_poses), p.translation.to(verts))
    return skin_points(verts, rig.weights.to(verts), T)[0][0]


def body_silhouette(rig: BodyRig, est: BodyEstimate, size: tuple[int, int]) -> np.ndarray:
    """[H, W] uint8 mask (255) of the posed mesh projected through the estimate's camera."""
    H, W = size
    V = posed_vertices(rig, est).double()
    T = est.camera.T_cam_world.double()
    cam = V @ T[:3, :3].T + T[:3, 3]
    z = cam[:, 2].clamp_min(1e-4)
    K = est.camera.K.double()
    uv = torch.stack([K[0, 0] * cam[:, 0] / z + K[0, 2], K[1, 1] * cam[:, 1] / z + K[1, 2]], -1)
    tris = uv[rig.faces].numpy()  # [F, 3, 2]
    front = (cam[:, 2] > 1e-3)[rig.faces].all(-1).numpy()
    out = np.zeros((H, W), np.uint8)
    pts = np.round(tris[front] * 4).astype(np.int32)  # 2 bits of sub-pixel precision
    cv2.fillPoly(out, list(pts), 255, lineType=cv2.LINE_8, shift=2)
    return out


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two masks (> 127 counts as inside); nan when both are empty."""
    a, b = a > 127, b > 127
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else float("nan")


def landmark_estimate(
    rig: BodyRig,
    pose: np.ndarray,  # [33, 4] mediapipe pose landmarks normalised to the photo
    pose_world: np.ndarray | None,  # [33, 3]
    size: tuple[int, int],  # (H, W)
    K: np.ndarray | None = None,  # [3, 3] calibrated intrinsics when known
) -> tuple[BodyEstimate, float, float]:
    """The body posed from the photo's landmarks (the live retargeter's pose, camera by least squares on the
    joints, core.data.video_fit) -> (estimate, RMS reprojection px, person px); raises FitFailed."""
    from core.data.body_bridge import world_body
    from core.data.video_fit import BodyFitter
    from core.tracking.types import Landmarks

    H, W = size
    body = world_body()
    fitter = BodyFitter(list(body.bone_names), list(body.expression_names))
    lm = Landmarks(frame_index=0, image_size=(W, H), pose=np.asarray(pose, np.float64), pose_world=pose_world)
    fit = fitter(lm, (W, H), 0.0, K)
    params = rig.neutral_params(1)
    f32 = lambda x: torch.as_tensor(np.asarray(x), dtype=params.shape.dtype)[None]  # noqa: E731
    params = params.with_(rotations=f32(fit.body.pose), translation=f32(fit.body.translation), gaze=f32(fit.body.gaze))
    cam = Camera(
        torch.as_tensor(fit.K, dtype=torch.float32), torch.as_tensor(fit.T_cam_world, dtype=torch.float32), W, H
    )
    return BodyEstimate(params, cam), fit.reproj_px, fit.person_px


def fit_photo(
    rig: BodyRig,
    size: tuple[int, int],  # (H, W)
    box: tuple[float, float, float, float],
    view: str = "front",
    pose: np.ndarray | None = None,
    pose_world: np.ndarray | None = None,
    mask: np.ndarray | None = None,  # [H, W] uint8 person mask
    K: np.ndarray | None = None,
) -> PhotoFit:
    """The photo's body estimate from its landmarks when they fit (else the standing template in its box), with
    the fit's reprojection error and its silhouette IoU against the person mask."""
    note = ""
    est = None
    if pose is not None:
        from core.data.video_fit import FitFailed

        try:
            est, rms, person = landmark_estimate(rig, pose, pose_world, size, K)
            method = "landmarks"
        except FitFailed as e:
            note = str(e)
    if est is None:
        est, rms, method = box_estimate(rig, box, size, view), float("nan"), "box"
        person = float(max(box[2] - box[0], box[3] - box[1]))
        note = note or "no body landmarks"
    sil = body_silhouette(rig, est, size)
    iou = mask_iou(sil, mask) if mask is not None else float("nan")
    return PhotoFit(est, method, float(rms), float(person), iou, sil, note)
