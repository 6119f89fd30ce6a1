"""Body and hand retargeting: mediapipe world landmarks -> body model joint rotations (driving channels).

Inverse kinematics by direction alignment on the body model's reference skeleton (an A pose), parent first:
root yaw from the hips, torso bend spread evenly over the five spine bones, swing-only (minimal) rotations
for the upper arms, forearms, thighs, shins and feet, the hand's full orientation on the wrist (its twist
about the forearm moved to lowerarm02), finger curls about each finger's hinge axis and the thumb by
swings. Outputs follow the PoseEdit convention (see core/tracking/body_skeleton.py). A landmark seen with
visibility below `min_visibility` leaves its joints at their last value (at first: rest); never NaN.
"""

from __future__ import annotations

import logging

import numpy as np

from core.tracking.body_landmarks import (
    ANKLE,
    ELBOW,
    FINGER_BASE,
    FOOT_INDEX,
    HEEL,
    HIP,
    INDEX,
    KNEE,
    NUM_HAND,
    NUM_POSE,
    PINKY,
    SHOULDER,
    WRIST,
    hand_points,
    mediapipe_to_world,
    pose_points,
)
from core.tracking.body_skeleton import (
    Skeleton,
    align_frames,
    cross,
    default_skeleton,
    forward_kinematics,
    matrix_to_rotvec,
    normalize,
    rotation_y,
    rotvec_to_matrix,
    signed_angle,
    swing,
)
from core.tracking.types import Landmarks

log = logging.getLogger(__name__)

SPINE = ("spine05", "spine04", "spine03", "spine02", "spine01")  # lowest first
SIDES = ("L", "R")
BODY_BONES: tuple[str, ...] = (
    "root",
    *SPINE,
    *(f"{b}.{s}" for s in SIDES for b in ("upperarm01", "lowerarm01", "lowerarm02", "wrist")),
    *(f"{b}.{s}" for s in SIDES for b in ("upperleg01", "lowerleg01", "foot")),
)
HAND_BONES: tuple[str, ...] = tuple(f"finger{f}-{k}.{s}" for s in SIDES for f in range(1, 6) for k in (1, 2, 3))
CURL_LIMITS_DEG = (-30.0, 110.0)  # hyperextension .. full flexion of one finger joint


def _twist_angle(R: np.ndarray, axis: np.ndarray) -> float:
    """Angle (radians) of the twist part of R [3, 3] about the unit `axis` [3] (swing-twist decomposition)."""
    r = matrix_to_rotvec(R)
    theta = float(np.linalg.norm(r))
    if theta < 1e-12:
        return 0.0
    half = 0.5 * theta
    return 2.0 * float(np.arctan2(np.sin(half) * np.dot(r / theta, axis), np.cos(half)))


_EYE = np.eye(3)
RELAXED_ARMS: dict[str, tuple[float, float, float]] = {  # degrees, PoseEdit convention (= poses.yaml 'standing')
    "upperarm01.L": (0.0, 0.0, -30.0),
    "upperarm01.R": (0.0, 0.0, 30.0),
    "lowerarm01.L": (0.0, -10.0, 0.0),
    "lowerarm01.R": (0.0, 10.0, 0.0),
}


class BodyRetargeter:
    """Landmarks -> `pose.<bone>.x|y|z` channels (degrees) of the body (+ `root.y`) and of the fingers.

    body: solve root yaw, spine, arms, wrists, legs and feet (channels of the "body" group);
    hands: solve fingers and thumbs from the hand landmarks (the "hands" group);
    ground: lower the root so the lowest foot stays at its rest height (crouching, kneeling);
    min_visibility: pose landmarks seen less than this keep their joints at the last value;
    max_forearm_twist_deg: the part of the hand's twist that lowerarm02 takes (the rest stays on the wrist).
    """

    def __init__(
        self,
        *,
        body: bool = True,
        hands: bool = True,
        ground: bool = True,
        min_visibility: float = 0.5,
        max_forearm_twist_deg: float = 120.0,
        skeleton: Skeleton | None = None,
        relaxed_arms: bool = False,
    ) -> None:
        self.body, self.hands, self.ground = body, hands, ground
        self.min_visibility = float(min_visibility)
        self.max_twist = np.radians(max_forearm_twist_deg)
        self.skeleton = sk = skeleton or default_skeleton()
        # Arms never seen (an upper-body webcam shot) hang relaxed, as the 'standing' preset, instead of the A pose.
        self._idle = {b: rotvec_to_matrix(np.radians(v)) for b, v in RELAXED_ARMS.items()} if relaxed_arms else {}
        J = len(sk.names)
        x0, G0 = forward_kinematics(sk, np.tile(np.eye(3), (J, 1, 1)))
        self._rest_pose = pose_points(sk, x0, G0)  # [33, 3] project frame
        self._rest_hand = {s: hand_points(sk, x0, G0, s) for s in SIDES}  # [21, 3] each
        self._rest_ground = self._ground_height(self._rest_pose)
        # Fingers 2-5 bend about the axis across their proximal phalanx in the palm's plane; curling is positive
        # towards the palm. The palm faces the thigh at rest, i.e. -x for the left hand and +x for the right.
        self._hinge: dict[tuple[str, int], np.ndarray] = {}
        self._rest_curl: dict[tuple[str, int], np.ndarray] = {}
        for s in SIDES:
            h = self._rest_hand[s]
            palm = self._palm_normal(h, s)
            for f in (2, 3, 4, 5):
                b = FINGER_BASE[f]
                hinge = normalize(cross(h[b + 1] - h[b], palm))
                self._hinge[s, f] = hinge
                self._rest_curl[s, f] = self._curls(h, f, hinge)
        self._local: dict[str, np.ndarray] = {}
        self._hand_rot: dict[str, np.ndarray | None] = {s: None for s in SIDES}
        self._root_y = 0.0
        self.chest_rotation = np.eye(3)  # [3, 3] world rotation of spine01 (for expressing the head relative to it)

    def hinge_axis(self, side: str, finger: int) -> np.ndarray:
        """Unit axis [3] (reference pose, world axes) about which finger 2-5 of `side` curls towards the palm."""
        return self._hinge[side, finger].copy()

    def reset(self) -> None:
        """Back to the rest pose (forget the last values)."""
        self._local.clear()
        self._hand_rot = {s: None for s in SIDES}
        self._root_y = 0.0
        self.chest_rotation = np.eye(3)

    # Public -------------------------------------------------------------------------------------------
    def __call__(self, lm: Landmarks) -> dict[str, float]:
        hand_rot = {s: None for s in SIDES}
        for s, hw in (("L", lm.left_hand_world), ("R", lm.right_hand_world)):
            H = self._points(hw, NUM_HAND, f"{s} hand world landmarks")
            if H is not None:
                hand_rot[s] = self._hand_rotation(H, s)
                if self.hands:
                    self._solve_fingers(H, s, hand_rot[s])
        if self.body:
            P = self._points(lm.pose_world, NUM_POSE, "pose_world")
            if P is not None:
                vis = np.ones(NUM_POSE)
                if lm.pose is not None and np.shape(lm.pose) == (NUM_POSE, 4):
                    vis = np.nan_to_num(np.asarray(lm.pose, dtype=np.float64)[:, 3], nan=0.0)
                self._solve_body(P, vis, hand_rot)
        return self.channels()

    def channels(self) -> dict[str, float]:
        """The current solution as driving channels (joints never solved are at rest, or hang relaxed with relaxed_arms)."""
        out: dict[str, float] = {}
        bones = (BODY_BONES if self.body else ()) + (HAND_BONES if self.hands else ())
        rotvecs = np.degrees(matrix_to_rotvec(np.stack([self._rot(b) for b in bones])))  # [n, 3]
        for bone, r in zip(bones, rotvecs.tolist(), strict=True):
            for axis, v in zip("xyz", r, strict=True):
                out[f"pose.{bone}.{axis}"] = v
        if self.body and self.ground:
            out["root.y"] = float(self._root_y)
        return out

    # Inputs -------------------------------------------------------------------------------------------
    @staticmethod
    def _points(p: np.ndarray | None, n: int, what: str) -> np.ndarray | None:
        if p is None:
            return None
        p = np.asarray(p, dtype=np.float64)
        if p.shape != (n, 3):
            raise ValueError(f"{what}: expected [{n}, 3] mediapipe world landmarks, got shape {p.shape}")
        if not np.isfinite(p).all():
            return None
        return mediapipe_to_world(p)

    def _seen(self, vis: np.ndarray, *idx: int) -> bool:
        return all(vis[i] >= self.min_visibility for i in idx)

    def _G(self, bone: str) -> np.ndarray:
        """World rotation of `bone` from the current local rotations (only the chain above it)."""
        sk, G, j = self.skeleton, np.eye(3), self.skeleton.index(bone)
        chain = []
        while j >= 0:
            chain.append(sk.names[j])
            j = sk.parents[j]
        for name in reversed(chain):
            G = G @ self._rot(name)
        return G

    # Body ---------------------------------------------------------------------------------------------
    def _solve_body(self, P: np.ndarray, vis: np.ndarray, hand_rot: dict[str, np.ndarray | None]) -> None:
        rest = self._rest_pose
        hips_seen = self._seen(vis, HIP["L"], HIP["R"])
        if hips_seen:
            h, h0 = P[HIP["L"]] - P[HIP["R"]], rest[HIP["L"]] - rest[HIP["R"]]
            yaw = np.arctan2(-h[2], h[0]) - np.arctan2(-h0[2], h0[0])
            self._local["root"] = rotation_y(float(yaw))
        if self._seen(vis, SHOULDER["L"], SHOULDER["R"]):
            self._solve_spine(P, hips_seen)
        chest = self._G("spine01")
        self.chest_rotation = chest
        for s in SIDES:
            self._limb(P, vis, chest, s, (SHOULDER, ELBOW, WRIST), ("upperarm01", "lowerarm01"))
            self._solve_wrist(P, vis, s, hand_rot[s])
            self._limb(P, vis, self._G("root"), s, (HIP, KNEE, ANKLE, FOOT_INDEX), ("upperleg01", "lowerleg01", "foot"))
        if self.ground:
            x, G = forward_kinematics(self.skeleton, self._local_array())
            self._root_y = self._rest_ground - self._ground_height(pose_points(self.skeleton, x, G))

    def _solve_spine(self, P: np.ndarray, hips_seen: bool) -> None:
        """Torso frame (hips -> shoulders, shoulder line) spread over the spine bones, refined by forward
        kinematics because a bend spread along the spine is not a rigid turn of the torso."""
        rest = self._rest_pose
        mid = (SHOULDER["L"], SHOULDER["R"], HIP["L"], HIP["R"])

        def frame_rotation(Q: np.ndarray, R: np.ndarray) -> np.ndarray:
            """Rotation taking the torso directions of points R onto those of points Q."""
            s_q, s_r = Q[mid[0]] - Q[mid[1]], R[mid[0]] - R[mid[1]]
            if not hips_seen:
                return swing(s_r, s_q)
            u_q = 0.5 * (Q[mid[0]] + Q[mid[1]] - Q[mid[2]] - Q[mid[3]])
            u_r = 0.5 * (R[mid[0]] + R[mid[1]] - R[mid[2]] - R[mid[3]])
            return align_frames(u_r, s_r, u_q, s_q)

        root = self._local.get("root", np.eye(3))
        rel = root.T @ frame_rotation(P, rest)  # torso rotation relative to the root
        for _ in range(3):
            step = rotvec_to_matrix(matrix_to_rotvec(rel) / len(SPINE))
            for bone in SPINE:
                self._local[bone] = step
            x, G = forward_kinematics(self.skeleton, self._local_array())
            err = frame_rotation(P, pose_points(self.skeleton, x, G))
            if np.linalg.norm(matrix_to_rotvec(err)) < 1e-4:
                break
            rel = root.T @ err @ root @ rel

    def _limb(self, P, vis, G_parent, s: str, marks: tuple[dict, ...], bones: tuple[str, ...]) -> None:
        """Swing each bone of a limb onto the observed segment, parent first (keep the last value if unseen)."""
        rest, G = self._rest_pose, G_parent
        for k, bone in enumerate(bones):
            a, b = marks[k][s], marks[k + 1][s]
            name = f"{bone}.{s}"
            if self._seen(vis, a, b):
                d = P[b] - P[a]
                if np.linalg.norm(d) > 1e-6:
                    self._local[name] = swing(rest[b] - rest[a], G.T @ d)
            # Bones between two solved ones (upperarm02, lowerleg02, ...) stay at rest.
            G = G @ self._rot(name)

    def _solve_wrist(self, P, vis, s: str, hand_rot: np.ndarray | None) -> None:
        """The hand's world orientation relative to the forearm: twist about the forearm -> lowerarm02."""
        rest = self._rest_pose
        if hand_rot is None:
            w, i, p = WRIST[s], INDEX[s], PINKY[s]
            if not self._seen(vis, w, i, p):
                return
            a, a0 = 0.5 * (P[i] + P[p]) - P[w], 0.5 * (rest[i] + rest[p]) - rest[w]
            hand_rot = align_frames(a0, rest[i] - rest[p], a, P[i] - P[p])
        G_fore = self._G(f"lowerarm01.{s}")
        total = G_fore.T @ hand_rot  # wrist relative to the forearm, lowerarm02 included
        axis = normalize(rest[WRIST[s]] - rest[ELBOW[s]])
        twist = float(np.clip(_twist_angle(total, axis), -self.max_twist, self.max_twist))
        T = rotvec_to_matrix(axis * twist)
        self._local[f"lowerarm02.{s}"] = T
        self._local[f"wrist.{s}"] = T.T @ total

    def _ground_height(self, points: np.ndarray) -> float:
        feet = [m[s] for m in (ANKLE, HEEL, FOOT_INDEX) for s in SIDES]
        return float(points[feet, 1].min())

    def _rot(self, bone: str) -> np.ndarray:
        """The bone's current local rotation: solved, else its idle rotation, else rest."""
        return self._local.get(bone, self._idle.get(bone, _EYE))

    def _local_array(self) -> np.ndarray:
        sk = self.skeleton
        local = np.tile(np.eye(3), (len(sk.names), 1, 1))
        for name, R in {**self._idle, **self._local}.items():
            local[sk.index(name)] = R
        return local

    # Hands --------------------------------------------------------------------------------------------
    @staticmethod
    def _palm_normal(H: np.ndarray, s: str) -> np.ndarray:
        """Unit normal out of the palm [3] from hand points [21, 3] (the cross product flips with the side)."""
        n = cross(H[FINGER_BASE[2]] - H[0], H[FINGER_BASE[5]] - H[0])
        return normalize(-n if s == "L" else n)

    def _hand_rotation(self, H: np.ndarray, s: str) -> np.ndarray:
        """World rotation [3, 3] of the hand relative to its reference pose, from its palm."""
        H0 = self._rest_hand[s]
        return align_frames(
            H0[FINGER_BASE[3]] - H0[0], H0[FINGER_BASE[2]] - H0[FINGER_BASE[5]],
            H[FINGER_BASE[3]] - H[0], H[FINGER_BASE[2]] - H[FINGER_BASE[5]],
        )  # fmt: skip

    @staticmethod
    def _curls(H: np.ndarray, f: int, hinge: np.ndarray) -> np.ndarray:
        """Bend angles (radians) [3] at a finger's MCP, PIP and DIP joints about `hinge` [3]."""
        b = FINGER_BASE[f]
        chain = H[[0, b, b + 1, b + 2, b + 3]]
        seg = chain[1:] - chain[:-1]  # [4, 3]
        return signed_angle(seg[:3], seg[1:], hinge)

    def _solve_fingers(self, H: np.ndarray, s: str, hand_rot: np.ndarray) -> None:
        lo, hi = np.radians(CURL_LIMITS_DEG)
        fingers = (2, 3, 4, 5)
        hinge = np.stack([self._hinge[s, f] for f in fingers])  # [4, 3]
        curl = np.stack([self._curls(H, f, hand_rot @ self._hinge[s, f]) - self._rest_curl[s, f] for f in fingers])
        R = rotvec_to_matrix(hinge[:, None, :] * np.clip(curl, lo, hi)[..., None])  # [4, 3, 3, 3]
        for i, f in enumerate(fingers):
            for k in range(3):
                self._local[f"finger{f}-{k + 1}.{s}"] = R[i, k]
        # The thumb moves in more than one plane: swing each of its bones onto the observed segment.
        H0, G = self._rest_hand[s], hand_rot
        b = FINGER_BASE[1]
        for k in range(3):
            d = H[b + k + 1] - H[b + k]
            name = f"finger1-{k + 1}.{s}"
            if np.linalg.norm(d) > 1e-6:
                self._local[name] = swing(H0[b + k + 1] - H0[b + k], G.T @ d)
            G = G @ self._rot(name)
