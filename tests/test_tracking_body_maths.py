"""Rotation maths and forward kinematics of body retargeting against the body model."""

from __future__ import annotations

import numpy as np
import torch

from core.tracking.body_skeleton import (
    align_frames,
    default_skeleton,
    forward_kinematics,
    matrix_to_rotvec,
    rotvec_to_matrix,
    swing,
)


def test_rotvec_round_trip_including_near_half_turns():
    rng = np.random.default_rng(0)
    axes = rng.normal(size=(50, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.r_[rng.uniform(0, np.pi, 45), [0.0, 1e-7, np.pi - 1e-6, np.pi - 1e-3, 3.0]]
    v = axes * angles[:, None]
    R = rotvec_to_matrix(v)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(rotvec_to_matrix(matrix_to_rotvec(R)), R, atol=1e-9)


def test_swing_turns_a_onto_b_without_twist():
    rng = np.random.default_rng(1)
    for _ in range(20):
        a, b = rng.normal(size=3), rng.normal(size=3)
        R = swing(a, b)
        np.testing.assert_allclose(R @ (a / np.linalg.norm(a)), b / np.linalg.norm(b), atol=1e-12)
        axis = matrix_to_rotvec(R)
        assert abs(axis @ a) < 1e-9 and abs(axis @ b) < 1e-9  # the axis is perpendicular to both: no twist
    np.testing.assert_allclose(swing(np.array([0, 1.0, 0]), np.array([0, -1.0, 0])) @ [0, 1, 0], [0, -1, 0], atol=1e-12)


def test_align_frames_maps_the_primary_exactly():
    rng = np.random.default_rng(2)
    R_true = rotvec_to_matrix(rng.normal(size=3))
    p, s = rng.normal(size=3), rng.normal(size=3)
    np.testing.assert_allclose(align_frames(p, s, R_true @ p, R_true @ s), R_true, atol=1e-12)


def test_forward_kinematics_matches_the_body_model():
    from core.body import BodyModel

    body = BodyModel("baked")
    sk = default_skeleton()
    rv = np.random.default_rng(3).normal(size=(len(sk.names), 3)) * 0.4
    params = body.neutral_params(1).with_(rotations=torch.tensor(rv, dtype=torch.float32)[None])
    joints = body(params).joints[0].double().numpy()
    x, _ = forward_kinematics(sk, rotvec_to_matrix(rv))
    np.testing.assert_allclose(x, joints, atol=1e-5)
