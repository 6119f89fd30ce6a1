"""Finding a person in a photo or a frame as a person: mediapipe's body pose landmarker (its model ships in the
wheel) on the whole image and, when the person is small in a wide frame, on crops around candidate people
(OpenCV's HOG pedestrian detector and a grid of windows); then mediapipe's selfie segmentation on a crop around
the person for the mask. The face size does not matter: a turned-away or tiny face still has a body.

What a photo shows follows from the landmarks: the face (nose and eyes seen), the legs (knees and ankles seen
inside the frame), and the view (front, side, back) from the shoulders' line in the landmarker's 3D output.
scikit-image's face cascade (core.data.video_coarse) is the last resort when mediapipe is not installed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from core.data.person_track import PersonTrack, appearance, box_iou

log = logging.getLogger(__name__)

NOSE, EYES, EARS = 0, (2, 5), (7, 8)
SHOULDERS, HIPS, KNEES, ANKLES, WRISTS = (11, 12), (23, 24), (25, 26), (27, 28), (15, 16)
SEEN = 0.5  # landmark visibility above which a landmark counts as seen
POSE_SIDE = 512  # images (and crops) are shrunk to this longer side before the pose landmarker
SEG_SIDE = 384  # crops are shrunk to this longer side before the selfie segmenter
GOOD_SCORE = 0.55  # a whole-image pose result at least this confident and this large ends the search
MIN_AGREEMENT = 0.5  # share of the seen landmarks the segmenter must call person (else a phantom pose)
SMALL_PERSON = 0.35  # ... "large": the person's box is at least this share of the image's longer side
SURE_MATCH = 1.0  # a candidate this like the tracked person (PersonTrack.cost) ends the search


@dataclass
class PersonFound:
    """One person in an image (pixels of the full image)."""

    box: np.ndarray  # [4] x0, y0, x1, y1 around the person (landmarks, padded; the mask's extent when segmented)
    face_box: np.ndarray | None  # [4] around the head when the face is seen
    pose: np.ndarray | None  # [33, 4] normalised to the full image: x, y, z, visibility (mediapipe's order)
    pose_world: np.ndarray | None  # [33, 3] metres, hips at the origin (mediapipe's world landmarks)
    found_by: str  # "pose", "pose (crop)", "face detector"
    score: float  # mean visibility of the nose and shoulders (0 for the face detector)
    mask: np.ndarray | None = None  # [H, W] uint8, 255 = person
    view: str = "unknown"  # front, side, back
    yaw_deg: float = float("nan")  # the body's turn from facing the camera (0 front, +-180 back)
    shows: dict[str, bool] = field(default_factory=dict)  # face, torso, arms, legs, feet

    @property
    def lacks(self) -> list[str]:
        """Body regions the image does not show (for the capture assistant)."""
        return [k for k in ("face", "legs", "feet") if not self.shows.get(k, False)]


def _seen(pose: np.ndarray, idx, size: tuple[int, int] | None = None) -> np.ndarray:
    p = pose[list(idx)]
    ok = np.nan_to_num(p[:, 3]) >= SEEN
    ok &= (p[:, 0] > -0.01) & (p[:, 0] < 1.01) & (p[:, 1] > -0.01) & (p[:, 1] < 1.01)
    return ok


def shows_from_pose(pose: np.ndarray) -> dict[str, bool]:
    """Which body regions the landmarks see inside the image (pose [33, 4] normalised)."""
    return {
        "face": bool(_seen(pose, (NOSE,)).all() and _seen(pose, EYES).any()),
        "torso": bool(_seen(pose, SHOULDERS).any() and _seen(pose, HIPS).any()),
        "arms": bool(_seen(pose, (13, 14)).any() or _seen(pose, WRISTS).any()),
        "legs": bool(_seen(pose, KNEES).any() and _seen(pose, ANKLES).any()),
        "feet": bool(_seen(pose, ANKLES).all()),
    }


def view_from_pose(pose: np.ndarray, world: np.ndarray | None) -> tuple[str, float]:
    """(front | side | back | unknown, yaw in degrees) from the shoulders' line.

    The landmarker names the person's own left and right; in its world frame (x to the image's right, z away
    from the camera) a person facing the camera has the left shoulder at +x. A back view is trusted only when
    the face is not seen too (the landmarker tends to mirror people seen from behind).
    """
    if world is None or not _seen(pose, SHOULDERS).all():
        return "unknown", float("nan")
    d = world[SHOULDERS[0]] - world[SHOULDERS[1]]  # person's left minus right
    yaw = math.degrees(math.atan2(d[2], d[0]))  # 0: facing the camera
    face = _seen(pose, (NOSE,)).all() and _seen(pose, EYES).any()
    a = abs(yaw)
    if a < 50:
        return "front", yaw
    if a > 130:
        return ("back" if not face else "front"), yaw
    return "side", yaw


def _box_from_pose(pose: np.ndarray, size: tuple[int, int], pad: float = 0.12) -> np.ndarray | None:
    W, H = size
    ok = np.nan_to_num(pose[:, 3]) >= 0.3
    ok &= (np.abs(pose[:, :2] - 0.5) < 0.55).all(1)
    if ok.sum() < 3:
        return None
    xy = pose[ok, :2] * np.array([W, H])
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    s = max(x1 - x0, y1 - y0, 8.0)
    box = np.array([x0 - pad * s, y0 - 2 * pad * s, x1 + pad * s, y1 + pad * s])
    return np.clip(box, 0, [W, H, W, H]).astype(np.float32)


def _face_box_from_pose(pose: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """A box around the head from the face landmarks of the pose (nose, eyes, ears, mouth)."""
    W, H = size
    idx = list(range(11))
    ok = np.nan_to_num(pose[idx, 3]) >= SEEN
    if ok.sum() < 3:
        return None
    xy = pose[idx][ok, :2] * np.array([W, H])
    c = xy.mean(0)
    # the head's width: the ears' (or eyes' x 2) span, at least the mouth-to-eyes height x 2.2
    span = float(np.ptp(xy[:, 0]))
    if not (_seen(pose, EARS).all()):
        span *= 1.6
    sh = pose[list(SHOULDERS), :2] * np.array([W, H])
    shoulder = float(np.linalg.norm(sh[0] - sh[1])) if _seen(pose, SHOULDERS).all() else 0.0
    half = max(span * 0.75, shoulder * 0.35, 4.0)
    box = np.array([c[0] - half, c[1] - 1.25 * half, c[0] + half, c[1] + 0.95 * half])
    return np.clip(box, 0, [W, H, W, H]).astype(np.float32)


LIMBS = (
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
    (23, 25), (25, 27), (24, 26), (26, 28), (27, 31), (28, 32), (15, 19), (16, 20),
)  # fmt: skip


def skeleton_region(pose: np.ndarray, size: tuple[int, int], min_visibility: float = 0.3) -> np.ndarray:
    """[H, W] uint8: 255 within reach of the person's skeleton (limbs drawn as thick as loose clothing, the head
    as a disc with room for hair); what the mask may contain. Everything when too few landmarks are seen."""
    W, H = size
    p = np.asarray(pose, np.float64)
    xy = p[:, :2] * np.array([W, H])
    ok = np.nan_to_num(p[:, 3]) >= min_visibility
    out = np.zeros((H, W), np.uint8)
    sh = xy[list(SHOULDERS)].mean(0) if ok[list(SHOULDERS)].all() else None
    hip = xy[list(HIPS)].mean(0) if ok[list(HIPS)].all() else None
    scale = np.linalg.norm(sh - hip) if sh is not None and hip is not None else None
    if scale is None and ok[list(SHOULDERS)].all():
        scale = 1.6 * np.linalg.norm(xy[SHOULDERS[0]] - xy[SHOULDERS[1]])
    if scale is None or ok.sum() < 4 or scale < 2:
        return np.full((H, W), 255, np.uint8)
    thick = max(3, int(round(0.75 * scale)))
    for a, b in LIMBS:
        if ok[a] and ok[b]:
            cv2.line(out, tuple(np.round(xy[a]).astype(int)), tuple(np.round(xy[b]).astype(int)), 255, thick)
    if ok[list(SHOULDERS + HIPS)].sum() >= 3:  # the torso filled
        quad = [i for i in (11, 12, 24, 23) if ok[i]]
        cv2.fillPoly(out, [np.round(xy[quad]).astype(np.int32)], 255)
    head = [i for i in range(11) if ok[i]]
    if head:
        c = xy[head].mean(0)
        cv2.circle(out, tuple(np.round(c).astype(int)), int(round(0.75 * scale)), 255, -1)
        if sh is not None:  # the neck
            cv2.line(out, tuple(np.round(c).astype(int)), tuple(np.round(sh).astype(int)), 255, thick)
    return out


def skeleton_bones(pose: np.ndarray, size: tuple[int, int], min_visibility: float = 0.5) -> np.ndarray:
    """[H, W] bool: thin lines along the bones between well-seen landmarks (pixels on the person, whatever their
    colour); nothing when too few are seen."""
    W, H = size
    p = np.asarray(pose, np.float64)
    xy = np.round(p[:, :2] * np.array([W, H])).astype(int)
    ok = np.nan_to_num(p[:, 3]) >= min_visibility
    out = np.zeros((H, W), np.uint8)
    if ok.sum() < 4:
        return out > 0
    span = np.ptp(xy[ok], axis=0).max()
    thick = max(2, int(round(0.01 * span)))
    for a, b in LIMBS:
        if ok[a] and ok[b]:
            cv2.line(out, tuple(xy[a]), tuple(xy[b]), 255, thick)
    return out > 0


def _upper_score(pose: np.ndarray) -> float:
    """Confidence that a person is there: mean visibility of the nose and shoulders (upper-body shots count)."""
    return float(np.mean(np.nan_to_num(pose[[NOSE, *SHOULDERS], 3])))


def square_around(box: np.ndarray, size: tuple[int, int], grow: float = 1.4) -> tuple[int, int, int, int]:
    """A square window (x0, y0, x1, y1 ints, may exceed the image) around `box`, `grow` times its longer side."""
    x0, y0, x1, y1 = (float(v) for v in box)
    s = max(x1 - x0, y1 - y0) * grow
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return int(round(cx - s / 2)), int(round(cy - s / 2)), int(round(cx + s / 2)), int(round(cy + s / 2))


def _cut(rgb: np.ndarray, win: tuple[int, int, int, int], side: int) -> tuple[np.ndarray, float]:
    """The window of `rgb` (black beyond its borders) resized to at most `side`, and the scale applied."""
    H, W = rgb.shape[:2]
    x0, y0, x1, y1 = win
    out = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    s = min(1.0, side / max(out.shape[:2]))
    if s < 1.0:
        out = cv2.resize(out, (max(1, round(out.shape[1] * s)), max(1, round(out.shape[0] * s))), cv2.INTER_AREA)
    return np.ascontiguousarray(out), s


class PersonFinder:
    """Finds the most prominent person of an image (see the module docstring). Keeps its mediapipe graphs;
    `track` follows one person through a clip (core.data.person_track). Not thread-safe."""

    def __init__(self, *, segment: bool = True) -> None:
        self.segment = segment
        self._pose: Any = None
        self._seg: Any = None
        self._hog: Any = None
        self._fallback: Any = None
        self._track: PersonTrack | None = None
        try:
            from core.tracking.landmarks import _solutions  # noqa: PLC0415

            _solutions()
            self.mediapipe = True
        except RuntimeError:
            self.mediapipe = False
            log.warning("mediapipe is not installed: people are found by their face only (scikit-image cascade)")

    # mediapipe -------------------------------------------------------------------------------------------
    def _pose_graph(self) -> Any:
        if self._pose is None:
            from core.tracking.landmarks import _native_stderr_silenced, _solutions  # noqa: PLC0415

            with _native_stderr_silenced():
                self._pose = _solutions().pose.Pose(
                    static_image_mode=True, model_complexity=1, enable_segmentation=False, min_detection_confidence=0.4
                )
        return self._pose

    def _pose_in(self, rgb: np.ndarray, win: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray] | None:
        """Pose landmarks of the person in window `win` of `rgb`, normalised to the full image ([33, 4], [33, 3])."""
        from core.tracking.landmarks import _native_stderr_silenced  # noqa: PLC0415

        H, W = rgb.shape[:2]
        crop, _ = _cut(rgb, win, POSE_SIDE)
        with _native_stderr_silenced():
            res = self._pose_graph().process(crop)
        if res.pose_landmarks is None:
            return None
        lm = np.array([[p.x, p.y, p.z, p.visibility] for p in res.pose_landmarks.landmark], np.float64)
        world = None
        if res.pose_world_landmarks is not None:
            world = np.array([[p.x, p.y, p.z] for p in res.pose_world_landmarks.landmark], np.float64)
        x0, y0, x1, y1 = win
        lm[:, 0] = (x0 + lm[:, 0] * (x1 - x0)) / W
        lm[:, 1] = (y0 + lm[:, 1] * (y1 - y0)) / H
        return lm, world

    def _candidates(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Windows where a small person may stand: HOG pedestrian detections (largest first), then a grid."""
        H, W = rgb.shape[:2]
        wins: list[tuple[int, int, int, int]] = []
        if self._hog is None:
            self._hog = cv2.HOGDescriptor()
            self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        s = min(1.0, 800 / max(H, W))
        small = cv2.resize(rgb, (round(W * s), round(H * s)), interpolation=cv2.INTER_AREA) if s < 1 else rgb
        rects, weights = (), ()
        if small.shape[0] < 160 or small.shape[1] < 96:  # smaller than the detector's window (and crashes it)
            pass
        else:
            rects, weights = self._hog.detectMultiScale(
                cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), winStride=(8, 8), padding=(8, 8), scale=1.1
            )
        order = np.argsort(-np.asarray(weights).reshape(-1)) if len(rects) else []
        for i in list(order)[:4]:
            x, y, w, h = (float(v) / s for v in rects[i])
            wins.append(square_around(np.array([x, y, x + w, y + h]), (W, H), 1.3))
        for n in (2, 3):  # overlapping square windows of 1/n of the shorter side... and of the height
            side = min(H, W) * 2 // (n + 1) if H <= W else W * 2 // (n + 1)
            side = max(side, 64)
            ys = np.linspace(0, max(0, H - side), max(1, round(H / side * 1.5))).astype(int)
            xs = np.linspace(0, max(0, W - side), max(1, round(W / side * 1.5))).astype(int)
            wins += [(int(x), int(y), int(x) + side, int(y) + side) for y in ys for x in xs]
        return wins

    def _search(self, rgb: np.ndarray, track: PersonTrack | None) -> tuple[np.ndarray, np.ndarray | None, str] | None:
        """Whole image first; crops around candidates when nobody (or only someone small or unsure) is found
        there. Without a track, results are ranked by landmark confidence and size (a large person beats a small
        face in a badge); with one, by how like the tracked person they are (core.data.person_track), and nobody
        the track's gates refuse is returned: a frame without the tracked person finds no one."""
        H, W = rgb.shape[:2]
        best: tuple[float, float, np.ndarray, np.ndarray | None, str] | None = None

        def consider(win, how) -> tuple[float, float, float]:
            nonlocal best
            got = self._pose_in(rgb, win)
            if got is None:
                return 0.0, 0.0, -math.inf
            sc = _upper_score(got[0])
            b = _box_from_pose(got[0], (W, H))
            share = 0.0 if b is None else max(b[2] - b[0], b[3] - b[1]) / max(W, H)
            if track is None:
                rank = sc * min(1.0, share / SMALL_PERSON) ** 0.5
            elif b is None or sc < 0.3:
                rank = -math.inf
            else:  # tracking: the same person (where they should be, as large, dressed alike)
                rank = -track.cost(b, appearance(rgb, got[0]))
            log.debug(
                "%s %s: person at %s, score %.2f, rank %.2f", how, win, None if b is None else b.round(), sc, rank
            )
            if rank > -math.inf and (best is None or rank > best[0]):
                best = (rank, sc, got[0], got[1], how)
            return sc, share, rank

        def sure(rank: float) -> bool:  # the tracked person, surely: no need to look further
            return track is not None and rank >= -SURE_MATCH

        if track is not None:  # look where the person should be first
            _, _, rank = consider(square_around(track.predicted(), (W, H), 1.5), "pose (tracked crop)")
            if sure(rank):
                return self._refined(rgb, best, track)
        full = (0, 0, W, H) if H == W else square_around(np.array([0, 0, W, H], np.float32), (W, H), 1.0)
        sc, share, rank = consider(full, "pose")
        if (track is None and sc >= GOOD_SCORE and share >= SMALL_PERSON) or sure(rank):
            return self._refined(rgb, best, track)
        for win in self._candidates(rgb):
            sc, share, rank = consider(win, "pose (crop)")
            if (track is None and sc >= 0.8 and share * max(W, H) >= 0.5 * (win[2] - win[0])) or sure(rank):
                break
        if best is None or best[1] < 0.3:
            return None
        return self._refined(rgb, best, track)

    def _refined(
        self, rgb: np.ndarray, best, track: PersonTrack | None = None
    ) -> tuple[np.ndarray, np.ndarray | None, str]:
        """Run the landmarker once more on a window fitted around the found person (more pixels per limb); kept
        when as confident and on the same person: mostly inside their box and, when tracking, like the track (a
        neighbour in the window may be found instead)."""
        H, W = rgb.shape[:2]
        _, sc, pose, world, how = best
        box = _box_from_pose(pose, (W, H))
        if box is not None and max(box[2] - box[0], box[3] - box[1]) < 0.8 * max(W, H):
            got = self._pose_in(rgb, square_around(box, (W, H), 1.35))
            again = None if got is None else _box_from_pose(got[0], (W, H))
            same = again is not None and box_iou(box, again, over="b") >= 0.6
            if same and track is not None:
                same = track.cost(again, appearance(rgb, got[0])) < math.inf
            if same and _upper_score(got[0]) >= sc - 0.05:
                pose, world = got
                how = how if how != "pose" else "pose (crop)"
        return pose, world, how

    def probability(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Person probability [H, W] float32: the selfie segmenter on a square crop around `box` (0 elsewhere)."""
        from core.tracking.landmarks import _native_stderr_silenced, _solutions  # noqa: PLC0415

        H, W = rgb.shape[:2]
        if self._seg is None:
            with _native_stderr_silenced():
                self._seg = _solutions().selfie_segmentation.SelfieSegmentation(model_selection=0)
        win = square_around(box, (W, H), 1.25)
        crop, s = _cut(rgb, win, SEG_SIDE)
        with _native_stderr_silenced():
            res = self._seg.process(crop)
        prob = np.zeros((H, W), np.float32)
        if res.segmentation_mask is None:
            return prob
        x0, y0, x1, y1 = win
        m = cv2.resize(
            np.asarray(res.segmentation_mask, np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR
        )
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
        prob[sy0:sy1, sx0:sx1] = m[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
        return prob

    def person_mask(self, rgb: np.ndarray, box: np.ndarray, pose: np.ndarray | None = None) -> np.ndarray:
        """Mask [H, W] uint8 (255 = person): selfie segmentation around the person refined by GrabCut inside the
        padded box (core.data.video_segment.refine_mask); with the person's landmarks, the pixels along their bones
        are kept and only what is connected to them and lies near their skeleton (neighbours, signs and furniture
        the segmenter takes in are cut off)."""
        from core.data.video_segment import refine_mask  # noqa: PLC0415

        H, W = rgb.shape[:2]
        x0, y0, x1, y1 = box
        pad = 0.08 * max(x1 - x0, y1 - y0)
        grown = np.clip(np.array([x0 - pad, y0 - pad, x1 + pad, y1 + pad]), 0, [W, H, W, H])
        bones = None if pose is None else skeleton_bones(pose, (W, H))
        mask = refine_mask(rgb, self.probability(rgb, grown), grown, sure=bones)
        self.agreement = 1.0
        if pose is not None:
            region = skeleton_region(pose, (W, H)) > 0
            seen = _seen(pose, range(len(pose)))
            xy = np.round(pose[seen, :2] * np.array([W, H])).astype(int)
            xy = np.clip(xy, 0, [W - 1, H - 1])
            near = cv2.dilate(mask, np.ones((5, 5), np.uint8))  # landmarks on the outline count as on the person
            self.agreement = float((near[xy[:, 1], xy[:, 0]] > 0).mean()) if len(xy) else 0.0
            mask = np.where(region, mask, 0).astype(np.uint8)
        return mask

    # the whole search ------------------------------------------------------------------------------------
    def __call__(self, rgb: np.ndarray, *, track: PersonTrack | None = None) -> PersonFound | None:
        """The most prominent person of an [H, W, 3] uint8 RGB image, or None; with `track`, the tracked person
        or None (see `_search`)."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"PersonFinder wants an [H, W, 3] uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        rgb = np.ascontiguousarray(rgb)
        H, W = rgb.shape[:2]
        if not self.mediapipe:
            return self._by_face(rgb)
        got = self._search(rgb, track)
        if got is None:
            return self._by_face(rgb) if track is None else None  # the face detector knows no identity
        pose, world, how = got
        box = _box_from_pose(pose, (W, H))
        if box is None:
            return None
        view, yaw = view_from_pose(pose, world)
        shows = shows_from_pose(pose)
        face = _face_box_from_pose(pose, (W, H)) if shows["face"] else None
        found = PersonFound(box, face, pose.astype(np.float32), world, how, _upper_score(pose), view=view,
                            yaw_deg=yaw, shows=shows)  # fmt: skip
        if self.segment:
            found.mask = self.person_mask(rgb, box, pose)
            if self.agreement < MIN_AGREEMENT:  # landmarks on something the segmenter does not call a person
                log.debug("pose without a person under it (%.2f of its skeleton segmented): rejected", self.agreement)
                return None
            ys, xs = np.nonzero(found.mask)
            if len(xs) > 16:  # the box takes in the hair and clothes the landmarks miss
                mb = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
                found.box = np.concatenate([np.minimum(box[:2], mb[:2]), np.maximum(box[2:], mb[2:])])
        return found

    def track(self, rgb: np.ndarray) -> PersonFound | None:
        """As `__call__` on a clip's frames in order: the first person found (the most prominent) is followed
        (core.data.person_track); a frame where they are not found gives None, never someone else."""
        found = self(rgb, track=self._track)
        if found is None or found.pose is None:  # a person found by the face detector only is not tracked
            if self._track is not None:
                self._track.miss()
            return found
        H, W = rgb.shape[:2]
        box = _box_from_pose(found.pose, (W, H))  # the landmarks' box, as the candidates are compared by
        box = found.box if box is None else box
        look = appearance(rgb, found.pose)
        if self._track is None:
            self._track = PersonTrack(box, look)
        else:
            self._track.update(box, look)
        return found

    def reset(self) -> None:
        """Forget the tracked person (a new clip)."""
        self._track = None

    def _by_face(self, rgb: np.ndarray) -> PersonFound | None:
        if self._fallback is None:
            from core.data.video_coarse import PersonDetector  # noqa: PLC0415

            self._fallback = PersonDetector()
        person, face = self._fallback(rgb)
        if person is None:
            return None
        found = PersonFound(np.asarray(person, np.float32), np.asarray(face, np.float32), None, None, "face detector",
                            0.0, view="front", shows={"face": True})  # fmt: skip
        return found

    def close(self) -> None:
        for g in (self._pose, self._seg):
            if g is not None:
                g.close()
        self._pose = self._seg = None

    def __enter__(self) -> PersonFinder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
