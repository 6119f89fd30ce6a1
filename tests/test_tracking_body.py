"""Body and hand retargeting: presets survive landmarks -> retargeting, sides and signs, robustness."""

from __future__ import annotations

import numpy as np
import pytest

from app.driving import apply_channels
from app.presets import load_pose_presets
from app.state import EditState
from core.eval.tracking_body import (
    MAIN_JOINTS,
    joint_errors_mm,
    landmarks_from_pose,
    posed_joints,
    rotations_from_channels,
)
from core.tracking.body import BODY_BONES, HAND_BONES, BodyRetargeter
from core.tracking.body_skeleton import default_skeleton, rotvec_to_matrix
from core.tracking.types import Landmarks, channel_group


@pytest.fixture(scope="module")
def sk():
    return default_skeleton()


def _recovered_error_mm(sk, pose, lm=None, joints=MAIN_JOINTS, **kw) -> float:
    lm = lm or landmarks_from_pose(sk, pose)
    pred, _ = posed_joints(sk, rotations_from_channels(BodyRetargeter(**kw)(lm)))
    true, _ = posed_joints(sk, pose)
    return float(joint_errors_mm(sk, pred, true, joints)[0].max())


@pytest.mark.parametrize("preset", ["T", "standing", "sitting", "waving", "walking", "point"])
def test_pose_presets_survive_landmarks_and_retargeting(sk, preset):
    pose = load_pose_presets()[preset]
    assert _recovered_error_mm(sk, pose) < 1.0


def test_t_pose_preset_comes_back_as_the_studio_pose_edit(sk):
    lm = landmarks_from_pose(sk, load_pose_presets()["T"])
    edit = apply_channels(EditState(), BodyRetargeter()(lm))
    np.testing.assert_allclose(edit.pose.rotation_of("upperarm01.L"), (0, 0, 45), atol=1.5)
    np.testing.assert_allclose(edit.pose.rotation_of("upperarm01.R"), (0, 0, -45), atol=1.5)
    np.testing.assert_allclose(edit.pose.rotation_of("upperleg01.L"), (0, 0, 0), atol=0.5)


def test_raising_the_left_arm_on_the_image_right_moves_upperarm_left_up():
    # Hand-written mediapipe world landmarks (x: image right, y down, z away from the camera) of a person
    # facing the camera with the arm on the image's right straight up: that is the person's LEFT arm.
    P = np.zeros((33, 3))
    for i, x in ((11, 0.17), (12, -0.17), (23, 0.1), (24, -0.1), (25, 0.1), (26, -0.1), (27, 0.1), (28, -0.1)):
        P[i, 0] = x
    P[[11, 12], 1], P[[25, 26], 1], P[[27, 28], 1] = -0.5, 0.4, 0.8
    P[13], P[15] = (0.17, -0.8, 0.0), (0.17, -1.05, 0.0)  # left elbow and wrist above the shoulder
    P[14], P[16] = (-0.25, -0.28, 0.0), (-0.3, -0.05, 0.0)  # right arm hanging
    P[[29, 31]], P[[30, 32]] = P[27] + (0, 0.05, 0.05), P[28] + (0, 0.05, -0.1)
    vis = np.c_[np.zeros((33, 3)), np.ones(33)]
    vis[[17, 18, 19, 20, 21, 22], 3] = 0.0
    ch = BodyRetargeter()(Landmarks(0, (640, 480), pose=vis, pose_world=P))
    assert ch["pose.upperarm01.L.z"] > 90.0  # the rest pose is an A pose: straight up is ~135 deg about +z
    assert abs(ch["pose.upperarm01.R.z"]) < 30.0
    sk = default_skeleton()
    x, _ = posed_joints(sk, rotations_from_channels(ch))
    elbow, shoulder = x[sk.index("lowerarm01.L")], x[sk.index("upperarm01.L")]
    assert elbow[1] > shoulder[1] + 0.2 and elbow[0] > 0  # above the shoulder, on the person's left (+x)


def test_turning_to_the_own_left_sets_positive_root_yaw(sk):
    R = rotvec_to_matrix(np.array([0.0, np.radians(30.0), 0.0]))
    view = np.diag([1.0, -1.0, -1.0]) @ R  # the camera sees the person turned 30 deg about +y
    ch = BodyRetargeter()(landmarks_from_pose(sk, {}, view=view))
    assert ch["pose.root.y"] == pytest.approx(30.0, abs=0.5)
    assert abs(ch["pose.spine03.y"]) < 0.5


def test_a_torso_bend_is_spread_over_the_spine(sk):
    pose = {f"spine0{k}": (6.0, 0.0, 4.0) for k in range(1, 6)}
    ch = BodyRetargeter()(landmarks_from_pose(sk, pose))
    for k in range(1, 6):
        assert ch[f"pose.spine0{k}.x"] == pytest.approx(6.0, abs=1.0)
        assert ch[f"pose.spine0{k}.z"] == pytest.approx(4.0, abs=1.0)


def test_unseen_joints_keep_their_last_value_and_never_nan(sk):
    r = BodyRetargeter()
    first = r(landmarks_from_pose(sk, load_pose_presets()["waving"]))
    lm = landmarks_from_pose(sk, {})
    pose = lm.pose.copy()
    pose[[12, 14, 16], 3] = 0.1  # right shoulder, elbow and wrist barely visible
    world = lm.pose_world.copy()
    world[[14, 16]] = 5.0  # and wildly wrong
    second = r(Landmarks(1, (640, 480), pose=pose, pose_world=world))
    for axis in "xyz":
        assert second[f"pose.upperarm01.R.{axis}"] == pytest.approx(first[f"pose.upperarm01.R.{axis}"])
        assert second[f"pose.lowerarm01.R.{axis}"] == pytest.approx(first[f"pose.lowerarm01.R.{axis}"])
    assert abs(second["pose.upperarm01.L.z"]) < 1.0  # the seen side follows the new frame (rest)
    nan = Landmarks(
        2, (640, 480), pose=pose, pose_world=np.full((33, 3), np.nan), left_hand_world=np.full((21, 3), np.nan)
    )
    third = r(nan)
    assert all(np.isfinite(v) for v in third.values())
    assert third == second


def test_channels_belong_to_the_right_groups(sk):
    lm = landmarks_from_pose(sk, load_pose_presets()["fist"])
    both = BodyRetargeter()(lm)
    assert {channel_group(k) for k in BodyRetargeter(hands=False)(lm)} == {"body"}
    assert {channel_group(k) for k in BodyRetargeter(body=False)(lm)} == {"hands"}
    assert len(both) == 3 * (len(BODY_BONES) + len(HAND_BONES)) + 1  # + root.y


def _hinge_fist(r: BodyRetargeter, side: str, angles=(60.0, 80.0, 40.0)) -> dict:
    return {
        f"finger{f}-{k}.{side}": r.hinge_axis(side, f) * a
        for f in (2, 3, 4, 5)
        for k, a in zip((1, 2, 3), angles, strict=True)
    }


def test_finger_curls_come_back_about_the_hinge(sk):
    r = BodyRetargeter()
    pose = {**_hinge_fist(r, "L"), **_hinge_fist(r, "R", (20.0, 30.0, 10.0)), "wrist.L": (30.0, -20.0, 10.0)}
    ch = r(landmarks_from_pose(sk, pose))
    got = rotations_from_channels(ch)
    for bone, want in pose.items():
        if bone.startswith("finger"):
            np.testing.assert_allclose(got[bone], want, atol=0.5, err_msg=bone)
    tips = [f"finger{f}-3.{s}" for f in range(1, 6) for s in "LR"]
    assert _recovered_error_mm(sk, pose, joints=tips) < 1.0  # wrist orientation and thumb too


def test_fist_preset_moves_fingertips_towards_the_palm(sk):
    # The preset curls about world z, about 40 degrees off the hand's own hinge axes: only its direction is
    # comparable. Fingertips of truth and recovery both move to the palm side of the rest hand.
    fist = load_pose_presets()["fist"]
    ch = BodyRetargeter()(landmarks_from_pose(sk, fist))
    got, true, rest = (posed_joints(sk, p)[0] for p in (rotations_from_channels(ch), fist, {}))
    for s in "LR":
        w = sk.index(f"wrist.{s}")
        index, pinky = rest[sk.index(f"finger2-1.{s}")] - rest[w], rest[sk.index(f"finger5-1.{s}")] - rest[w]
        palm = np.cross(index, pinky) * (-1 if s == "L" else 1)
        for f in (2, 3, 4, 5):
            tip = sk.index(f"finger{f}-3.{s}")
            assert (true[tip] - true[w] - rest[tip] + rest[w]) @ palm > 0
            assert (got[tip] - got[w] - rest[tip] + rest[w]) @ palm > 0, f"finger{f}.{s}"
        assert ch[f"pose.finger3-2.{s}.z"] * fist[f"finger3-2.{s}"][2] > 0  # same sense as the preset's curl


def test_bent_knees_lower_the_root_to_keep_feet_on_the_ground(sk):
    pose = {f"upperleg01.{s}": (-60.0, 0.0, 0.0) for s in "LR"} | {f"lowerleg01.{s}": (100.0, 0.0, 0.0) for s in "LR"}
    ch = BodyRetargeter()(landmarks_from_pose(sk, pose))
    assert ch["root.y"] < -0.1
    assert BodyRetargeter(ground=False)(landmarks_from_pose(sk, pose)).get("root.y") is None


def test_unseen_arms_hang_relaxed_in_live_driving_and_follow_once_seen(sk):
    from core.tracking.retarget import Retargeter

    face_only = Landmarks(0, (640, 480))  # an upper-body shot where mediapipe found no body yet
    plain = BodyRetargeter()(face_only)
    live = Retargeter(face=False)(face_only)
    assert abs(plain["pose.upperarm01.L.z"]) < 1e-6  # the body model's rest (A) pose
    assert live["pose.upperarm01.L.z"] == pytest.approx(-30.0) and live["pose.upperarm01.R.z"] == pytest.approx(30.0)
    t_pose = landmarks_from_pose(sk, load_pose_presets()["T"])
    seen = Retargeter(face=False)(t_pose)
    assert seen["pose.upperarm01.L.z"] == pytest.approx(45.0, abs=1.5)  # observed arms override the idle pose
