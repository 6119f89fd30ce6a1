"""Ingestion of real footage into the wild-clip shard format: a face detector whose model ships with
scikit-image finds the person, OpenCV's GrabCut segments them, and a coarse body estimate places a
camera-facing reference pose from the face size (no articulated fit yet). Frames with no person are
reported and skipped, never kept."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from core.data.cameras import intrinsics
from core.data.shards import Sample
from core.io import read_image_rgb

log = logging.getLogger(__name__)

VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp")
HEAD_HEIGHT_M = 0.24


@dataclass
class IngestReport:
    source: str
    frames_read: int = 0
    frames_kept: int = 0
    kept: list[int] = field(default_factory=list)  # indices of the frames that made it into the sample
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (frame index, reason)


def read_frames(path: Path, *, max_frames: int = 64, stride: int = 1) -> list[np.ndarray]:
    """RGB frames [H, W, 3] uint8 of a video file or a single image."""
    if path.suffix.lower() in IMAGE_EXT:
        return [read_image_rgb(path)]  # FileFormatError for corrupt, truncated or oversized images
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise OSError(f"cannot open video {path}; is it a video file OpenCV can decode?")
    out, i = [], 0
    while len(out) < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        if i % stride == 0:
            out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        i += 1
    cap.release()
    return out


class PersonDetector:
    """Face detection with the LBP frontal-face cascade that scikit-image ships; the person box is grown from
    the face (about 7.5 head heights tall, clipped to the frame) and refined later by segmentation."""

    def __init__(self) -> None:
        try:
            import skimage.data  # noqa: PLC0415
            from skimage.feature import Cascade  # noqa: PLC0415
        except ImportError as e:
            raise ImportError(
                "`prepare video` needs scikit-image for its face detector: pip install scikit-image"
            ) from e
        self.cascade = Cascade(skimage.data.lbp_frontal_face_cascade_filename())

    def faces(self, rgb: np.ndarray) -> np.ndarray:
        """Face boxes [K, 4] (x0, y0, x1, y1), overlapping detections merged, largest first."""
        H, W = rgb.shape[:2]
        small = max(20, min(H, W) // 16)
        dets = self.cascade.detect_multi_scale(
            img=rgb, scale_factor=1.2, step_ratio=1, min_size=(small, small), max_size=(min(H, W), min(H, W))
        )
        boxes = np.array(
            [[d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]] for d in dets], np.float32
        ).reshape(-1, 4)
        if len(boxes) == 0:
            return boxes
        # Merge overlapping hits (the cascade fires several times on one face); keep clusters by support.
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]))
        clusters: list[list[int]] = []
        for i in order:
            for c in clusters:
                j = c[0]
                ix = max(0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
                iy = max(0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
                if ix * iy > 0.3 * (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1]):
                    c.append(int(i))
                    break
            else:
                clusters.append([int(i)])
        clusters.sort(key=lambda c: (-len(c), -(boxes[c[0], 2] - boxes[c[0], 0])))
        return np.stack([boxes[c].mean(0) for c in clusters])

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Person box and face box [x0, y0, x1, y1] (None, None if nobody is found)."""
        H, W = rgb.shape[:2]
        faces = self.faces(rgb)
        if len(faces) == 0:
            return None, None
        face = faces[0]
        fw, fh = face[2] - face[0], face[3] - face[1]
        person = np.array(
            [
                max(0, face[0] - 1.6 * fw),
                max(0, face[1] - 0.5 * fh),
                min(W, face[2] + 1.6 * fw),
                min(H, face[1] + 7.5 * fh),
            ],
            np.float32,
        )
        return person, face


def segment(rgb: np.ndarray, box: np.ndarray, iters: int = 3) -> np.ndarray:
    """GrabCut foreground mask [H, W] uint8 (255 = person) initialised from the person box."""
    H, W = rgb.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W - 1, x1), min(H - 1, y1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return np.zeros((H, W), np.uint8)
    mask = np.zeros((H, W), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), mask, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, iters, cv2.GC_INIT_WITH_RECT
    )
    return np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)


def ingest_frames(
    frames: list[np.ndarray],
    source: str,
    *,
    size: int = 256,
    num_bones: int = 104,
    num_expr: int = 52,
    num_shape: int = 6,
    smooth: float = 0.6,
) -> tuple[Sample | None, IngestReport]:
    """Detect, segment and place a coarse body in each frame; resize to `size`; return a clip sample or None."""
    det = PersonDetector()
    report = IngestReport(source=source, frames_read=len(frames))
    kept_rgb, kept_mask, Ks, Ts, heads, trans = [], [], [], [], [], []
    prev_t = None
    for i, fr in enumerate(frames):
        person, face = det(fr)
        if person is None:
            report.skipped.append((i, "no person detected"))
            continue
        m = segment(fr, person)
        if m.mean() < 255 * 0.01:
            report.skipped.append((i, "segmentation found no foreground"))
            continue
        H, W = fr.shape[:2]
        s = size / max(H, W)
        img = cv2.resize(fr, (round(W * s), round(H * s)), interpolation=cv2.INTER_AREA)
        pad = ((0, size - img.shape[0]), (0, size - img.shape[1]), (0, 0))
        img, mk = (
            np.pad(img, pad),
            np.pad(cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST), pad[:2]),
        )
        f = 1.2 * size  # unknown lens: a 50 mm equivalent
        K = intrinsics(f, size, size)
        # Depth from the face height when seen (more reliable) else the person box height.
        # Depth from the face height (a head is about 0.24 m, the detector box covers ~75% of it).
        z = f * HEAD_HEIGHT_M / max((face[3] - face[1]) * s / 0.75, 1.0)
        anchor_uv, anchor_y = np.array([(face[0] + face[2]) / 2, (face[1] + face[3]) / 2]) * s, 1.5
        hb = face * s
        # Camera at the origin looking down +z of the camera; the person faces it. World = person frame.
        x = (anchor_uv[0] - size / 2) * z / f
        y = (anchor_uv[1] - size / 2) * z / f
        t = np.array([x, y, z])
        t = t if prev_t is None else smooth * prev_t + (1 - smooth) * t  # temporal smoothing
        prev_t = t
        T = np.eye(4)
        T[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ np.array([[1, 0, 0], [0, 1, 0], [0, 0, -1.0]])  # person faces camera
        T[:3, 3] = t - T[:3, :3] @ np.array([0.0, anchor_y, 0.0])
        kept_rgb.append(img)
        kept_mask.append(mk)
        Ks.append(K)
        Ts.append(T)
        heads.append(hb)
        trans.append(np.zeros(3))
        report.frames_kept += 1
        report.kept.append(i)
    for i, why in report.skipped:
        log.warning("%s frame %d skipped: %s", source, i, why)
    if not kept_rgb:
        return None, report
    F = len(kept_rgb)
    arrays = {
        "K": np.stack(Ks)[:, None].astype(np.float32),
        "T_cam_world": np.stack(Ts)[:, None].astype(np.float32),
        "head_box": np.stack(heads)[:, None].astype(np.float32),
        "est_shape": np.full(num_shape, 0.5, np.float32),
        "est_pose": np.zeros((F, num_bones, 3), np.float32),
        "est_translation": np.stack(trans).astype(np.float32),
        "est_expression": np.zeros((F, num_expr), np.float32),
        "est_gaze": np.zeros((F, 2), np.float32),
    }
    meta = {
        "kind": "video",
        "source": source,
        "fit": "coarse: camera-facing reference pose placed from the detected box",
        "skipped": report.skipped,
    }
    key = "video-" + "".join(ch if ch.isalnum() else "_" for ch in Path(source).stem)[:40]
    sample = Sample(
        key=key, meta=meta, arrays=arrays, rgb=np.stack(kept_rgb)[:, None], mask=np.stack(kept_mask)[:, None]
    )
    return sample, report


def find_sources(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_EXT + IMAGE_EXT)
    raise FileNotFoundError(f"{path} is neither a video/image file nor a folder of them")


def ingest_error(gt: Sample, est: Sample, kept: list[int], *, camera: int = 0) -> dict[str, float]:
    """How far an ingested clip `est` is from the ground truth `gt` it was made from (same image size):
    detection rate, mask IoU, head-centre error in pixels, and relative error of the head depth (after
    correcting the estimate for the true focal length, which monocular footage does not tell)."""
    import torch  # noqa: PLC0415

    from core.data.body_bridge import world_body  # noqa: PLC0415

    if est.rgb.shape[2:4] != gt.rgb.shape[2:4]:
        raise ValueError(f"ingest at the ground truth's size: est {est.rgb.shape[2:4]} vs gt {gt.rgb.shape[2:4]}")
    body = world_body()
    a = gt.arrays
    phen = dict(zip(body.phenotype_names, a["gt_shape"].tolist(), strict=True))
    t = lambda x: torch.as_tensor(x, dtype=torch.float32)  # noqa: E731
    joints = body.pose(phen, t(a["gt_pose"]), t(a["gt_translation"]), t(a["gt_expression"]), t(a["gt_gaze"])).joints
    head = joints[:, body.bone_index["head"]].numpy()  # [F, 3]
    ious, centre_px, depth_rel = [], [], []
    for e, f in enumerate(kept):
        m_gt, m_est = gt.mask[f, camera] > 127, est.mask[e, 0] > 127
        ious.append((m_gt & m_est).sum() / max(1, (m_gt | m_est).sum()))
        hb_gt, hb_est = a["head_box"][f, camera], est.arrays["head_box"][e, 0]
        centre_px.append(float(np.linalg.norm((hb_gt[:2] + hb_gt[2:]) / 2 - (hb_est[:2] + hb_est[2:]) / 2)))
        T_gt, T_est = a["T_cam_world"][f, camera], est.arrays["T_cam_world"][e, 0]
        z_gt = (T_gt[:3, :3] @ head[f] + T_gt[:3, 3])[2]
        z_est = (T_est[:3, :3] @ np.array([0.0, 1.5, 0.0]) + T_est[:3, 3])[2]
        z_est *= a["K"][f, camera, 0, 0] / est.arrays["K"][e, 0, 0, 0]
        depth_rel.append(abs(z_est - z_gt) / z_gt)
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    return {
        "detection_rate": len(kept) / gt.num_frames,
        "mask_iou": mean(ious),
        "head_centre_px": mean(centre_px),
        "head_depth_rel": mean(depth_rel),
    }
