"""Skinning maths on tiny rigs: rotations, forward kinematics, LBS, point skinning, gradients."""

import pytest
import torch

from core.body.lbs import (
    axis_angle_to_matrix,
    batch_rigid_transform,
    dense_weights,
    kinematic_levels,
    lbs,
    rigid,
    rotation_about_axes,
    skin_points,
    special_procrustes,
)

PARENTS = [-1, 0, 1, 1, 3]  # a root, a spine, and a two-bone branch


def _skew(v):
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*v.shape[:-1], 3, 3)


def _tiny_rig(B=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    J = len(PARENTS)
    heads = torch.randn(J, 3, generator=g, dtype=dtype)
    rest_axes = axis_angle_to_matrix(torch.randn(J, 3, generator=g, dtype=dtype))
    ref_axes = axis_angle_to_matrix(torch.randn(J, 3, generator=g, dtype=dtype))
    rot = torch.randn(B, J, 3, generator=g, dtype=dtype) * 0.5
    return rigid(rest_axes, heads), ref_axes, rot


def test_axis_angle_matches_matrix_exponential_including_zero():
    v = torch.randn(16, 3, dtype=torch.float64)
    v[0] = 0.0
    v[1] = 1e-6
    torch.testing.assert_close(axis_angle_to_matrix(v), torch.linalg.matrix_exp(_skew(v)))


def test_rotation_about_axes_yaw_turns_forward_toward_plus_x_and_pitch_up():
    fwd = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    yaw = rotation_about_axes(torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)) @ fwd
    pitch = rotation_about_axes(torch.tensor(0.0, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64)) @ fwd
    assert yaw[0] > 0.25 and abs(yaw[1]) < 1e-12
    assert pitch[1] > 0.25 and abs(pitch[0]) < 1e-12


def test_special_procrustes_returns_the_rotation_of_a_scaled_rotation():
    R = axis_angle_to_matrix(torch.randn(8, 3, dtype=torch.float64))
    M = R @ torch.diag(torch.tensor([1.5, 0.7, 1.1], dtype=torch.float64))
    torch.testing.assert_close(special_procrustes(M), R)


def test_kinematic_levels_group_bones_by_depth_and_reject_bad_order():
    assert kinematic_levels(PARENTS) == [[0], [1], [2, 3], [4]]
    with pytest.raises(ValueError, match="parents first"):
        kinematic_levels([-1, 2, 0])


def test_identity_rotations_with_rest_reference_leave_the_mesh_at_rest():
    rest_poses, _, rot = _tiny_rig()
    eye = torch.eye(3, dtype=torch.float64).expand(2, len(PARENTS), 3, 3)
    T, W = batch_rigid_transform(eye, rest_poses, PARENTS, rest_poses[0, :3, 3].expand(2, 3))
    torch.testing.assert_close(T, torch.eye(4, dtype=torch.float64).expand_as(T))
    torch.testing.assert_close(W, rest_poses.expand_as(W))


def test_forward_kinematics_matches_a_bone_by_bone_loop():
    rest_poses, ref, rot = _tiny_rig()
    R = axis_angle_to_matrix(rot)
    root = torch.randn(2, 3, dtype=torch.float64)
    T, W = batch_rigid_transform(R, rest_poses, PARENTS, root, ref)
    # Slow reference: the chain written out one bone at a time.
    h, Ra = rest_poses[:, :3, 3], rest_poses[:, :3, :3]
    for b in range(2):
        Ws = [rigid(R[b, 0] @ ref[0], root[b])]
        for c in range(1, len(PARENTS)):
            p = PARENTS[c]
            A = torch.eye(3, dtype=torch.float64) if p == 0 else ref[p] @ Ra[p].T
            K = rigid(ref[p].T @ R[b, c] @ ref[c], ref[p].T @ A @ (h[c] - h[p]))
            Ws.append(Ws[p] @ K)
        torch.testing.assert_close(W[b], torch.stack(Ws))
        torch.testing.assert_close(T[b], torch.stack(Ws) @ torch.linalg.inv(rest_poses))


def test_lbs_matches_a_per_vertex_loop_and_points_follow_a_single_bone_rigidly():
    rest_poses, ref, rot = _tiny_rig()
    T, _ = batch_rigid_transform(
        axis_angle_to_matrix(rot), rest_poses, PARENTS, torch.zeros(2, 3, dtype=torch.float64), ref
    )
    verts = torch.randn(2, 7, 3, dtype=torch.float64)
    w = torch.rand(7, len(PARENTS), dtype=torch.float64)
    w = w / w.sum(1, keepdim=True)
    out = lbs(verts, w, T)
    ref_out = torch.stack(
        [
            torch.stack(
                [sum(w[v, j] * (T[b, j, :3, :3] @ verts[b, v] + T[b, j, :3, 3]) for j in range(5)) for v in range(7)]
            )
            for b in range(2)
        ]
    )
    torch.testing.assert_close(out, ref_out)
    one_bone = torch.zeros(7, len(PARENTS), dtype=torch.float64)
    one_bone[:, 3] = 1.0
    posed, R = skin_points(verts[0], one_bone, T)
    torch.testing.assert_close(R, T[:, 3, :3, :3][:, None].expand_as(R))
    torch.testing.assert_close(posed, (verts[0] @ T[:, 3, :3, :3].transpose(-1, -2)) + T[:, 3, None, :3, 3])


def test_dense_weights_scatter_top_k_into_rows():
    idx = torch.tensor([[0, 2], [1, 1]])
    val = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    torch.testing.assert_close(dense_weights(idx, val, 3), torch.tensor([[0.25, 0.0, 0.75], [0.0, 1.0, 0.0]]))


def test_skinning_chain_passes_float64_gradcheck():
    rest_poses, ref, rot = _tiny_rig(B=1)
    verts = torch.randn(1, 4, 3, dtype=torch.float64)
    w = torch.softmax(torch.randn(4, len(PARENTS), dtype=torch.float64), dim=1)
    root = torch.randn(1, 3, dtype=torch.float64)

    def f(rotvec, heads, root, verts):
        poses = rigid(rest_poses[:, :3, :3], heads)
        T, _ = batch_rigid_transform(axis_angle_to_matrix(rotvec), poses, PARENTS, root, ref)
        return skin_points(verts, w, T)

    inputs = (
        rot.requires_grad_(),
        rest_poses[:, :3, 3].clone().requires_grad_(),
        root.requires_grad_(),
        verts.requires_grad_(),
    )
    assert torch.autograd.gradcheck(f, inputs)
    zero = torch.zeros(1, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (zero,))


def test_bad_shapes_raise_messages_that_show_the_shape():
    rest_poses, ref, rot = _tiny_rig()
    with pytest.raises(ValueError, match=r"rot_local: expected \[B, J, 3, 3\], got \(2, 5, 3\)"):
        batch_rigid_transform(rot, rest_poses, PARENTS, torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="weights"):
        skin_points(torch.zeros(2, 4, 3), torch.zeros(5, 5), torch.eye(4).expand(2, 5, 4, 4))


def test_rotation_about_axes_is_the_product_of_the_two_axis_rotations():
    """The written-out gaze rotation equals R_y(yaw) @ R_x(-pitch) by Rodrigues' formula, zero angles included."""
    g = torch.Generator().manual_seed(0)
    yaw, pitch = torch.randn(2, 64, generator=g, dtype=torch.float64)
    yaw[:3], pitch[:2] = 0.0, 0.0
    zero = torch.zeros_like(yaw)
    R_y = axis_angle_to_matrix(torch.stack([zero, yaw, zero], -1))
    R_x = axis_angle_to_matrix(torch.stack([-pitch, zero, zero], -1))
    torch.testing.assert_close(rotation_about_axes(yaw, pitch), R_y @ R_x, rtol=0, atol=1e-14)
