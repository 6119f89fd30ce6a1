"""The per-frame path: pose head + node deformer + LBS + relighting of one identity -> posed `Gaussians`.

Posing is core.body's: the same per-bone rotations, gaze, translation and bone transforms as `BodyModel`, with
expressions as the body's blendshapes on the anchors' triangle corners.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from core.body.lbs import RestChain, apply_gaze, axis_angle_to_matrix, pose_chain, rest_chain
from core.model.appearance import Lighting, shade
from core.model.heads import decode_canonical, decode_deltas, pose_code
from core.model.model import IdentityState, LCAModel
from core.model.skinning import attach_to_anchors, matrix_to_quat, quat_mul, skin_anchors
from core.raster.lighting import SHADING_GREY
from core.raster.types import Gaussians, rgb_to_sh0

if TYPE_CHECKING:
    from core.model.deformer import NodeDeformer, NodeMotion


@dataclass(frozen=True)
class DriveOutput:
    gaussians: Gaussians  # posed, world frame: means [G, 3] ...
    regularisers: dict[str, Tensor]  # 'arap', 'sparsity' when the deformer is on (training terms)
    offsets: Tensor  # [A, K, 3] total offset of each Gaussian from its anchor (canonical frame; ACAP term)


@dataclass(frozen=True)
class DetailLevel:
    """A reduced level of detail of one identity: k of the K Gaussians per anchor, the same k slots everywhere.

    The slots are shared by all anchors so the pose head computes only their output rows (its cost drops by
    K/k, not just the drawing). Each kept Gaussian is widened in its tangent plane (its two larger axes) so an
    anchor's kept splats cover about the area its K splats covered.
    """

    slots: Tensor  # [k] int64 kept Gaussian slots (0..K-1), ascending
    state: IdentityState  # the identity restricted to those slots: canonical [A, k, ...], pose_zero [A, k, C], ...
    log_scale_boost: Tensor  # [A, k, 3] added to the posed log-scales (0 on each splat's thinnest axis)
    out_weight: Tensor  # [k * C, h] rows of the pose head's last layer for the kept slots
    out_bias: Tensor  # [k * C]

    @property
    def gaussians_per_anchor(self) -> int:
        return int(self.slots.numel())


def coverage_score(
    opacity_logits: Tensor,  # [..., A, K]
    log_scales: Tensor,  # [..., A, K, 3]
) -> Tensor:
    """[..., A, K] how much image a splat covers: opacity x area of its two larger axes."""
    top2 = log_scales.topk(2, dim=-1).values.sum(-1)
    return torch.sigmoid(opacity_logits) * torch.exp(top2)


def detail_level(model: LCAModel, state: IdentityState, k: int, *, max_boost: float = 4.0) -> DetailLevel:
    """The k-of-K level of detail of one identity (computed once per identity and edit, then reused per frame).

    Slots are ranked by their mean coverage over all anchors (deterministic; ties keep the lower slot). An
    anchor's kept splats are scaled in their tangent plane by sqrt(covered(all) / covered(kept)), capped at
    `max_boost` times the area.
    """
    can = state.canonical
    A, K = can.offsets.shape[:2]
    if not 1 <= k <= K:
        raise ValueError(f"detail: expected 1 <= k <= {K} Gaussians per anchor, got {k}")
    score = coverage_score(can.opacity_logits, can.log_scales)  # [A, K]
    order = torch.sort(score.mean(0), descending=True, stable=True).indices
    slots = order[:k].sort().values  # [k]
    ratio = score.sum(-1) / score[:, slots].sum(-1).clamp_min(1e-12)  # [A] >= 1
    boost = 0.5 * torch.log(ratio.clamp(1.0, max_boost))  # [A] per-axis log-scale boost (area x ratio)
    thin = can.log_scales[:, slots].argmin(-1, keepdim=True)  # [A, k, 1]
    mask = torch.ones(A, k, 3, dtype=can.log_scales.dtype, device=can.log_scales.device)
    mask.scatter_(-1, thin, 0.0)
    sub = dataclasses.replace(
        state,
        canonical=type(can)(**{f.name: getattr(can, f.name)[:, slots] for f in dataclasses.fields(can)}),
        pose_zero=state.pose_zero[:, slots],
        garment=state.garment[:, slots],
    )
    C = state.pose_zero.shape[-1]
    rows = (slots[:, None] * C + torch.arange(C, device=slots.device)).reshape(-1)  # [k * C]
    out = model.pose_head.out
    return DetailLevel(
        slots=slots,
        state=sub,
        log_scale_boost=boost[:, None, None] * mask,
        out_weight=out.weight.detach()[rows].contiguous(),
        out_bias=out.bias.detach()[rows].contiguous(),
    )


def blended_node_affine(
    node_pos: Tensor,  # [Nn, 3] node rest positions
    R: Tensor,  # [Nn, 3, 3] node rotations
    t: Tensor,  # [Nn, 3] node translations
    idx: Tensor,  # [A, n] nodes bound to each anchor
    w: Tensor,  # [A, n] their weights
) -> tuple[Tensor, Tensor]:
    """The weighted node motions of each anchor as one affine displacement d(p) = M p + b: M [A, 3, 3], b [A, 3].

    Sum_i w_i (R_i (p - n_i) + n_i + t_i - p) = (Sum_i w_i (R_i - I)) p + Sum_i w_i (t_i - (R_i - I) n_i): the
    same displacement as `deformer.blend_node_motion`, at a cost per anchor instead of per Gaussian and node.
    """
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    Rm = R - eye  # [Nn, 3, 3]
    shift = t - (Rm @ node_pos[..., None])[..., 0]  # [Nn, 3]
    M = (w[..., None, None] * Rm[idx]).sum(1)  # [A, 3, 3]
    b = (w[..., None] * shift[idx]).sum(1)  # [A, 3]
    return M, b


def displace_affine(
    deformer: NodeDeformer,
    points: Tensor,  # [A, k, 3] canonical points
    node_pos: Tensor,  # [Nn, 3]
    motion: NodeMotion,
    garment: Tensor,  # [A, k]
    strength: Tensor,  # [A, k]
) -> Tensor:
    """`deformer.displace` through per-anchor affine maps (equal up to rounding; cheaper for many points)."""
    R = motion.rotation
    Mc, bc = blended_node_affine(node_pos, R, motion.translation, deformer.coarse_idx, deformer.coarse_w)
    Mf, bf = blended_node_affine(node_pos, R, motion.translation, deformer.fine_idx, deformer.fine_w)
    d_coarse = points @ Mc.transpose(-1, -2) + bc[:, None]  # [A, k, 3]
    d_fine = points @ Mf.transpose(-1, -2) + bf[:, None]
    return points + strength[..., None] * (d_coarse + garment[..., None] * d_fine)


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


def _pose_dependent(
    model: LCAModel,
    state: IdentityState,
    code: Tensor,  # [J, 6]
    expression: Tensor,  # [E]
    gaze: Tensor,  # [2]
    detail: DetailLevel | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """This frame's offsets [A, K, 3], quats [A, K, 4], log-scales [A, K, 3], albedo [A, K, 3] and transfer [A, K, 3]:
    the canonical values plus the pose head's deltas (dual decoder), or the single branch's per-frame decode."""
    K = state.canonical.offsets.shape[1]
    cond = model.pose_encoder(code, expression, gaze, model.anchor_weights)  # [A, h]
    if detail is None:
        raw = model.pose_head(state.pose_proj, cond).unflatten(-1, (K, -1))  # [A, K, C]
    else:  # only the kept slots' output rows of the last layer
        head = model.pose_head
        hidden = F.gelu(head.mid(F.gelu(state.pose_proj + cond)))
        raw = F.linear(hidden, detail.out_weight, detail.out_bias).unflatten(-1, (K, -1))  # [A, k, C]
    return decode_pose_output(model, raw, state)


def decode_pose_output(
    model: LCAModel, raw: Tensor, state: IdentityState, *, per_target: bool = False
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The pose head's raw output [..., A, K, C] -> offsets, quats, log-scales, albedo, transfer: the canonical values
    plus the deltas (dual decoder) or the single branch's own decode. `per_target`: raw is [B, T, A, K, C] for a
    state batched over B identities, so the canonical values gain a target axis."""
    can = state.canonical

    def per(t: Tensor) -> Tensor:
        return t[:, None] if per_target else t

    if model.cfg.heads.decoder == "dual":
        d = decode_deltas(raw, per(state.pose_zero), max_offset=model.cfg.heads.max_pose_offset)
        offsets = per(can.offsets) + d.offsets
        quats = quat_mul(d.quats, per(can.quats))
        log_scales = per(can.log_scales) + d.log_scales
        albedo = (per(can.albedo) + d.colour).clamp(0.0, 1.0)
        return offsets, quats, log_scales, albedo, per(can.transfer)
    f = decode_canonical(
        raw, model.anchor_normals, model.anchor_part_prior, max_offset=model.cfg.heads.max_offset,
        base_log_scale=model.base_log_scale,
    )  # fmt: skip
    return f.offsets, f.quats, f.log_scales, f.albedo, f.transfer


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
    detail: DetailLevel | None = None,  # detail_level(model, state, k): k of K Gaussians per anchor (previews)
    regularisers: bool = True,  # False skips the deformer's training terms (per-frame display)
    pose_dependent: bool = True,  # False: the canonical Gaussians alone, only skinned (the canonical render)
    shading_only: bool = False,  # light a uniform grey albedo instead of the avatar's (the "shading" view)
) -> DriveOutput:
    """Posed, lit Gaussians of one identity (differentiable; the Avatar wraps it without gradients).

    With zero canonical offsets every Gaussian sits on the posed body surface that `BodyModel` gives for the
    same shape, rotations, expression, gaze and translation, at its anchor's barycentric coordinates.
    With `detail`, only its k slots per anchor are decoded (A * k Gaussians, widened to keep the coverage);
    `strength` is still [A, K]. With `pose_dependent=False` the pose head's deltas and the deformer are left out:
    the canonical Gaussians as the canonical branch decodes them, posed by skinning alone (what the canonical-render
    loss supervises, `core.train.losses.canonical_render_loss`).
    """
    if detail is not None:
        if strength is not None:
            strength = strength[:, detail.slots]
        state = detail.state
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
    R_local = apply_gaze(R_local, gaze, model.eye_joints)  # as BodyModel.rotation_matrices
    code = pose_code(R_local)  # [J, 6]
    can = state.canonical
    if pose_dependent:
        offsets, quats, log_scales, albedo, transfer = _pose_dependent(model, state, code, expression, gaze, detail)
    else:
        offsets, quats, log_scales, albedo, transfer = (
            can.offsets, can.quats, can.log_scales, can.albedo, can.transfer
        )  # fmt: skip
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
    if model.deformer is not None and state.node_proj is not None and pose_dependent:
        motion = model.deformer.motion(state.node_proj, state.node_zero, code, expression, gaze)
        node_pos = anchors[model.deformer.node_anchor]
        s = torch.ones_like(state.garment) if strength is None else strength
        if detail is None:
            points = model.deformer.displace(points, node_pos, motion, state.garment, s)
        else:
            points = displace_affine(model.deformer, points, node_pos, motion, state.garment, s)
        if regularisers:
            regs = model.deformer.regularisers(node_pos, motion)
    means = attach_to_anchors(points, anchors, posed_anchors, R_anchor)  # [A, K, 3]
    q_anchor = matrix_to_quat(R_anchor)  # [A, 4]
    quats = quat_mul(q_anchor[:, None, :].expand(A, K, 4), quats)
    if model.skin_correction is not None and state.skin_nodes is not None:  # the paper's W' = W(n) + H_skin(T^node)
        sc = model.skin_correction
        delta = sc.anchor_deltas(state.skin_nodes, state.garment.mean(-1))  # [A, J]
        if strength is not None:
            delta = delta * strength.mean(-1, keepdim=True)
        W = (model.support_weights[model.anchor_corners] * model.anchor_bary[..., None]).sum(1)  # [A, J]
        means, quats = sc.apply(means, quats, W, delta, T_world_bone[0])
        if regularisers:
            regs = sc.regularisers(state.skin_nodes)
    transfer_world = transfer @ R_anchor.transpose(-1, -2)  # [A, K, 3]
    if detail is not None:
        log_scales = log_scales + detail.log_scale_boost
    env = model.lighting_code(lighting)
    if shading_only:
        albedo = torch.full_like(albedo, SHADING_GREY)
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
