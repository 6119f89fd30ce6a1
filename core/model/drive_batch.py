"""The per-target path of training as one batched computation: pose head, node deformer, skinning and shading
of T posed targets of each of B identities at once -> posed `Gaussians` [B*T, G, ...].

The same maths as `drive_gaussians` (its slow reference, one target at a time), arranged for the GPU: identity
tensors broadcast over the targets ([B, 1, ...] against [B, T, ...]) instead of being copied, the deformer
through per-anchor affine maps (`drive.displace_affine`), and the 3x3 products of every Gaussian written as
broadcast multiply-sums that `torch.compile` fuses instead of batched matmuls of tiny matrices.

Precision: the pose head and the deformer's MLP (the per-Gaussian matrix products) follow the caller's autocast
(bf16 on the GPU during training); their outputs are cast to float32 before decoding. Kinematics, skinning,
the deformer's geometry, shading and everything the rasteriser sees stay float32: positions in metres need
more than bf16's 8 bits (4 mm at 1 m).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from core.body.lbs import (
    RestChain,
    axis_angle_to_matrix,
    polar_rotation,
    pose_chain,
    rest_chain,
    rotation_about_axes,
    skin_points,
)
from core.model.drive import decode_pose_output
from core.model.heads import pose_code
from core.model.model import IdentityState, LCAModel
from core.model.skin_correction import corrected_weights
from core.model.skinning import matrix_to_quat, quat_mul
from core.raster.types import Gaussians, rgb_to_sh0


@dataclass(frozen=True)
class TargetFrames:
    """What poses and lights T targets of each of B identities: leading dims [B, T]."""

    pose: Tensor  # [B, T, J, 3] axis-angle (or [B, T, J, 3, 3]) per bone, core.body's convention
    expression: Tensor  # [B, T, E]
    gaze: Tensor  # [B, T, 2] yaw, pitch (radians)
    translation: Tensor  # [B, T, 3] world translation added to the root
    env: Tensor  # [B, T, 4, 3] degree-1 RGB environment (ambient, x, y, z rows; `Lighting.env`)
    key_dir: Tensor | None = None  # [B, T, 3] towards the key light; None: no key light on any target
    key_rgb: Tensor | None = None  # [B, T, 3] key light colour (zeros: no key light on that target)
    code: Tensor | None = None  # [B, T, Dl] per-frame lighting code (`Lighting.code`; zeros: none)

    @property
    def batch_shape(self) -> tuple[int, int]:
        return tuple(self.expression.shape[:2])


@dataclass(frozen=True)
class BatchedDrive:
    gaussians: Gaussians  # [B*T, G, ...] posed, world frame, targets of identity b at rows b*T ... b*T+T-1
    offsets: Tensor  # [B, T, A, K, 3] total offset of each Gaussian from its anchor (canonical frame; ACAP)
    regularisers: dict[str, Tensor]  # 'arap', 'sparsity' [B, T] per target when the deformer is on
    canonical: Gaussians | None = None  # [B*T, G, ...] the canonical branch alone, skinned to the same frames


def _rotations(pose: Tensor, B: int, T: int, J: int) -> Tensor:
    if pose.shape == (B, T, J, 3):
        return axis_angle_to_matrix(pose)
    if pose.shape == (B, T, J, 3, 3):
        return pose
    raise ValueError(f"pose: expected [{B}, {T}, {J}, 3] axis-angle or [{B}, {T}, {J}, 3, 3], got {tuple(pose.shape)}")


def _matvec(M: Tensor, v: Tensor) -> Tensor:
    """M [..., 3, 3] times v [..., 3] (broadcast) -> [..., 3], as a multiply-sum (no batched tiny matmul)."""
    return (M * v[..., None, :]).sum(-1)


def _expand_chain(chain: RestChain, T: int) -> RestChain:
    """A rest chain of B identities [B, ...] repeated for their T targets -> [B*T, ...]."""
    return RestChain(
        **{
            f.name: getattr(chain, f.name)[:, None].expand(-1, T, *getattr(chain, f.name).shape[1:]).flatten(0, 1)
            for f in dataclasses.fields(chain)
        }
    )


def blended_node_affine_batched(
    node_pos: Tensor,  # [..., Nn, 3] node rest positions
    R: Tensor,  # [..., Nn, 3, 3] node rotations
    t: Tensor,  # [..., Nn, 3] node translations
    idx: Tensor,  # [A, n] nodes bound to each anchor
    w: Tensor,  # [A, n] their weights
) -> tuple[Tensor, Tensor]:
    """`drive.blended_node_affine` over leading dims: M [..., A, 3, 3], b [..., A, 3]."""
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    Rm = R - eye
    shift = t - _matvec(Rm, node_pos)  # [..., Nn, 3]
    M = (w[..., None, None] * Rm[..., idx, :, :]).sum(-3)  # [..., A, 3, 3]
    b = (w[..., None] * shift[..., idx, :]).sum(-2)  # [..., A, 3]
    return M, b


def drive_targets(
    model: LCAModel,
    state: IdentityState,  # B identities: anchors [B, A, 3], canonical [B, A, K, ...], ...
    frames: TargetFrames,  # [B, T]
    *,
    regularisers: bool = True,
    amp: bool = False,  # the pose head and the deformer's MLP in bf16 (CUDA autocast); the rest stays float32
    canonical: bool = False,  # also the canonical render's Gaussians (`drive_gaussians(pose_dependent=False)`)
) -> BatchedDrive:
    """Posed, lit Gaussians of every target of every identity in one computation (differentiable).

    Equal to `drive_gaussians(model, state.select(b), frames[b, t] ...)` for each b, t up to rounding (and to
    the deformer's affine form); `tests/test_train_batched_step.py` holds the two equal.
    """
    can = state.canonical
    B, T = frames.batch_shape
    A, K = can.offsets.shape[-3:-1]
    J, E = model.num_joints, model.num_expressions
    dt = state.anchors.dtype
    if state.anchors.shape[0] != B:
        raise ValueError(f"frames are for B={B} identities but the state holds {state.anchors.shape[0]}")
    if frames.expression.shape != (B, T, E):
        raise ValueError(f"expression: expected [{B}, {T}, {E}], got {tuple(frames.expression.shape)}")
    if frames.gaze.shape != (B, T, 2):
        raise ValueError(f"gaze: expected [{B}, {T}, 2] (yaw, pitch), got {tuple(frames.gaze.shape)}")
    expression, gaze = frames.expression.to(dt), frames.gaze.to(dt)
    R_local = _rotations(frames.pose.to(dt), B, T, J)  # [B, T, J, 3, 3]
    if model.eye_joints.numel():  # gaze turns each eye on top of its pose, as in drive_gaussians
        R_eye = rotation_about_axes(gaze[..., 0], gaze[..., 1])  # [B, T, 3, 3]
        R_local = R_local.clone()
        R_local[:, :, model.eye_joints] = R_eye[:, :, None] @ R_local[:, :, model.eye_joints]
    code = pose_code(R_local)  # [B, T, J, 6]

    # pose head: the per-Gaussian matrix products (autocast decides their precision), decoded in float32
    dev = state.anchors.device
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
        cond = model.pose_encoder(code, expression, gaze, model.anchor_weights)  # [B, T, A, h]
        raw = model.pose_head(state.pose_proj[:, None], cond)
    raw = raw.float().unflatten(-1, (K, -1))  # [B, T, A, K, C]
    offsets, quats, log_scales, albedo, transfer = decode_pose_output(model, raw, state, per_target=True)

    # kinematics and skinning of the anchors' triangle corners, all targets as one batch M = B*T
    U = state.support.shape[-2]
    support = state.support[:, None] + (expression @ model.support_expr).view(B, T, U, 3)  # [B, T, U, 3]
    chain = _expand_chain(rest_chain(state.rest_poses, model.parents, model.ref_orients), T)  # [B*T, ...]
    root = model.root_position + frames.translation.to(dt)  # [B, T, 3]
    T_world_bone, _ = pose_chain(R_local.flatten(0, 1), chain, model.parents, root.flatten(0, 1))  # [M, J, 4, 4]
    posed, linear = skin_points(support.flatten(0, 1), model.support_weights, T_world_bone)  # [M, U, 3], [M, U, 3, 3]
    w = model.anchor_bary[..., None]  # [A, 3, 1]
    corners = model.anchor_corners
    anchors = (support[..., corners, :] * w).sum(-2)  # [B, T, A, 3] rest, with the expression
    posed_anchors = (posed[:, corners] * w).sum(-2).unflatten(0, (B, T))  # [B, T, A, 3]
    R_anchor = (linear[:, corners] * w[..., None]).sum(-3).unflatten(0, (B, T))  # [B, T, A, 3, 3]

    points = anchors[..., None, :] + offsets  # [B, T, A, K, 3] canonical
    regs: dict[str, Tensor] = {}
    deformer = model.deformer
    if deformer is not None and state.node_proj is not None:
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            node_cond = deformer.pose(code, expression, gaze, deformer.node_weights)  # [B, T, Nn, h]
            raw_nodes = deformer.mlp(state.node_proj[:, None], node_cond)
        motion = deformer.bound(raw_nodes.float(), state.node_zero[:, None].float())  # [B, T, Nn, ...]
        node_pos = anchors[..., deformer.node_anchor, :]  # [B, T, Nn, 3]
        R_nodes, t_nodes = motion.rotation, motion.translation
        Mc, bc = blended_node_affine_batched(node_pos, R_nodes, t_nodes, deformer.coarse_idx, deformer.coarse_w)
        Mf, bf = blended_node_affine_batched(node_pos, R_nodes, t_nodes, deformer.fine_idx, deformer.fine_w)
        d_coarse = _matvec(Mc[..., None, :, :], points) + bc[..., None, :]  # [B, T, A, K, 3]
        d_fine = _matvec(Mf[..., None, :, :], points) + bf[..., None, :]
        points = points + (d_coarse + state.garment[:, None, ..., None] * d_fine)  # strength 1 in training
        if regularisers:
            i, j = deformer.edges[:, 0], deformer.edges[:, 1]
            rest = node_pos[..., j, :] - node_pos[..., i, :]  # [B, T, Ed, 3]
            moved = rest + t_nodes[..., j, :] - t_nodes[..., i, :]
            regs["arap"] = (moved - _matvec(R_nodes[..., i, :, :], rest)).pow(2).sum(-1).mean(-1)  # [B, T]
            max_t = max(deformer.cfg.max_translation, 1e-6)
            regs["sparsity"] = motion.rotvec.abs().mean((-2, -1)) + motion.translation.abs().mean((-2, -1)) / max_t

    env = frames.env.to(dt)  # [B, T, 4, 3]
    if frames.code is not None and model.lighting_code.linear is not None:  # as LightingCode: env + linear(code)
        env = env + model.lighting_code.linear(frames.code.to(dt)).unflatten(-1, (4, 3))
    frames_g = R_anchor[..., None, :, :]  # [B, T, A, 1, 3, 3]
    q_anchor = matrix_to_quat(R_anchor)[..., None, :]  # [B, T, A, 1, 4]

    fix = None
    sc = model.skin_correction
    if sc is not None and state.skin_nodes is not None:  # the paper's W' = W(n) + H_skin(T^node), per identity
        fix = _skin_correction_fix(
            model, state, T_world_bone.unflatten(0, (B, T))
        )  # [B, T, A, 3, 3], [..., 3], [..., 4]
        if regularisers:
            nodes = state.skin_nodes  # [B, Nn, J]
            i, j = sc.edges[:, 0], sc.edges[:, 1]
            regs["sparsity"] = nodes.abs().mean((-2, -1))[:, None].expand(B, T)
            regs["arap"] = (nodes[:, i] - nodes[:, j]).pow(2).sum(-1).mean(-1)[:, None].expand(B, T)

    def posed(points, quats, log_scales, albedo, transfer) -> Gaussians:  # [B, T | 1, A, K, ...] -> [B*T, G, ...]
        means = posed_anchors[..., None, :] + _matvec(frames_g, points - anchors[..., None, :])  # [B, T, A, K, 3]
        quats = quat_mul(q_anchor, quats)  # [B, T, A, K, 4]
        if fix is not None:  # re-skinned with the corrected weights
            R_fix, t_fix, q_fix = fix
            means = _matvec(R_fix[..., None, :, :], means) + t_fix[..., None, :]
            quats = quat_mul(q_fix[..., None, :], quats)
        transfer_world = _matvec(frames_g, transfer)  # [B, T, A, K, 3]
        rgb = _shade(albedo, transfer_world, env, frames.key_dir, frames.key_rgb)
        M, G = B * T, A * K
        return Gaussians(
            means=means.reshape(M, G, 3),
            quats=quats.expand(B, T, A, K, 4).reshape(M, G, 4),
            log_scales=log_scales.expand(B, T, A, K, 3).reshape(M, G, 3),
            opacity_logits=can.opacity_logits[:, None].expand(B, T, A, K).reshape(M, G),
            sh=rgb_to_sh0(rgb).expand(B, T, A, K, 3).reshape(M, G, 1, 3),
        )

    gaussians = posed(points, quats, log_scales, albedo, transfer)
    canon = None
    if canonical:  # the canonical branch alone: no pose deltas, no deformer, the same skinning and light
        c = [getattr(can, k)[:, None] for k in ("offsets", "quats", "log_scales", "albedo", "transfer")]
        canon = posed(anchors[..., None, :] + c[0], *c[1:])
    return BatchedDrive(gaussians=gaussians, regularisers=regs, offsets=offsets.expand(B, T, A, K, 3), canonical=canon)


def _skin_correction_fix(
    model: LCAModel,
    state: IdentityState,
    T_bone: Tensor,  # [B, T, J, 4, 4] the targets' skinning transforms
) -> tuple[Tensor, Tensor, Tensor]:
    """`SkinningCorrection.apply`'s correction of every anchor in every target: the linear part [B, T, A, 3, 3],
    the translation [B, T, A, 3] and the rotation nearest the linear part as a quaternion [B, T, A, 4]."""
    sc = model.skin_correction
    nodes = state.skin_nodes  # [B, Nn, J]
    coarse = (nodes[:, sc.coarse_idx] * sc.coarse_w[..., None]).sum(-2)  # [B, A, J]
    fine = (nodes[:, sc.fine_idx] * sc.fine_w[..., None]).sum(-2)
    delta = coarse + state.garment.mean(-1)[..., None] * fine  # [B, A, J] (strength 1 in training)
    W = (model.support_weights[model.anchor_corners] * model.anchor_bary[..., None]).sum(1)  # [A, J]
    fix = correction_transforms_batched(W, corrected_weights(W, delta), T_bone)  # [B, T, A, 4, 4]
    R_fix = fix[..., :3, :3]
    return R_fix, fix[..., :3, 3], matrix_to_quat(polar_rotation(R_fix))


def correction_transforms_batched(
    weights: Tensor,  # [A, J] template weights
    corrected: Tensor,  # [B, A, J] corrected weights of each identity
    T_bone: Tensor,  # [B, T, J, 4, 4]
) -> Tensor:
    """`skin_correction.correction_transforms` of every target: (sum_j W'_j T_j) (sum_j W_j T_j)^-1 [B, T, A, 4, 4]."""
    M = torch.einsum("aj,btjxy->btaxy", weights, T_bone)
    M_new = torch.einsum("baj,btjxy->btaxy", corrected, T_bone)
    return M_new @ torch.linalg.inv_ex(M).inverse  # no error check: nothing here waits for the device


def _shade(
    albedo: Tensor,  # [B, T | 1, A, K, 3]
    transfer: Tensor,  # [B, T, A, K, 3] world frame
    env: Tensor,  # [B, T, 4, 3]
    key_dir: Tensor | None,  # [B, T, 3]
    key_rgb: Tensor | None,  # [B, T, 3]
) -> Tensor:
    """`appearance.shade` of every target: albedo * (ambient + transfer . linear rows + key lobe), in [0, 1]."""
    irradiance = env[:, :, None, None, 0] + (transfer[..., :, None] * env[:, :, None, None, 1:]).sum(-2)
    if key_dir is not None and key_rgb is not None:
        kd = key_dir.to(env.dtype)
        kd = kd / kd.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        lobe = (0.25 + 0.5 * (transfer * kd[:, :, None, None]).sum(-1)).clamp_min(0.0)  # [B, T, A, K]
        irradiance = irradiance + lobe[..., None] * key_rgb.to(env.dtype)[:, :, None, None]
    return (albedo * irradiance.clamp_min(0.0)).clamp(0.0, 1.0)
