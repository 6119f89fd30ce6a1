"""Pure maths of face retargeting: mediapipe face-mesh indices, similarity Procrustes against a neutral template,
head rotation in world axes, iris gaze, and the geometric measurements that expressions are read from.

Coordinates: landmarks in pixels with camera axes (x right, y down, z away from the camera), as mediapipe's
normalised (x, y, z) times (W, H, W). "Aligned" landmarks are expressed in the template's frame: rotation,
translation and scale removed, one unit = the distance between the two eye centres (interocular distance).
"""

from __future__ import annotations

import math

import numpy as np

# Mediapipe face-mesh indices (478 points with irises). "R" is the person's right side (the image's left
# in an unmirrored camera picture), "L" the person's left.
EYE_R_OUTER, EYE_R_INNER = 33, 133
EYE_L_INNER, EYE_L_OUTER = 362, 263
EYE_R_LIDS = ((159, 145), (158, 153), (160, 144))  # (upper, lower) pairs
EYE_L_LIDS = ((386, 374), (385, 380), (387, 373))
IRIS_R, IRIS_L = 468, 473  # iris centres
BROW_R_INNER, BROW_R_MID, BROW_R_OUTER = 107, 105, 70
BROW_L_INNER, BROW_L_MID, BROW_L_OUTER = 336, 334, 300
MOUTH_R, MOUTH_L = 61, 291  # corners
LIP_UPPER_OUTER, LIP_UPPER_INNER, LIP_LOWER_INNER, LIP_LOWER_OUTER = 0, 13, 14, 17
LIP_UPPER_R, LIP_UPPER_L = 40, 270  # upper lip near the corners (lifts in mouthUpperUp)
LIP_LOWER_R, LIP_LOWER_L = 91, 321  # lower lip near the corners (drops in mouthLowerDown)
SEAM_R, SEAM_L = (80, 88), (310, 318)  # (upper, lower) inner lip points next to the corners: the seam there
NOSE_TIP, SUBNASALE, NOSE_BRIDGE = 1, 2, 168
ALA_R, ALA_L = 129, 358  # nose wings
CHEEK_R, CHEEK_L = 50, 280
CHIN = 152

# Points that move little with expression (eye corners, nose ridge, forehead, temples, cheekbones):
# the rigid head pose is fitted to these.
RIGID_POINTS: tuple[int, ...] = (
    33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 10, 151, 9, 8,
    234, 454, 127, 356, 93, 323, 21, 251, 54, 284, 103, 332, 67, 297, 109, 338, 116, 345, 117, 346,
)  # fmt: skip

# Camera axes (x right, y down, z forward) -> world axes (x = person's left, y up, z toward the camera)
# for a camera in front of the person looking at them.
CAM_TO_WORLD = np.diag([1.0, -1.0, -1.0])


def landmarks_to_pixels(
    face: np.ndarray,  # [478, 3] mediapipe normalised x, y, z
    image_size: tuple[int, int],  # (W, H)
) -> np.ndarray:
    """[478, 3] in pixels (z scaled like x, as mediapipe defines it)."""
    if face.ndim != 2 or face.shape[1] != 3 or face.shape[0] < 468:
        raise ValueError(f"face landmarks: expected [478, 3] (mediapipe face mesh with irises), got {face.shape}")
    W, H = image_size
    return np.asarray(face, np.float64) * np.array([W, H, W], np.float64)


def similarity_procrustes(
    src: np.ndarray,  # [P, 3]
    dst: np.ndarray,  # [P, 3]
) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale s, rotation R [3, 3] and translation t [3] minimising |dst - (s R src + t)|^2 (Umeyama)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    U, S, Vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(U @ Vt)) or 1.0
    D = np.diag([1.0, 1.0, d])
    R = U @ D @ Vt
    s = float((S * np.diag(D)).sum() / max((a**2).sum(), 1e-12))
    return s, R, mu_d - s * R @ mu_s


def normalise_template(points: np.ndarray) -> np.ndarray:
    """Centre a face [478, 3] (camera axes) on the nose bridge and scale it to unit interocular distance."""
    eye_r = points[[EYE_R_OUTER, EYE_R_INNER]].mean(0)
    eye_l = points[[EYE_L_INNER, EYE_L_OUTER]].mean(0)
    return (points - points[NOSE_BRIDGE]) / np.linalg.norm(eye_l - eye_r)


def align_to_template(
    pixels: np.ndarray,  # [478, 3] observed, pixels, camera axes
    template: np.ndarray,  # [478, 3] neutral face, normalised (see normalise_template)
) -> tuple[np.ndarray, np.ndarray]:
    """The observed face in the template's frame [478, 3] and the rotation R_cam [3, 3] (template -> observed)."""
    idx = list(RIGID_POINTS)
    s, R, t = similarity_procrustes(template[idx], pixels[idx])
    aligned = (pixels - t) @ R / s  # R^T (p - t) / s, row-wise
    return aligned, R


def rotvec_from_matrix(R: np.ndarray) -> np.ndarray:
    """Rotation matrix [3, 3] -> axis-angle [3] (radians), robust near 0 and pi."""
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    angle = math.acos(cos)
    if angle < 1e-8:
        return np.zeros(3)
    if angle > math.pi - 1e-4:
        # Near pi the antisymmetric part vanishes: take the axis from the symmetric part.
        M = (R + np.eye(3)) / 2.0
        axis = M[int(np.argmax(np.diag(M)))]
        return axis / np.linalg.norm(axis) * angle
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return w / (2.0 * math.sin(angle)) * angle


def matrix_from_rotvec(v: np.ndarray) -> np.ndarray:
    """Axis-angle [3] (radians) -> rotation matrix [3, 3] (Rodrigues)."""
    theta = float(np.linalg.norm(v))
    if theta < 1e-12:
        return np.eye(3)
    k = v / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * K + (1 - math.cos(theta)) * K @ K


def head_rotation_world(R_cam: np.ndarray) -> np.ndarray:
    """Head rotation [3, 3] in world axes (person facing +z, y up) from the camera-frame rotation of the face."""
    return CAM_TO_WORLD @ R_cam @ CAM_TO_WORLD


def iris_offsets(aligned: np.ndarray) -> np.ndarray:
    """Iris centre relative to its eye [2, 2]: rows (right eye, left eye), columns (x, y) in half eye widths,
    x toward the image's right (the person's left), y down; measured in the head frame."""
    out = np.zeros((2, 2))
    for row, (a, b, iris) in enumerate(((EYE_R_OUTER, EYE_R_INNER, IRIS_R), (EYE_L_INNER, EYE_L_OUTER, IRIS_L))):
        centre = (aligned[a] + aligned[b]) / 2
        half = np.linalg.norm(aligned[b, :2] - aligned[a, :2]) / 2
        out[row] = (aligned[iris, :2] - centre[:2]) / max(half, 1e-9)
    return out


def _dist(p: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(p[a, :2] - p[b, :2]))


def face_measurements(aligned: np.ndarray) -> dict[str, float]:
    """Geometric measurements of an aligned face (interocular units; heights are positive upwards).

    Each is one number that one or a few expressions change; `FaceRetargeter` maps their change from the
    neutral template to ARKit coefficients.
    """
    p = aligned
    y = -p[:, 1]  # up+
    m: dict[str, float] = {}
    for side, (outer, inner, lids) in {
        "R": (EYE_R_OUTER, EYE_R_INNER, EYE_R_LIDS),
        "L": (EYE_L_OUTER, EYE_L_INNER, EYE_L_LIDS),
    }.items():
        width = _dist(p, outer, inner)
        m[f"eye_open_{side}"] = float(np.mean([_dist(p, u, lo) for u, lo in lids])) / max(width, 1e-9)
        corner_y = (y[outer] + y[inner]) / 2
        m[f"lower_lid_{side}"] = float(np.mean([y[lo] for _, lo in lids]) - corner_y)
        bi, bm, bo = (
            (BROW_R_INNER, BROW_R_MID, BROW_R_OUTER) if side == "R" else (BROW_L_INNER, BROW_L_MID, BROW_L_OUTER)
        )
        m[f"brow_inner_{side}"] = float(y[bi] - y[inner])
        m[f"brow_mid_{side}"] = float(y[bm] - corner_y)
        m[f"brow_outer_{side}"] = float(y[bo] - y[outer])
    mid_x = (p[NOSE_BRIDGE, 0] + p[NOSE_TIP, 0]) / 2
    for side, corner, ala, cheek, up, low, seam in (
        ("R", MOUTH_R, ALA_R, CHEEK_R, LIP_UPPER_R, LIP_LOWER_R, SEAM_R),
        ("L", MOUTH_L, ALA_L, CHEEK_L, LIP_UPPER_L, LIP_LOWER_L, SEAM_L),
    ):
        m[f"corner_height_{side}"] = float(y[corner] - y[SUBNASALE])  # negative: corners are below the nose
        # above the line between the lips: blind to the whole mouth rising (a raised chin, a pitch misread)
        m[f"corner_lift_{side}"] = float(y[corner] - (y[LIP_UPPER_INNER] + y[LIP_LOWER_INNER]) / 2)
        # above the seam beside it: the corner's own upturn, blind to the lips parting and to the head's pitch
        m[f"corner_upturn_{side}"] = float(y[corner] - (y[seam[0]] + y[seam[1]]) / 2)
        m[f"corner_width_{side}"] = float(abs(p[corner, 0] - mid_x))
        m[f"ala_height_{side}"] = float(y[ala] - y[NOSE_TIP])
        m[f"cheek_height_{side}"] = float(y[cheek] - y[NOSE_TIP])
        m[f"upper_lip_{side}"] = float(y[up] - y[SUBNASALE])
        m[f"lower_lip_{side}"] = float(y[low] - y[CHIN])
    m["lip_gap"] = _dist(p, LIP_UPPER_INNER, LIP_LOWER_INNER)
    m["mouth_width"] = _dist(p, MOUTH_R, MOUTH_L)
    m["upper_lip_thickness"] = _dist(p, LIP_UPPER_OUTER, LIP_UPPER_INNER)
    m["lower_lip_thickness"] = _dist(p, LIP_LOWER_INNER, LIP_LOWER_OUTER)
    m["chin_drop"] = float(y[SUBNASALE] - y[CHIN])
    m["chin_x"] = float(p[CHIN, 0] - mid_x)
    m["mouth_x"] = float((p[LIP_UPPER_OUTER, 0] + p[LIP_LOWER_OUTER, 0]) / 2 - mid_x)
    return m
