"""Tracker: mediapipe face / pose / hands on real and rendered pictures, every-n reuse, hand sides."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from core.tracking.landmarks import Tracker, assign_hand_sides


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut())  # [512, 512, 3] RGB, upper body, public domain


@pytest.fixture(scope="module")
def tracker():
    with Tracker(body_every=2, hands_every=3) as t:
        yield t


def test_face_mesh_with_irises_lands_on_the_astronauts_face(astronaut, tracker):
    lm = tracker.track(astronaut, 0)
    assert lm.image_size == (512, 512)
    assert lm.face is not None and lm.face.shape == (478, 3)
    # her face is in the upper middle of the picture (about x 0.35..0.6, y 0.1..0.5)
    cx, cy = lm.face[:, 0].mean(), lm.face[:, 1].mean()
    assert 0.3 < cx < 0.65 and 0.1 < cy < 0.5
    # irises (468..477) lie inside the eye region of the mesh, the left iris on the image's right
    left_iris, right_iris = lm.face[473, :2], lm.face[468, :2]
    assert left_iris[0] > right_iris[0]
    assert abs(left_iris[1] - right_iris[1]) < 0.05
    assert {"face", "eyes", "total"} <= set(lm.timings_ms)
    # the picture under each upper lid (core.tracking.eye_image): measured for both eyes wherever the face is found
    assert lm.under_lid_light.shape == (2,) and np.isfinite(lm.under_lid_light).all()


def test_body_runs_every_nth_frame_and_is_reused_between(astronaut, tracker):
    runs = []
    for i in range(1, 7):
        lm = tracker.track(astronaut, i)
        runs.append("pose" in lm.timings_ms)
        assert lm.pose is not None and lm.pose.shape == (33, 4) and lm.pose_world.shape == (33, 3)
    assert runs.count(True) == 3, f"body every 2nd frame: ran on {runs}"


def test_large_images_are_shrunk_to_max_side_before_tracking(astronaut):
    big = cv2.resize(astronaut, (1024, 1024))
    with Tracker(body=False, hands=False, max_side=256) as t:
        lm = t.track(big, 0)
    assert lm.image_size == (256, 256)
    assert lm.face is not None


def test_disabled_parts_are_none_and_not_run(astronaut):
    with Tracker(face=False, body=False, hands=False) as t:
        lm = t.track(astronaut, 0)
    assert lm.face is None and lm.pose is None and lm.left_hand is None and lm.right_hand is None
    assert lm.under_lid_light is None
    assert set(lm.timings_ms) == {"resize", "total"}


def test_tracker_rejects_a_non_rgb_image_with_a_clear_message():
    with Tracker() as t, pytest.raises(ValueError, match=r"\[H, W, 3\] uint8 RGB"):
        t.track(np.zeros((10, 10), np.float32), 0)


def test_mediapipe_hand_labels_are_flipped_to_the_persons_own_sides():
    # a person facing an unmirrored camera: their right hand is on the image's left (small x);
    # mediapipe, assuming a mirrored selfie, calls that hand "Left"
    sides = assign_hand_sides([np.array([0.2, 0.5]), np.array([0.8, 0.5])], ["Left", "Right"], [0.9, 0.9])
    assert sides == ["right", "left"]


def test_two_hands_with_the_same_label_get_different_sides():
    sides = assign_hand_sides([np.array([0.2, 0.5]), np.array([0.8, 0.5])], ["Left", "Left"], [0.6, 0.9])
    assert sorted(sides) == ["left", "right"] and sides[1] == "right"


def test_pose_wrists_decide_hand_sides_when_known():
    pose_wrists = (np.array([0.8, 0.5]), np.array([0.2, 0.5]))  # (person's left, person's right)
    # labels deliberately wrong: the pose wins
    assert assign_hand_sides([np.array([0.79, 0.52])], ["Left"], [0.9], pose_wrists) == ["left"]
    sides = assign_hand_sides([np.array([0.21, 0.5]), np.array([0.8, 0.48])], ["Right", "Right"], [1, 1], pose_wrists)
    assert sides == ["right", "left"]


def _rendered_person_with_raised_hands() -> np.ndarray:
    """[H, W, 3] RGB: the body model facing an unmirrored camera, forearms up, palms towards the camera."""
    import torch

    from core.body import BodyModel
    from core.body.render import render_view

    body = BodyModel("baked")
    params = body.neutral_params()
    rot = params.rotations.clone()
    names = body.bone_names
    for side, s in (("L", 1.0), ("R", -1.0)):
        rot[0, names.index(f"upperarm01.{side}")] = torch.tensor([0.0, 0.0, s])
        rot[0, names.index(f"lowerarm01.{side}")] = torch.tensor([0.0, 0.0, s])
    params = type(params)(**{**params.__dict__, "rotations": rot})
    verts = body(params).vertices[0].detach().numpy()
    labels = np.ones(len(verts), np.int64)  # one skin-like colour all over
    bgr = render_view(verts, body.faces.numpy(), labels, 0.0, size=1400)[:700, 150:1250]
    return cv2.cvtColor(cv2.resize(bgr, (640, 407), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def test_hands_land_on_the_persons_own_sides_in_a_rendered_unmirrored_image():
    # the body's left arm is at world +x, which the front camera shows on the image's right
    rgb = _rendered_person_with_raised_hands()
    with Tracker(face=False, body=False, hands_every=1) as t:
        lm = t.track(rgb, 0)
    assert lm.left_hand is not None and lm.right_hand is not None, "both raised hands should be found"
    assert lm.left_hand[0, 0] > 0.6 and lm.right_hand[0, 0] < 0.4
    assert lm.left_hand_world.shape == (21, 3) and lm.right_hand_world.shape == (21, 3)
    # with the body pose, the same sides (pose labels are the person's own sides)
    with Tracker(face=False, body_every=1, hands_every=1) as t:
        lm = t.track(rgb, 0)
    assert lm.pose[15, 0] > 0.6 > 0.4 > lm.pose[16, 0]  # left wrist right in the image
    assert lm.left_hand[0, 0] > 0.6 and lm.right_hand[0, 0] < 0.4
