"""The coarse fallback of real-footage ingestion, used when mediapipe is not installed: a face detector whose
model ships with scikit-image finds the person, GrabCut segments the box grown from the face, and a
camera-facing reference pose is placed from the face's size and position (no articulated fit)."""

from __future__ import annotations

import cv2
import numpy as np

from core.data.video_fit import R_CAM_WORLD

HEAD_HEIGHT_M = 0.24
HEAD_CENTRE_Y_M = 1.5  # height of the head's centre above the feet of the reference body (metres)


class PersonDetector:
    """Face detection with the LBP frontal-face cascade that scikit-image ships; the person box is grown from
    the face (about 7.5 head heights tall, clipped to the frame) and refined later by segmentation."""

    def __init__(self) -> None:
        try:
            import skimage.data  # noqa: PLC0415
            from skimage.feature import Cascade  # noqa: PLC0415
        except ImportError as e:
            raise ImportError("the fallback face detector needs scikit-image: pip install scikit-image") from e
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


def grabcut_box(rgb: np.ndarray, box: np.ndarray, iters: int = 3) -> np.ndarray:
    """GrabCut foreground mask [H, W] uint8 (255 = person) initialised from the person box [4]."""
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


def coarse_camera(face: np.ndarray, K: np.ndarray) -> np.ndarray:
    """T_cam_world [4, 4] placing a camera-facing reference body so that its head lands on the face box [4]
    (pixels of the frame that K [3, 3] describes): depth from the face height (the detector's box covers
    about 75% of a 0.24 m head)."""
    f, cx, cy = K[0, 0], K[0, 2], K[1, 2]
    z = f * HEAD_HEIGHT_M / max((face[3] - face[1]) / 0.75, 1.0)
    u, v = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    T = np.eye(4)
    T[:3, :3] = R_CAM_WORLD
    T[:3, 3] = np.array([(u - cx) * z / f, (v - cy) * z / f, z]) - R_CAM_WORLD @ np.array([0.0, HEAD_CENTRE_Y_M, 0])
    return T
