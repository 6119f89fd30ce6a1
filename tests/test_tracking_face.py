"""Face retargeting: head pose maths, expression reading, and the mediapipe face mesh on synthetic renders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.tracking.face import (
    EXPRESSION_CHANNELS,
    REAL_NEUTRAL,
    FaceRetargeter,
    expression_coefficients,
    gaze_degrees,
    head_channels,
    load_face_template,
)
from core.tracking.face_geometry import (
    CAM_TO_WORLD,
    EYE_L_INNER,
    EYE_L_LIDS,
    EYE_L_OUTER,
    EYE_R_LIDS,
    LIP_LOWER_INNER,
    MOUTH_L,
    MOUTH_R,
    matrix_from_rotvec,
    rotvec_from_matrix,
    similarity_procrustes,
)
from core.tracking.types import Landmarks, channel_group


def _landmarks_from_template(R_world: np.ndarray, *, scale: float = 180.0, size: tuple[int, int] = (640, 480)):
    """The template face turned by R_world [3, 3] (world axes), placed in a picture as mediapipe would report it."""
    tpl = load_face_template().landmarks
    R_cam = CAM_TO_WORLD @ R_world @ CAM_TO_WORLD
    pix = scale * tpl @ R_cam.T + np.array([size[0] / 2, size[1] / 2, 0.0])
    return Landmarks(
        frame_index=0, image_size=size, face=(pix / np.array([size[0], size[1], size[0]])).astype(np.float32)
    )


def test_similarity_procrustes_recovers_scale_rotation_translation():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(40, 3))
    R = matrix_from_rotvec(np.array([0.3, -0.5, 0.2]))
    dst = 2.5 * src @ R.T + np.array([1.0, -2.0, 3.0])
    s, R_fit, t = similarity_procrustes(src, dst)
    assert s == pytest.approx(2.5, rel=1e-9)
    np.testing.assert_allclose(R_fit, R, atol=1e-9)
    np.testing.assert_allclose(t, [1.0, -2.0, 3.0], atol=1e-9)


def test_rotvec_round_trips_including_near_pi():
    for v in (np.array([0.0, 0.0, 0.0]), np.array([0.1, -0.4, 0.2]), np.array([0.0, math.pi - 1e-6, 0.0])):
        np.testing.assert_allclose(rotvec_from_matrix(matrix_from_rotvec(v)), v, atol=1e-5)


def test_head_channels_split_over_the_neck_composes_back_to_the_head_rotation():
    R = matrix_from_rotvec(np.radians([10.0, 25.0, -5.0]))
    ch = head_channels(R, neck_share=0.4)
    chain = np.eye(3)
    for joint in ("neck01", "neck02", "head"):
        chain = chain @ matrix_from_rotvec(np.radians([ch[f"pose.{joint}.{a}"] for a in "xyz"]))
    np.testing.assert_allclose(chain, R, atol=1e-9)
    assert all(channel_group(k) == "face" for k in ch)
    with pytest.raises(ValueError, match="neck_share"):
        head_channels(R, neck_share=1.5)


@pytest.mark.parametrize("yaw,pitch", [(20.0, 0.0), (-30.0, 0.0), (0.0, 15.0), (12.0, -10.0)])
def test_face_retargeter_reads_head_rotation_of_a_turned_template(yaw, pitch):
    R = matrix_from_rotvec(np.radians([0.0, yaw, 0.0])) @ matrix_from_rotvec(np.radians([-pitch, 0.0, 0.0]))
    ch = FaceRetargeter()(_landmarks_from_template(R))
    got = matrix_from_rotvec(np.radians([ch[f"pose.head.{a}"] for a in "xyz"]))
    err = math.degrees(math.acos(np.clip((np.trace(got.T @ R) - 1) / 2, -1, 1)))
    assert err < 0.5
    # yaw > 0 turns the face toward +x, the person's left (the picture's right in an unmirrored camera)
    if yaw:
        assert np.sign(ch["pose.head.y"]) == np.sign(yaw)


def test_expression_coefficients_are_zero_at_neutral_and_cover_the_channels():
    coeffs = expression_coefficients(REAL_NEUTRAL, REAL_NEUTRAL)
    assert set(coeffs) == set(EXPRESSION_CHANNELS)
    assert max(coeffs.values()) == 0.0
    opened = dict(REAL_NEUTRAL, lip_gap=0.3)
    assert expression_coefficients(opened, REAL_NEUTRAL)["jawOpen"] > 0.4
    # a smile curls the corner up above the lip seam beside it
    smiling = dict(REAL_NEUTRAL, corner_upturn_L=REAL_NEUTRAL["corner_upturn_L"] + 0.07)
    c = expression_coefficients(smiling, REAL_NEUTRAL)
    assert c["mouthSmileLeft"] > 0.6 and c["mouthSmileRight"] == 0.0


def _read(**measured: float) -> dict[str, float]:
    return expression_coefficients(dict(REAL_NEUTRAL, **measured), REAL_NEUTRAL)


def test_lowered_or_narrow_eyes_are_not_read_as_shut():
    # eye apertures (ratio of eye width) of the labelled real clips: shut 0.00-0.05, lids lowered over a downward
    # gaze 0.07-0.09, narrow open eyes 0.21
    shut = _read(eye_open_L=0.04, eye_open_R=0.04)["eyeBlinkLeft"]
    assert shut == 1.0
    lowered = _read(eye_open_L=0.09, eye_open_R=0.09)["eyeBlinkLeft"]
    assert 0.4 < lowered < 0.7 and shut - lowered > 0.3  # half-closed, well short of shut
    assert _read(eye_open_L=0.21, eye_open_R=0.21)["eyeBlinkRight"] < 0.15


def test_a_whole_mouth_rising_is_not_a_smile_and_corners_down_read_as_a_frown():
    # crying with a raised chin: the mouth moves up towards the nose as a block, the lip seam keeps its shape
    crying = _read(
        **{f"corner_{m}_{s}": REAL_NEUTRAL[f"corner_{m}_{s}"] + 0.08 for m in ("height", "lift") for s in "LR"}
    )
    assert crying["mouthSmileLeft"] == 0.0 and crying["mouthSmileRight"] == 0.0
    smiling = _read(corner_upturn_L=0.09, corner_upturn_R=0.09)
    assert smiling["mouthSmileLeft"] > 0.9 and smiling["mouthFrownLeft"] == 0.0
    # corners turned down below the seam and dropped below the nose: a frown, no smile
    frowning = _read(
        corner_upturn_L=REAL_NEUTRAL["corner_upturn_L"] - 0.05,
        corner_height_L=REAL_NEUTRAL["corner_height_L"] - 0.05,
    )
    assert frowning["mouthFrownLeft"] > 0.5 and frowning["mouthSmileLeft"] == 0.0


def test_a_face_whose_corners_turn_up_at_rest_smiles_from_its_own_rest():
    # the crying clip's woman: corner upturn 0.05 at rest and while crying, 0.09 when she laughs
    rest = dict(REAL_NEUTRAL, corner_upturn_L=0.05, corner_upturn_R=0.05)
    assert expression_coefficients(dict(rest, corner_upturn_L=0.058), rest)["mouthSmileLeft"] < 0.1
    assert expression_coefficients(dict(rest, corner_upturn_L=0.092), rest)["mouthSmileLeft"] > 0.7


def test_the_lip_gap_of_a_smile_over_closed_teeth_is_not_the_jaw():
    gap = 0.2
    c = _read(lip_gap=gap, corner_upturn_L=0.1, corner_upturn_R=0.1)
    assert c["mouthSmileLeft"] > 0.9 and c["jawOpen"] < 0.05
    assert _read(lip_gap=gap)["jawOpen"] > 0.3  # the same gap without a smile: talking
    assert _read(lip_gap=gap)["mouthSmileLeft"] == 0.0  # parted lips alone do not curl the corners


def test_relaxed_brows_of_real_faces_are_not_read_as_lowered():
    # mid-brow heights of the labelled real faces at rest: 0.33-0.41 interocular distances
    for h in (0.34, 0.37, 0.41):
        assert _read(brow_mid_L=h, brow_mid_R=h)["browDownLeft"] < 0.5, h
    assert _read(brow_mid_L=0.28, brow_mid_R=0.28)["browDownLeft"] > 0.95  # anger: 0.29


def test_gaze_follows_the_iris_with_the_studio_signs():
    neutral = np.zeros((2, 2))
    yaw, pitch = gaze_degrees(np.array([[0.3, 0.0], [0.3, 0.0]]), neutral)  # irises toward the picture's right
    assert yaw > 15 and abs(pitch) < 1e-9
    yaw, pitch = gaze_degrees(np.array([[0.0, -0.2], [0.0, -0.2]]), neutral)  # irises up (y down in the picture)
    assert pitch > 15 and abs(yaw) < 1e-9


def test_face_retargeter_without_a_face_returns_nothing_and_set_neutral_zeroes_the_face():
    fr = FaceRetargeter()
    assert fr(Landmarks(frame_index=0, image_size=(64, 64))) == {}
    lm = _landmarks_from_template(np.eye(3))
    assert fr.set_neutral(lm)
    ch = fr(lm)
    assert max(v for k, v in ch.items() if k.startswith("expr.")) < 1e-6
    assert abs(ch["gaze.yaw"]) < 1e-6 and abs(ch["gaze.pitch"]) < 1e-6
    # the lower lip drops: the mouth opens
    face = lm.face.copy()
    face[LIP_LOWER_INNER, 1] += 0.1  # 48 px, about 0.27 interocular distances
    assert fr(Landmarks(frame_index=1, image_size=lm.image_size, face=face))["expr.jawOpen"] > 0.3


def _moved(lm: Landmarks, points: dict[int, float]) -> Landmarks:
    """`lm` with the given points moved up (+) or down (-) by that many normalised image heights."""
    face = lm.face.copy()
    for i, dy in points.items():
        face[i, 1] -= dy
    return Landmarks(frame_index=1, image_size=lm.image_size, face=face)


def test_mesh_with_corners_down_reads_frown_and_a_raised_mouth_reads_no_smile():
    lm = _landmarks_from_template(np.eye(3))
    fr = FaceRetargeter()
    assert fr.set_neutral(lm)
    unit = 180.0 / 480.0  # one interocular distance in normalised image heights (_landmarks_from_template)
    down = fr(_moved(lm, {MOUTH_R: -0.06 * unit, MOUTH_L: -0.06 * unit}))
    assert down["expr.mouthFrownLeft"] > 0.5 and down["expr.mouthFrownLeft"] > down["expr.mouthSmileLeft"]
    up = fr(_moved(lm, {MOUTH_R: 0.1 * unit, MOUTH_L: 0.1 * unit}))
    assert up["expr.mouthSmileLeft"] > 0.8 and up["expr.mouthSmileLeft"] > up["expr.mouthFrownLeft"]
    # the whole mouth pushed up by a raised chin (crying): every lip point rises alike
    lips = {i: 0.06 * unit for i in range(468) if abs(lm.face[i, 1] - lm.face[LIP_LOWER_INNER, 1]) < 0.12 * unit}
    raised = fr(_moved(lm, lips))
    assert raised["expr.mouthSmileLeft"] < 0.1 and raised["expr.mouthSmileRight"] < 0.1


def test_a_lowered_gaze_neither_reads_shut_nor_spoils_the_neutral():
    lm = _landmarks_from_template(np.eye(3))
    fr = FaceRetargeter()
    assert fr.set_neutral(lm)
    unit = 180.0 / 480.0
    tpl = load_face_template()
    width = float(np.linalg.norm(tpl.landmarks[EYE_L_OUTER, :2] - tpl.landmarks[EYE_L_INNER, :2]))

    def lids_to(aperture: float) -> Landmarks:
        """Each upper lid point lowered to `aperture` eye widths straight above its lower lid point."""
        face = lm.face.copy()
        for upper, lower in EYE_R_LIDS + EYE_L_LIDS:
            face[upper, :2] = face[lower, :2] - np.array([0.0, aperture * width * unit])
        return Landmarks(frame_index=1, image_size=lm.image_size, face=face)

    lowered, shut = fr(lids_to(0.09)), fr(lids_to(0.03))
    assert lowered["expr.eyeBlinkLeft"] < 0.7 and lowered["expr.eyeBlinkRight"] < 0.7
    assert shut["expr.eyeBlinkLeft"] > 0.95 and shut["expr.eyeBlinkLeft"] - lowered["expr.eyeBlinkLeft"] > 0.3
    # a neutral taken with lowered lids keeps the default open eye: open eyes then read open, not wide
    fr2 = FaceRetargeter()
    assert fr2.set_neutral(lids_to(0.09))
    assert fr2.neutral["eye_open_L"] == REAL_NEUTRAL["eye_open_L"]
    opened = fr2(lm)
    assert opened["expr.eyeBlinkLeft"] < 0.05 and opened["expr.eyeWideLeft"] == 0.0


def test_face_template_load_error_says_how_to_rebuild(tmp_path):
    bad = tmp_path / "t.npz"
    bad.write_bytes(b"not a template")
    with pytest.raises(ValueError, match="fit_face"):
        load_face_template(bad)
    with pytest.raises(FileNotFoundError, match="fit_face"):
        load_face_template(tmp_path / "missing.npz")


def test_retargeter_switches_groups_and_falls_back_to_the_face_without_a_body_module(monkeypatch):
    from core.tracking import retarget
    from core.tracking.retarget import Retargeter

    lm = _landmarks_from_template(matrix_from_rotvec(np.radians([0.0, 15.0, 0.0])))
    face_only = Retargeter(face=True, body=False, hands=False)(lm)
    assert face_only and {channel_group(k) for k in face_only} == {"face"}
    assert face_only["pose.head.y"] == pytest.approx(15.0, abs=0.5)
    none = Retargeter(face=False, body=False, hands=False)
    assert none(lm) == {}
    monkeypatch.setattr(retarget, "_body_retargeter", lambda body, hands: None)
    r = Retargeter()
    assert not r.body_available
    assert {channel_group(k) for k in r(lm)} == {"face"}


SKIN, IRIS, LASH = (190, 150, 130), (40, 32, 30), (25, 20, 20)


def _paint_eyes(face: np.ndarray, size: tuple[int, int], under_lid: str) -> np.ndarray:
    """[H, W, 3] skin-coloured picture of the two eyes of `face` [478, 3] (normalised): an upper lash line along
    each upper lid and under it `under_lid`: "iris" (a dark disc round the iris centre, covered above the lid, as
    under lids lowered over a downward gaze), "skin" (a shut lid) or "lashes" (a shut lid with a lash fringe)."""
    import cv2

    from core.tracking.eye_image import EYE_L_UPPER, EYE_R_UPPER, IRIS_L, IRIS_R

    W, H = size
    img = np.empty((H, W, 3), np.uint8)
    img[:] = SKIN
    px = face[:, :2] * np.array([W, H])
    for upper, iris in ((EYE_R_UPPER, IRIS_R), (EYE_L_UPPER, IRIS_L)):
        lid = px[list(upper)]  # [9, 2] corner to corner
        width = float(np.linalg.norm(lid[-1] - lid[0]))
        if under_lid == "iris":
            cv2.circle(img, tuple(np.round(px[iris]).astype(int)), round(0.2 * width), IRIS, -1)
            above = np.concatenate([lid, [[lid[-1, 0], 0], [lid[0, 0], 0]]])  # the lid, up to the picture's top
            cv2.fillPoly(img, [np.round(above).astype(np.int32)], SKIN)
        if under_lid == "lashes":
            for x in np.arange(lid[0, 0], lid[-1, 0], 2.0):  # 1-pixel strands 2 pixels apart, past the strip
                y = float(np.interp(x, lid[:, 0], lid[:, 1]))
                cv2.line(img, (round(x), round(y)), (round(x), round(y + 0.12 * width)), LASH, 1)
        cv2.polylines(img, [np.round(lid).astype(np.int32)], False, LASH, 2)
    return img


def _eye_pair(width: float = 48.0, aperture: float = 0.05, size: tuple[int, int] = (240, 120)) -> np.ndarray:
    """[478, 3] face mesh (normalised) with only the two eyes placed: lids `aperture` eye widths apart at the
    middle, irises centred just above the upper lids (a downward gaze under lowered lids)."""
    from core.tracking.eye_image import EYE_L_LOWER, EYE_L_UPPER, EYE_R_LOWER, EYE_R_UPPER, IRIS_L, IRIS_R

    face = np.zeros((478, 3))
    for cx, upper, lower, iris in ((70, EYE_R_UPPER, EYE_R_LOWER, IRIS_R), (170, EYE_L_UPPER, EYE_L_LOWER, IRIS_L)):
        t = np.linspace(-1.0, 1.0, len(upper))  # corner to corner, left to right in the picture
        bulge = 1.0 - t**2
        face[list(upper), 0] = face[list(lower), 0] = cx + t * width / 2
        face[list(upper), 1] = 60 - aperture * width / 2 * bulge
        face[list(lower), 1] = 60 + aperture * width / 2 * bulge
        face[iris, :2] = (cx, 60 - aperture * width / 2 - 0.04 * width)
    return face / np.array([size[0], size[1], size[0]])


def test_under_lid_light_tells_a_visible_iris_from_a_shut_lid():
    from core.tracking.eye_image import under_lid_light
    from core.tracking.face import IRIS_STRIP_DARK, IRIS_STRIP_LIGHT

    face, size = _eye_pair(), (240, 120)
    iris = under_lid_light(_paint_eyes(face, size, "iris"), face)
    skin = under_lid_light(_paint_eyes(face, size, "skin"), face)
    lashes = under_lid_light(_paint_eyes(face, size, "lashes"), face)
    assert iris.shape == (2,) and (iris < IRIS_STRIP_DARK).all(), iris  # dark iris from edge to edge
    assert (skin > 0.9).all(), skin  # lid skin, as light as the skin around it
    # a lash fringe is dark on average, but skin shows between the strands: its lightest tenth is lid
    assert (lashes > IRIS_STRIP_LIGHT).all(), lashes
    # an eye too small to sample says nothing
    tiny = _eye_pair(width=3.0)
    assert np.isnan(under_lid_light(_paint_eyes(tiny, size, "iris"), tiny)).all()


def test_lowered_lids_over_a_visible_iris_read_open_and_shut_lids_read_shut():
    from core.tracking.eye_image import under_lid_light
    from core.tracking.face import LOWERED_LID_BLINK, iris_shown, lowered_lid_blink

    lm = _landmarks_from_template(np.eye(3))
    unit = 180.0 / 480.0
    tpl = load_face_template()
    width = float(np.linalg.norm(tpl.landmarks[EYE_L_OUTER, :2] - tpl.landmarks[EYE_L_INNER, :2]))
    face = lm.face.copy()
    for upper, lower in EYE_R_LIDS + EYE_L_LIDS:  # the mesh reads both lowered and shut lids 0.03 apart
        face[upper, :2] = face[lower, :2] - np.array([0.0, 0.03 * width * unit])
    for iris, lower in ((468, EYE_R_LIDS[0][1]), (473, EYE_L_LIDS[0][1])):  # irises just above the lids: gaze down
        face[iris, :2] = face[lower, :2] - np.array([0.0, 0.08 * width * unit])

    def read(under_lid: np.ndarray | None) -> dict[str, float]:
        return FaceRetargeter()(
            Landmarks(frame_index=1, image_size=lm.image_size, face=face, under_lid_light=under_lid)
        )

    lowered_picture = under_lid_light(_paint_eyes(face, lm.image_size, "iris"), face)
    shut_picture = under_lid_light(_paint_eyes(face, lm.image_size, "lashes"), face)
    lowered, shut, unseen = read(lowered_picture), read(shut_picture), read(None)
    for side in ("Left", "Right"):
        assert lowered[f"expr.eyeBlink{side}"] < 0.4, lowered_picture  # open eyes looking down
        assert shut[f"expr.eyeBlink{side}"] > 0.95, shut_picture
        assert unseen[f"expr.eyeBlink{side}"] > 0.95  # no picture (a recording, the network): the mesh's reading
    assert lowered["gaze.pitch"] < -10.0  # eyes that read open give their gaze: down
    # one eye's dark strip alone (smeared make-up, a shadow) does not open a shut pair
    assert read(np.array([lowered_picture[0], shut_picture[1]]))["expr.eyeBlinkLeft"] > 0.95
    assert iris_shown(np.array([np.nan, 0.1])) == 0.0 and iris_shown(None) == 0.0
    assert lowered_lid_blink(0.2, 1.0) == 0.2 and lowered_lid_blink(1.0, 1.0) == pytest.approx(LOWERED_LID_BLINK)
