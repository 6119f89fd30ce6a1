"""The per-frame path: pose head + node deformer + LBS + relighting of one identity -> posed `Gaussians`.

Posing is core.body's: the same per-bone rotations, gaze, translation and bone transforms as `BodyModel`, with
expressions as the body's blendshapes on the anchors' triangle corners.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from core.body.lbs import RestChain, axis_angle_to_matrix, pose_chain, rest_chain, rotation_about_axes
from core.model.appearance import Lighting, shade
from core.model.heads import decode_canonical, decode_deltas, pose_code
from core.model.model import IdentityState, LCAModel
from core.model.skinning import attach_to_anchors, matrix_to_quat, quat_mul, skin_anchors
from core.raster.types import Gaussians, rgb_to_sh0


@dataclass(frozen=True)
class DriveOutput:
    gaussians: Gaussians  # posed, world frame: means [G, 3] ...
    regularisers: dict[str, Tensor]  # 'arap', 'sparsity' when the deformer is on (training terms)
    offsets: Tensor  # [A, K, 3] total offset of each Gaussian from its anchor (canonical frame; ACAP term)


def local_rotations(pose: Tensor, num_joints: int) -> Tensor:
    """pose [J, 3] axis-angle or [J, 3, 3] matrices -> [J, 3, 3]."""
    if pose.shape == (num_joints, 3):
        return axis_angle_to_matrix(pose)
    if pose.shape == (num_joints, 3, 3):
        return pose
    raise ValueError(
        f"pose: expected [{num_joints}, 3] axis-angle or [{num_joints}, 3, 3] rotations, got {tuple(pose.shape)}"
    )


def identity_chain(model: LCAModel, state: IdentityState) -> RestChain:
    """The pose-independent kinematics of one identity's rest bones (batch 1); cache it beside the state."""
    return rest_chain(state.rest_poses[None], model.parents, model.ref_orients)


def drive_gaussians(
    model: LCAModel,
    state: IdentityState,  # one identity (no B dim)
    pose: Tensor,  # [J, 3] axis-angle (or [J, 3, 3]) per bone, core.body's convention (BodyParams.rotations)
    expression: Tensor,  # [E] expression coefficients (the body's blendshape weights)
    gaze: Tensor,  # [2] yaw, pitch of the eyes (radians), as BodyParams.gaze
    lighting: Lighting,
    translation: Tensor | None = None,  # [3] world translation added to the root, as BodyParams.translation
    strength: Tensor | None = None,  # [A, K] deformer strength per Gaussian (default 1)
    chain: RestChain | None = None,  # identity_chain(model, state), cached by callers that drive many frames
) -> DriveOutput:
    """Posed, lit Gaussians of one identity (differentiable; the Avatar wraps it without gradients).

    With zero canonical offsets every Gaussian sits on the posed body surface that `BodyModel` gives for the
    same shape, rotations, expression, gaze and translation, at its anchor's barycentric coordinates.
    """
    dev, dt = state.anchors.device, state.anchors.dtype
    J, E = model.num_joints, model.num_expressions
    A, K = state.canonical.offsets.shape[:2]
    if expression.shape != (E,):
        raise ValueError(f"expression: expected [{E}] coefficients, got {tuple(expression.shape)}")
    if gaze.shape != (2,):
        raise ValueError(f"gaze: expected [2] (yaw, pitch), got {tuple(gaze.shape)}")
    for name, t in (("pose", pose), ("expression", expression), ("gaze", gaze)):
        # Checked where the inputs live on the host (GUI, tracking); a device check would stall every frame.
        if t.device.type == "cpu" and not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    R_local = local_rotations(pose.to(device=dev, dtype=dt), J)
    expression, gaze = expression.to(device=dev, dtype=dt), gaze.to(device=dev, dtype=dt)
    if model.eye_joints.numel():  # as BodyModel.rotation_matrices: gaze turns each eye on top of its pose
        R_eye = rotation_about_axes(gaze[0], gaze[1])
        R_local = R_local.clone()
        R_local[model.eye_joints] = R_eye @ R_local[model.eye_joints]
    code = pose_code(R_local)  # [J, 6]
    cond = model.pose_encoder(code, expression, gaze, model.anchor_weights)  # [A, h]
    raw = model.pose_head(state.pose_proj, cond).unflatten(-1, (K, -1))  # [A, K, C]
    can = state.canonical
    if model.cfg.heads.decoder == "dual":
        d = decode_deltas(raw, state.pose_zero, max_offset=model.cfg.heads.max_pose_offset)
        offsets = can.offsets + d.offsets
        quats = quat_mul(d.quats, can.quats)
        log_scales = can.log_scales + d.log_scales
        albedo = (can.albedo + d.colour).clamp(0.0, 1.0)
        transfer = can.transfer
    else:
        frame = decode_canonical(
            raw,
            model.anchor_normals,
            model.anchor_parts,
            max_offset=model.cfg.heads.max_offset,
            base_log_scale=model.base_log_scale,
        )
        offsets, quats, log_scales, albedo, transfer = (
            frame.offsets,
            frame.quats,
            frame.log_scales,
            frame.albedo,
            frame.transfer,
        )
    U = state.support.shape[0]
    support = state.support + (expression @ model.support_expr).view(U, 3)  # [U, 3] the body's blendshapes
    chain = identity_chain(model, state) if chain is None else chain
    root = model.root_position if translation is None else model.root_position + translation.to(device=dev, dtype=dt)
    T_world_bone, _ = pose_chain(R_local[None], chain, model.parents, root[None])  # [1, J, 4, 4]
    anchors, posed_anchors, R_anchor = skin_anchors(
        support, model.support_weights, T_world_bone, model.anchor_corners, model.anchor_bary
    )  # [A, 3], [A, 3], [A, 3, 3]
    points = anchors[:, None, :] + offsets  # [A, K, 3] canonical
    regs: dict[str, Tensor] = {}
    if model.deformer is not None and state.node_proj is not None:
        motion = model.deformer.motion(state.node_proj, state.node_zero, code, expression, gaze)
        node_pos = anchors[model.deformer.node_anchor]
        s = torch.ones_like(state.garment) if strength is None else strength
        points = model.deformer.displace(points, node_pos, motion, state.garment, s)
        regs = model.deformer.regularisers(node_pos, motion)
    means = attach_to_anchors(points, anchors, posed_anchors, R_anchor)  # [A, K, 3]
    q_anchor = matrix_to_quat(R_anchor)  # [A, 4]
    quats = quat_mul(q_anchor[:, None, :].expand(A, K, 4), quats)
    transfer_world = transfer @ R_anchor.transpose(-1, -2)  # [A, K, 3]
    env = model.lighting_code(lighting)
    rgb = shade(albedo, transfer_world, env, lighting.direction, lighting.colour)
    gaussians = Gaussians(
        means=means.reshape(A * K, 3),
        quats=quats.reshape(A * K, 4),
        log_scales=log_scales.reshape(A * K, 3),
        opacity_logits=can.opacity_logits.reshape(A * K),
        sh=rgb_to_sh0(rgb).reshape(A * K, 1, 3),
        parts=can.part_logits.argmax(-1).reshape(A * K),
    )
    return DriveOutput(gaussians=gaussians, regularisers=regs, offsets=offsets)
