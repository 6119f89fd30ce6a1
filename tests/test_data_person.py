"""Finding people as people (mediapipe pose + selfie segmentation) on scikit-image's astronaut photo: whole, and
shrunk into a wide frame where her face is a few pixels tall; and a small person kept by crop-and-track."""

import numpy as np
import pytest

pytest.importorskip("mediapipe")
skdata = pytest.importorskip("skimage.data")

from core.data.person import PersonFinder, shows_from_pose, view_from_pose  # noqa: E402


@pytest.fixture(scope="module")
def finder():
    with PersonFinder() as f:
        yield f


def test_astronaut_found_with_face_mask_and_no_legs(finder):
    img = np.ascontiguousarray(skdata.astronaut())
    p = finder(img)
    assert p is not None and p.found_by.startswith("pose")
    assert p.view == "front"
    assert p.shows["face"] and not p.shows["legs"]
    assert "legs" in p.lacks and "face" not in p.lacks
    x0, y0, x1, y1 = p.face_box
    assert 120 < (x0 + x1) / 2 < 320 and y1 < 260  # her head, not the badge or the flag
    assert p.mask is not None and p.mask.shape == img.shape[:2]
    share = (p.mask > 0).mean()
    assert 0.2 < share < 0.8
    assert (p.mask[180:330, 160:300] > 0).mean() > 0.8  # her face and suit
    assert (p.mask[:100, :60] > 0).mean() < 0.1  # the flag behind her


def test_small_person_in_a_wide_frame(finder):
    img = np.ascontiguousarray(skdata.astronaut())
    small = img[::4, ::4]  # 128 x 128: the face is about 25 px tall
    wide = np.full((600, 1200, 3), 90, np.uint8)
    wide[400:528, 900:1028] = small
    p = finder(wide)
    assert p is not None
    cx, cy = (p.box[0] + p.box[2]) / 2, (p.box[1] + p.box[3]) / 2
    assert 880 < cx < 1050 and 380 < cy < 560
    assert (p.mask[:350] > 0).sum() == 0  # nothing of the empty frame


def test_view_and_shows_from_synthetic_landmarks():
    pose = np.zeros((33, 4))
    pose[:, :2], pose[:, 3] = 0.5, 0.9
    world = np.zeros((33, 3))
    world[11], world[12] = [0.2, 0, 0], [-0.2, 0, 0]  # person's left at +x: facing the camera
    assert view_from_pose(pose, world)[0] == "front"
    world[11], world[12] = [0.0, 0, 0.2], [0.0, 0, -0.2]
    assert view_from_pose(pose, world)[0] == "side"
    back = pose.copy()
    back[[0, 2, 5], 3] = 0.1  # no face seen
    world[11], world[12] = [-0.2, 0, 0], [0.2, 0, 0]
    assert view_from_pose(back, world)[0] == "back"
    legs = pose.copy()
    legs[25:29, 1] = 1.3  # knees and ankles below the frame
    assert not shows_from_pose(legs)["legs"] and shows_from_pose(pose)["legs"]
