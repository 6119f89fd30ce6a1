"""Face retargeting: mediapipe face-mesh landmarks -> ARKit expression coefficients, gaze and head rotation.

Head rotation is a similarity Procrustes fit of the expression-free points of the mesh to a neutral template
(assets/tracking/face_template.npz, built by `python -m core.eval.fit_face`). Expressions are read
geometrically from the head-aligned mesh, Kalidokit-style: each coefficient is the change of one measurement
(eye aperture / eye width, lip gap, mouth-corner upturn, brow height, ...) from its neutral value, divided by
the change that a full expression makes, clamped to [0, 1]. The blink also takes the picture: lids lowered over
a downward gaze give the mesh the aperture of shut ones, so where the tracker saw a solid strip of iris under both
upper lids (core/tracking/eye_image.py) the blink is held at a lowered lid's (`lowered_lid_blink`).
`reading="learned"` replaces these rules by a ridge regression fitted on renders of synthetic people with known
coefficients (core/tracking/face_regressor.py): an experiment, kept for the comparison in docs/RESULTS.md ("Live
driving accuracy"); it does not read real faces.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.tracking.face_geometry import (
    align_to_template,
    face_measurements,
    head_rotation_world,
    iris_offsets,
    landmarks_to_pixels,
    rotvec_from_matrix,
)
from core.tracking.types import Landmarks

log = logging.getLogger(__name__)

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "assets" / "tracking" / "face_template.npz"

# Iris travel in half eye widths for a 90 degree turn (eyeball radius / half eye width): 12 mm / 15 mm.
GAZE_RADIUS_X, GAZE_RADIUS_Y = 0.8, 0.55
GAZE_LIMIT_DEG = 35.0
BLINK_HOLDS_GAZE = 0.6  # above this blink the iris is hidden: gaze keeps its last value


@dataclass(frozen=True)
class LinearRule:
    """coefficient = clamp(direction * (mean of measurements - neutral) / span, 0, 1)."""

    channel: str  # ARKit name
    measurements: tuple[str, ...]
    direction: float  # +1: grows with the measurement, -1: grows as it shrinks
    span: float  # change of the measurement (interocular units or ratio) at coefficient 1


def _sided(name: str, measure: str, direction: float, span: float) -> tuple[LinearRule, LinearRule]:
    return (
        LinearRule(f"{name}Left", (f"{measure}_L",), direction, span),
        LinearRule(f"{name}Right", (f"{measure}_R",), direction, span),
    )


# Spans: interocular distance (~63 mm) is 1; eye aperture is a ratio of eye width (neutral ~0.3).
LINEAR_RULES: tuple[LinearRule, ...] = (
    *_sided("eyeWide", "eye_open", +1.0, 0.10),
    *_sided("eyeSquint", "lower_lid", +1.0, 0.05),
    *_sided("browDown", "brow_mid", -1.0, 0.10),
    *_sided("browOuterUp", "brow_outer", +1.0, 0.12),
    LinearRule("browInnerUp", ("brow_inner_L", "brow_inner_R"), +1.0, 0.12),
    *_sided("mouthUpperUp", "upper_lip", +1.0, 0.10),
    *_sided("noseSneer", "ala_height", +1.0, 0.05),
    *_sided("cheekSquint", "cheek_height", +1.0, 0.07),
    LinearRule("jawLeft", ("chin_x",), +1.0, 0.12),
    LinearRule("jawRight", ("chin_x",), -1.0, 0.12),
    LinearRule("mouthLeft", ("mouth_x",), +1.0, 0.10),
    LinearRule("mouthRight", ("mouth_x",), -1.0, 0.10),
    LinearRule("mouthRollUpper", ("upper_lip_thickness",), -1.0, 0.07),
    LinearRule("mouthRollLower", ("lower_lip_thickness",), -1.0, 0.09),
    LinearRule("mouthShrugLower", ("chin_drop",), -1.0, 0.08),
)
JAW_OPEN_SPAN = 0.55  # lip gap (interocular units) of a wide-open mouth
JAW_SMILE_GAP = 0.20  # lip gap that a full smile opens with the teeth together (no jaw in it)
EYE_SHUT = 0.04  # eye aperture (ratio of eye width) of a shut eye as the face mesh reads it: a blink of 1
UPTURN_FULL = 0.09  # corner upturn above the seam beside it (interocular units) in a full smile
UPTURN_JITTER = 0.02  # upturn changes the mesh makes at rest, not a smile (or a frown)
UPTURN_MIN_SPAN = 0.03  # smallest rest-to-full-smile upturn span (faces whose corners turn up strongly at rest)
FROWN_DOWNTURN_SPAN = 0.04  # corner downturn below the seam beside it of a full frown
BLINK_CURVE = 2.0  # eyeBlink = closure ** BLINK_CURVE (closure: 0 the open eye, 1 shut)
# The strip under the upper lid (eye_image.under_lid_light, its lightest tenth against the skin): iris shows at or
# below IRIS_STRIP_DARK, lid or lashes at or above IRIS_STRIP_LIGHT. On the labelled real frames lowered lids over
# a dark strip of iris read 0.21-0.28 (both eyes' larger value) and shut eyes 0.41 and up (mascara smeared by
# tears at the bottom of that range, other people's shut lids 0.67 and up); the ramp sits between the two.
IRIS_STRIP_DARK, IRIS_STRIP_LIGHT = 0.30, 0.38
LOWERED_LID_BLINK = 0.3  # eyeBlink of lids lowered over a downward gaze with the iris showing: open, looking down
MOUTH_NARROW_SPAN = 0.35  # relative loss of mouth width in a full pucker
STRETCH_SPAN = 0.15
FROWN_SPAN = 0.08
LOWER_DOWN_SPAN = 0.07
CLOSE_SPAN = 0.25

# Every ARKit channel this retargeter writes (the others, e.g. tongueOut, cheekPuff, eyeLook* and
# mouthDimple*, are not observable in the face mesh; eye direction goes out as gaze.yaw / gaze.pitch).
EXPRESSION_CHANNELS: tuple[str, ...] = tuple(
    sorted(
        {r.channel for r in LINEAR_RULES}
        | {"jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthPressLeft", "mouthPressRight"}
        | {"mouthFrownLeft", "mouthFrownRight", "mouthStretchLeft", "mouthStretchRight"}
        | {"mouthLowerDownLeft", "mouthLowerDownRight", "eyeBlinkLeft", "eyeBlinkRight"}
        | {"mouthSmileLeft", "mouthSmileRight"}
    )
)


def _clamp01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def upturn_share(upturn: float, rest: float) -> float:
    """How far a mouth corner went from the person's resting upturn towards a full smile's (unclamped).

    The upturn is the corner's height above the lip seam beside it (face_measurements): a smile curls the corners
    up there, while a raised chin (crying, pouting) lifts the whole mouth and parting lips move the seam's centre,
    neither of which bends the seam at the corners. A full smile's upturn is about the same for everyone, while
    the resting one differs (a face whose corners turn up at rest is half-way there), so the span runs from the
    person's rest to that full upturn rather than being one fixed distance.
    """
    return (upturn - rest - UPTURN_JITTER) / max(UPTURN_FULL - rest - UPTURN_JITTER, UPTURN_MIN_SPAN)


def blink_from_aperture(aperture: float, neutral: float) -> float:
    """eyeBlink from an eye's aperture (ratio of eye width) and the person's open aperture."""
    # From the person's open eye to a shut one: a lowered lid or a narrow eye stays short of 1. The mesh narrows
    # the slit fast as lids come down over a downward gaze, so closure counts as its power BLINK_CURVE: half-way
    # down reads a quarter blink, lids on the iris (aperture ~0.09) about a half.
    shut = max(neutral - EYE_SHUT, 0.05)
    return _clamp01((neutral - aperture) / shut) ** BLINK_CURVE


def iris_shown(under_lid: np.ndarray | None) -> float:
    """How plainly [0, 1] the picture shows iris under both upper lids, from eye_image.under_lid_light [2].

    Both eyes must show it (the larger, lighter value counts): lids follow the gaze together, so one eye's dark
    strip alone is more likely smeared make-up or a shadow than a lowered lid. None or NaN (no picture, an eye
    too small to sample): 0, the mesh's blink stands.
    """
    if under_lid is None:
        return 0.0
    light = np.asarray(under_lid, np.float64)
    if light.shape != (2,) or not np.isfinite(light).all():
        return 0.0
    return _clamp01((IRIS_STRIP_LIGHT - float(light.max())) / (IRIS_STRIP_LIGHT - IRIS_STRIP_DARK))


def lowered_lid_blink(blink: float, shown: float) -> float:
    """eyeBlink with the picture's evidence `shown` (iris_shown): where iris shows under the lids (1), a mesh that
    reads them shut is reading lowered lids, and the blink is held at LOWERED_LID_BLINK; a blink below that, or no
    iris seen (0), is unchanged; between, a share of the way."""
    return blink - shown * max(blink - LOWERED_LID_BLINK, 0.0)


def expression_coefficients(m: Mapping[str, float], neutral: Mapping[str, float]) -> dict[str, float]:
    """ARKit coefficients in [0, 1] from face measurements `m` and their neutral values (see face_measurements)."""
    d = {k: m[k] - neutral[k] for k in m}
    out: dict[str, float] = {}
    for r in LINEAR_RULES:
        change = sum(d[k] for k in r.measurements) / len(r.measurements)
        out[r.channel] = _clamp01(r.direction * change / r.span)
    for side, name in (("L", "Left"), ("R", "Right")):
        out[f"eyeBlink{name}"] = blink_from_aperture(m[f"eye_open_{side}"], neutral[f"eye_open_{side}"])
        out[f"mouthSmile{name}"] = _clamp01(upturn_share(m[f"corner_upturn_{side}"], neutral[f"corner_upturn_{side}"]))
    smiling = (out["mouthSmileLeft"] + out["mouthSmileRight"]) / 2
    # A smile parts the lips over closed teeth: that much of the gap is not the jaw.
    jaw = _clamp01((d["lip_gap"] - JAW_SMILE_GAP * smiling) / JAW_OPEN_SPAN)
    out["jawOpen"] = jaw
    # A closed mouth on a dropped jaw: the chin went down but the lips did not part.
    out["mouthClose"] = _clamp01((d["chin_drop"] - 1.2 * d["lip_gap"]) / CLOSE_SPAN)
    narrow = _clamp01(-d["mouth_width"] / (MOUTH_NARROW_SPAN * neutral["mouth_width"]))
    rounded = _clamp01(d["lip_gap"] / 0.15)  # a funnel is a narrow mouth with the lips apart
    out["mouthPucker"] = narrow * (1.0 - rounded)
    out["mouthFunnel"] = narrow * rounded
    press = (out["mouthRollUpper"] + out["mouthRollLower"]) / 2 * (1.0 - _clamp01(d["lip_gap"] / 0.1))
    for side, name in (("L", "Left"), ("R", "Right")):
        smile = out[f"mouthSmile{name}"]
        # Two readings of a frown, averaged: the corners' drop below the nose (less the drop the opening jaw
        # gives them) and their downturn below the seam beside them (blind to the jaw and to a raised chin).
        below_nose = _clamp01((-d[f"corner_height_{side}"] - 0.25 * d["lip_gap"]) / FROWN_SPAN)
        rest = neutral[f"corner_upturn_{side}"]
        downturn = _clamp01((rest - m[f"corner_upturn_{side}"] - UPTURN_JITTER) / FROWN_DOWNTURN_SPAN)
        out[f"mouthFrown{name}"] = (below_nose + downturn) / 2
        out[f"mouthStretch{name}"] = _clamp01(d[f"corner_width_{side}"] / STRETCH_SPAN - smile)
        out[f"mouthLowerDown{name}"] = _clamp01((-d[f"lower_lip_{side}"] - 0.35 * d["lip_gap"]) / LOWER_DOWN_SPAN)
        out[f"mouthPress{name}"] = press
    return out


# Neutral measurements of a real face as the face mesh reads it (a frontal, relaxed adult face on a webcam),
# symmetrised. The synthetic template fixes the head pose only: its full lips and slit eyes read as rolled
# lips and a squint on real faces. (The shipped template predates the synthetic faces' open eyes and shaped
# lips; one rebuilt from the new faces read the real test clip's neutral with more mouthFrown, 0.35 vs 0.20, so
# the old one stays.) Eye aperture and mid-brow height are the means of the open eyes and relaxed brows of the
# real faces labelled in bench/labels/face_labels_real.json (0.25-0.35 and 0.33-0.41 from person to person; the
# earlier 0.33 and 0.42 sat at the top and read narrow eyes as half blinks and most brows as lowered).
# FaceRetargeter.set_neutral replaces these with a person's own neutral.
REAL_NEUTRAL: Mapping[str, float] = {
    **{f"{k}_{s}": v for s in "LR" for k, v in {
        "eye_open": 0.29, "lower_lid": -0.06, "brow_inner": 0.41, "brow_mid": 0.38, "brow_outer": 0.255,
        "corner_height": -0.305, "corner_lift": 0.03, "corner_width": 0.345, "ala_height": 0.11, "cheek_height": 0.205,
        "upper_lip": -0.27, "lower_lip": 0.62, "corner_upturn": 0.008,
    }.items()},
    "lip_gap": 0.0, "mouth_width": 0.69, "upper_lip_thickness": 0.08, "lower_lip_thickness": 0.14,
    "chin_drop": 1.0, "chin_x": 0.0, "mouth_x": -0.02,
}  # fmt: skip
NEUTRAL_EYE_MIN = 0.18  # an eye aperture below this in a neutral face is a lowered or shut lid, not an open eye
REAL_IRIS_NEUTRAL = np.array([[0.0, -0.09], [0.0, -0.09]])  # irises sit a little above the eye corners


@dataclass(frozen=True)
class FaceTemplate:
    """The neutral face: landmarks [478, 3] (normalised, see face_geometry), its measurements and iris rest."""

    landmarks: np.ndarray  # [478, 3]
    measurements: Mapping[str, float]
    iris: np.ndarray  # [2, 2] (right eye, left eye) x (x, y), half eye widths
    info: Mapping[str, object]


def template_from_landmarks(landmarks: np.ndarray, info: Mapping[str, object] | None = None) -> FaceTemplate:
    """A template from a normalised neutral face [478, 3]."""
    if landmarks.shape != (478, 3):
        raise ValueError(f"face template: expected [478, 3] landmarks (face mesh with irises), got {landmarks.shape}")
    lm = np.asarray(landmarks, np.float64)
    return FaceTemplate(lm, face_measurements(lm), iris_offsets(lm), dict(info or {}))


@functools.cache
def load_face_template(path: Path | str | None = None) -> FaceTemplate:
    """The shipped neutral face template (or one written by core.eval.fit_face to `path`)."""
    path = Path(path) if path is not None else TEMPLATE_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"face template {path} is missing: rebuild it with `python -m core.eval.fit_face --out {path}`"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            landmarks = z["landmarks"]
            info = json.loads(str(z["info"])) if "info" in z else {}
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(
            f"face template {path} is not a readable template ({e}); rebuild it with `python -m core.eval.fit_face`"
        ) from e
    return template_from_landmarks(landmarks, info)


@dataclass(frozen=True)
class FaceObservation:
    """What the retargeter read from one face: head pose, aligned mesh, measurements and irises."""

    aligned: np.ndarray  # [478, 3] in the template frame
    R_world_head: np.ndarray  # [3, 3] head rotation in world axes (identity = facing the camera)
    measurements: Mapping[str, float]
    iris: np.ndarray  # [2, 2]
    under_lid_light: np.ndarray | None = None  # [2] from the picture (Landmarks.under_lid_light), None without


def observe_face(lm: Landmarks, template: FaceTemplate) -> FaceObservation | None:
    """Head pose and measurements of the face in `lm` (None when no face was found)."""
    if lm.face is None:
        return None
    pixels = landmarks_to_pixels(lm.face, lm.image_size)
    aligned, R_cam = align_to_template(pixels, template.landmarks)
    return FaceObservation(
        aligned, head_rotation_world(R_cam), face_measurements(aligned), iris_offsets(aligned), lm.under_lid_light
    )


def head_channels(R_world_head: np.ndarray, neck_share: float = 0.0) -> dict[str, float]:
    """pose.head.* (and pose.neck01/neck02.* when neck_share > 0) in degrees about the world axes.

    The rotation is split along its own axis, so the chain neck01 -> neck02 -> head composes back to it exactly.
    """
    if not 0.0 <= neck_share <= 1.0:
        raise ValueError(f"neck_share={neck_share}: give the share of the head rotation on the neck, in [0, 1]")
    v = np.degrees(rotvec_from_matrix(R_world_head))
    out = {f"pose.head.{a}": float(x) for a, x in zip("xyz", v * (1.0 - neck_share), strict=True)}
    if neck_share > 0.0:
        for joint in ("neck01", "neck02"):
            out.update({f"pose.{joint}.{a}": float(x) for a, x in zip("xyz", v * neck_share / 2, strict=True)})
    return out


def gaze_degrees(
    iris: np.ndarray, neutral: np.ndarray, weights: tuple[float, float] = (1.0, 1.0)
) -> tuple[float, float]:
    """(yaw right+, pitch up+) in degrees from iris offsets [2, 2] and their neutral [2, 2], eyes weighted."""
    w = np.asarray(weights, np.float64)
    off = ((iris - neutral) * w[:, None]).sum(0) / max(w.sum(), 1e-9)
    yaw = math.degrees(math.asin(float(np.clip(off[0] / GAZE_RADIUS_X, -1.0, 1.0))))
    pitch = math.degrees(math.asin(float(np.clip(-off[1] / GAZE_RADIUS_Y, -1.0, 1.0))))
    return float(np.clip(yaw, -GAZE_LIMIT_DEG, GAZE_LIMIT_DEG)), float(np.clip(pitch, -GAZE_LIMIT_DEG, GAZE_LIMIT_DEG))


# How expressions are read from the measurements: the hand-set rules above, or (an experiment) the ridge
# regression fitted on synthetic faces with known coefficients (core/tracking/face_regressor.py).
READINGS = ("geometric", "learned")


class FaceRetargeter:
    """Landmarks -> face channels: expr.<ARKit>, gaze.yaw/pitch, pose.head.* (+ neck share). Empty without a face.

    Left/right are the person's own sides in an unmirrored camera picture (mirroring is Calibration's job).
    The only state is the last gaze, held while the eyes are closed.
    """

    def __init__(
        self,
        *,
        template: FaceTemplate | None = None,
        neck_share: float = 0.0,
        expressions: bool = True,
        gaze: bool = True,
        head: bool = True,
        reading: str = "geometric",
        regressor: Path | None = None,
    ) -> None:
        if reading not in READINGS:
            raise ValueError(f"reading={reading!r}: choose one of {READINGS}")
        self.template = template or load_face_template()
        self.reading = reading
        if reading == "learned":
            from core.tracking.face_regressor import load_face_regressor

            self._regressor = load_face_regressor(regressor)
        self.neutral: dict[str, float] = dict(REAL_NEUTRAL)
        self.iris_neutral = REAL_IRIS_NEUTRAL.copy()
        head_channels(np.eye(3), neck_share)  # validates the share now
        self.neck_share = neck_share
        self.expressions, self.gaze, self.head = expressions, gaze, head
        self._last_gaze = (0.0, 0.0)
        self.last_observation: FaceObservation | None = None  # of the last call (None: no face)

    def observe(self, lm: Landmarks) -> FaceObservation | None:
        return observe_face(lm, self.template)

    def set_neutral(self, lm: Landmarks | FaceObservation | None) -> bool:
        """Take this face as the person's neutral (relaxed, eyes ahead); None restores the default. False: no face."""
        if lm is None:
            self.neutral, self.iris_neutral = dict(REAL_NEUTRAL), REAL_IRIS_NEUTRAL.copy()
            return True
        obs = lm if isinstance(lm, FaceObservation) else self.observe(lm)
        if obs is None:
            return False
        self.neutral, self.iris_neutral = dict(obs.measurements), obs.iris.copy()
        lowered = [s for s in "LR" if obs.measurements[f"eye_open_{s}"] < NEUTRAL_EYE_MIN]
        if lowered:
            # Lids lowered over a downward gaze (or shut) are no open eye: every open eye would read wide and
            # the gaze would point up. The eyes keep the default neutral; mouth and brows take this face.
            log.info("neutral face with lowered lids (%s): the eyes keep the default neutral", ", ".join(lowered))
            for k in ("eye_open", "lower_lid"):
                for s in "LR":
                    self.neutral[f"{k}_{s}"] = REAL_NEUTRAL[f"{k}_{s}"]
            self.iris_neutral = REAL_IRIS_NEUTRAL.copy()
        return True

    def __call__(self, lm: Landmarks) -> dict[str, float]:
        obs = self.last_observation = self.observe(lm)
        if obs is None:
            return {}
        out: dict[str, float] = {}
        if self.reading == "learned":
            coeffs = self._regressor(obs.measurements, self.neutral, obs.R_world_head)
        else:
            coeffs = expression_coefficients(obs.measurements, self.neutral)
        shown = iris_shown(obs.under_lid_light)
        if shown > 0.0:
            for name in ("eyeBlinkLeft", "eyeBlinkRight"):
                if name in coeffs:
                    coeffs[name] = lowered_lid_blink(coeffs[name], shown)
        if self.expressions:
            out.update({f"expr.{k}": v for k, v in coeffs.items()})
        if self.gaze:
            blink_r, blink_l = coeffs["eyeBlinkRight"], coeffs["eyeBlinkLeft"]
            if min(blink_r, blink_l) < BLINK_HOLDS_GAZE:
                weights = (max(1e-3, 1.0 - blink_r), max(1e-3, 1.0 - blink_l))
                self._last_gaze = gaze_degrees(obs.iris, self.iris_neutral, weights)
            out["gaze.yaw"], out["gaze.pitch"] = self._last_gaze
        if self.head:
            out.update(head_channels(obs.R_world_head, self.neck_share))
        return out

    def reset(self) -> None:
        self._last_gaze = (0.0, 0.0)
