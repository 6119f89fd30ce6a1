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
    bone_trust: np.ndarray | None = None  # [J] in [0, 1]: how well each bone's landmarks fit (0: misplaced)
    landmarks: np.ndarray | None = None  # [33, 4] the tracker's pose landmarks the fit was made to (normalised)
    before: PhotoFit | None = None  # the photo's own fit (template shape) this one was refitted from, with the
    # shape shared by all photos (core.capture.shape_fit); None: this is the photo's own fit
    garment: np.ndarray | None = None  # [R] clothing allowance per region (metres) the silhouette and `iou` include
    iou_body: float = float("nan")  # silhouette IoU of the body alone, without the clothing allowance

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
        """`fit: landmarks, error 2.1% (4 px), silhouette IoU 0.78` (+ `POOR FIT` when poor); a refitted fit says
        `..., error 3.0% -> 2.1% (6 -> 4 px), silhouette IoU 0.61 -> 0.78 (body shape shared by 3 photos)`."""
        b = self.before
        if b is None:
            err = (
                "n/a" if not np.isfinite(self.reproj_px) else f"{100 * self.reproj_rel:.1f}% ({self.reproj_px:.0f} px)"
            )
            iou = "n/a" if not np.isfinite(self.iou) else f"{self.iou:.2f}"
        else:
            err = (f"{100 * b.reproj_rel:.1f}% -> {100 * self.reproj_rel:.1f}% "
                   f"({b.reproj_px:.0f} -> {self.reproj_px:.0f} px)")  # fmt: skip
            iou = "n/a" if not np.isfinite(self.iou) else f"{b.iou:.2f} -> {self.iou:.2f}"
            if self.garment is not None and np.isfinite(self.iou_body):
                iou += f" with clothing {100 * float(np.max(self.garment)):.0f} cm at most (body alone {self.iou_body:.2f})"
        s = f"fit: {self.method}{'' if b is None else ' + shared body shape'}, landmark error {err}, silhouette IoU {iou}"
        if self.poor:
            s += " - POOR FIT: the avatar may take colours from the wrong place" + (
                f" ({self.note})" if self.note else ""
            )
        return s


FACE_POINTS = (0, 2, 5, 7, 8)  # nose, eyes, ears: the head's trust is their median (each is a loose offset)
TRUST_GOOD, TRUST_BAD = 0.05, 0.12  # landmark error / person size: fully trusted below, refused above


def _bone_landmarks(name: str) -> tuple[int, ...]:
    """Mediapipe pose landmarks whose fit decides whether a bone's region sits on the right part of a photo."""
    from core.tracking.body_landmarks import ANKLE, ELBOW, HIP, KNEE, SHOULDER, WRIST

    side = name.rsplit(".", 1)[-1] if name.endswith((".L", ".R")) else None
    if side is not None:
        if name.startswith(("clavicle", "shoulder01", "upperarm")):
            return SHOULDER[side], ELBOW[side]
        if name.startswith("lowerarm"):
            return ELBOW[side], WRIST[side]
        if name.startswith(("wrist", "finger", "metacarpal")):
            return (WRIST[side],)
        if name.startswith(("pelvis", "upperleg")):
            return HIP[side], KNEE[side]
        if name.startswith("lowerleg"):
            return KNEE[side], ANKLE[side]
        if name.startswith(("foot", "toe")):
            return (ANKLE[side],)
        if name.startswith("eye"):
            return FACE_POINTS
    if name.startswith(("neck", "head")):
        return FACE_POINTS
    return SHOULDER["L"], SHOULDER["R"], HIP["L"], HIP["R"]  # root, spine: the torso


def bone_trust(
    bone_names: list[str] | tuple[str, ...],
    pose: np.ndarray,  # [33, 4] observed landmarks, normalised
    points_uv: np.ndarray,  # [33, 2] the fitted body's landmarks projected (pixels)
    size: tuple[int, int],  # (H, W)
    person_px: float,
) -> np.ndarray:
    """[J] trust per bone in [0, 1]: 1 where the bone's landmarks of the fitted body lie within TRUST_GOOD of the
    person's size from the observed ones, 0 beyond TRUST_BAD (a region the fit put elsewhere in this photo takes no
    colour from it); landmarks the photo does not see leave their bones at 1 (the person mask decides there)."""
    H, W = size
    obs = np.asarray(pose, np.float64)[:, :2] * np.array([W, H])
    err = np.linalg.norm(np.asarray(points_uv, np.float64) - obs, axis=-1) / max(person_px, 1.0)
    seen = np.nan_to_num(np.asarray(pose)[:, 3]) >= 0.5
    t = np.clip((TRUST_BAD - err) / (TRUST_BAD - TRUST_GOOD), 0.0, 1.0)
    t = np.where(seen & np.isfinite(err), t, 1.0)

    def one(name: str) -> float:
        ks = _bone_landmarks(name)
        return float(np.median(t[list(ks)])) if ks == FACE_POINTS else float(min(t[k] for k in ks))

    return np.array([one(n) for n in bone_names], np.float32)


def posed_vertices(rig: BodyRig, est: BodyEstimate, garment: np.ndarray | None = None) -> torch.Tensor:
    """World positions [V, 3] of the rig's mesh posed by the estimate (its shape, pose, expression, gaze), with the
    clothing allowance `garment` [R] (metres per region, core.capture.garment.GARMENT_REGIONS) when given."""
    from core.capture.garment import garment_offsets

    p = est.params
    verts, rest_poses = rig.rest(p.shape.to(rig.vertices) if rig.num_shape else None)
    verts, rest_poses = verts.to(rig.vertices), rest_poses.to(rig.vertices)
    if garment is not None:
        verts = verts + garment_offsets(rig, garment).to(verts)
    verts = verts + torch.einsum("be,evc->bvc", p.expression.to(verts), rig.expression_basis.to(verts))
    rot = rig.bone_rotations(p.rotations.to(verts), p.gaze.to(verts))
    T, _ = rig.pose(rot, rig.chain(rest_poses), p.translation.to(verts))
    return skin_points(verts, rig.weights.to(verts), T)[0][0]


def body_silhouette(
    rig: BodyRig, est: BodyEstimate, size: tuple[int, int], garment: np.ndarray | None = None
) -> np.ndarray:
    """[H, W] uint8 mask (255) of the posed mesh (with the clothing allowance `garment`, when given) projected
    through the estimate's camera."""
    H, W = size
    V = posed_vertices(rig, est, garment).double()
    T = est.camera.T_cam_world.double()
    cam = V @ T[:3, :3].T + T[:3, 3]
    z = cam[:, 2].clamp_min(1e-4)
    K = est.camera.K.double()
    uv = torch.stack([K[0, 0] * cam[:, 0] / z + K[0, 2], K[1, 1] * cam[:, 1] / z + K[1, 2]], -1)
    tris = uv[rig.faces].numpy()  # [F, 3, 2]
    front = (cam[:, 2] > 1e-3)[rig.faces].all(-1).numpy()
    out = np.zeros((H, W), np.uint8)
    pts = np.round(tris[front] * 4).astype(np.int32)  # 2 bits of sub-pixel precision
    for tri in pts:  # one by one: fillPoly given them all drops what an even number of them cover (18% of a body)
        cv2.fillConvexPoly(out, tri, 255, lineType=cv2.LINE_8, shift=2)
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
) -> tuple[BodyEstimate, float, float, np.ndarray]:
    """The body posed from the photo's landmarks (the live retargeter's pose, camera by least squares on the
    joints, core.data.video_fit) -> (estimate, RMS reprojection px, person px, bone trust [J]); raises FitFailed."""
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
    trust = bone_trust(list(body.bone_names), pose, fit.points_uv, size, fit.person_px)
    return BodyEstimate(params, cam), fit.reproj_px, fit.person_px, trust


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
    est, trust = None, None
    if pose is not None:
        from core.data.video_fit import FitFailed

        try:
            est, rms, person, trust = landmark_estimate(rig, pose, pose_world, size, K)
            method = "landmarks"
        except FitFailed as e:
            note = str(e)
    if est is None:
        est, rms, method = box_estimate(rig, box, size, view), float("nan"), "box"
        person = float(max(box[2] - box[0], box[3] - box[1]))
        note = note or "no body landmarks"
    sil = body_silhouette(rig, est, size)
    iou = mask_iou(sil, mask) if mask is not None else float("nan")
    lm = None if pose is None else np.asarray(pose, np.float32)
    return PhotoFit(est, method, float(rms), float(person), iou, sil, note, trust, lm)


def refit_photo(
    rig: BodyRig, fit: PhotoFit, est: BodyEstimate, mask: np.ndarray | None, garment: np.ndarray | None = None
) -> PhotoFit:
    """A landmark fit redone with a new estimate (the shared body shape and its corrected pose and camera) and the
    clothing allowance `garment` [R] fitted with it (None: none), its landmark error, silhouette IoU (of the body
    with the allowance; `iou_body` without it) and bone trust measured as `fit_photo` measures them; `before` is the
    photo's own fit."""
    from core.capture.shape_fit import landmarks_uv
    from core.data.video_fit import FIT_POINTS

    if fit.method != "landmarks" or fit.landmarks is None:
        raise ValueError(f"refit_photo: only a landmark fit can be refitted, got a {fit.method!r} fit")
    own = fit.before or fit
    size = (est.camera.height, est.camera.width)
    H, W = size
    lm = np.asarray(own.landmarks, np.float64)
    inside = (lm[:, 0] > -0.02) & (lm[:, 0] < 1.02) & (lm[:, 1] > -0.02) & (lm[:, 1] < 1.02)
    used = np.zeros(len(lm), bool)
    ids = sorted(FIT_POINTS)
    used[ids] = ((np.nan_to_num(lm[:, 3]) >= 0.5) & inside)[ids]
    uv = landmarks_uv(rig, est)
    rms = float(np.sqrt(np.mean(np.sum((uv[used] - lm[used, :2] * np.array([W, H])) ** 2, -1))))
    trust = bone_trust(list(rig.phenotype.bone_names), lm, uv, size, own.person_px)
    garment = None if garment is None else np.asarray(garment, np.float32)
    body = body_silhouette(rig, est, size)
    sil = body if garment is None else body_silhouette(rig, est, size, garment)
    iou = mask_iou(sil, mask) if mask is not None else float("nan")
    iou_body = mask_iou(body, mask) if mask is not None else float("nan")
    return PhotoFit(est, "landmarks", rms, own.person_px, iou, sil, own.note, trust, own.landmarks, own, garment,
                    iou_body)  # fmt: skip
