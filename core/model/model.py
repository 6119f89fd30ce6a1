"""`LCAModel`: crops -> ViT -> image tokens; anchors -> geometry tokens; transformer; heads -> identity state."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.model.anchor_cache import cached_anchors
from core.model.appearance import LightingCode, LightingEstimator
from core.model.config import ModelConfig
from core.model.deformer import GARMENT_SLICE, NodeDeformer
from core.model.encoder import ViTEncoder
from core.model.heads import (
    CANONICAL_CHANNELS,
    DELTA_CHANNELS,
    CanonicalGaussians,
    CanonicalHead,
    ConditionedMLP,
    PoseEncoder,
    decode_canonical,
    part_prior,
)
from core.model.pixel_align import (
    PixelAppearance,
    ReferenceViews,
    pool_views,
    reference_uv,
    sample_views,
    warn_missing_views,
)
from core.model.rig import BodyRig
from core.model.skin_correction import SkinningCorrection
from core.model.tokens import Anchors, GeometryTokens, anchor_support
from core.model.transformer import MultimodalTransformer


@dataclass(frozen=True)
class IdentityState:
    """Everything the per-frame path needs for identities [B] (or one identity, without the B dim)."""

    anchors: Tensor  # [B, A, 3] rest anchor positions with the identity's shape
    rest_poses: Tensor  # [B, J, 4, 4] rest bone frames (axes, head) with the identity's shape
    support: Tensor  # [B, U, 3] rest positions of the anchors' triangle corners with the identity's shape
    canonical: CanonicalGaussians  # [B, A, K, ...]
    pose_proj: Tensor  # [B, A, h] cached first layer of the pose (or single-branch) head
    pose_zero: Tensor  # [B, A, K, C] head output at the zero pose (C = DELTA_CHANNELS, or CANONICAL_CHANNELS)
    garment: Tensor  # [B, A, K] garment probability (gates the fine deformer level)
    node_proj: Tensor | None = None  # [B, Nn, h] cached deformer inputs
    node_zero: Tensor | None = None  # [B, Nn, 6]
    skin_nodes: Tensor | None = None  # [B, Nn, J] skinning-weight corrections of the nodes (deformer "skinning")

    def tensors(self) -> dict[str, Tensor]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, CanonicalGaussians):
                out.update({f"canonical.{g.name}": getattr(v, g.name) for g in fields(v)})
            elif v is not None:
                out[f.name] = v
        return out

    @classmethod
    def from_tensors(cls, t: dict[str, Tensor]) -> IdentityState:
        can = CanonicalGaussians(**{g.name: t[f"canonical.{g.name}"] for g in fields(CanonicalGaussians)})
        kw = {f.name: t.get(f.name) for f in fields(cls) if f.name != "canonical"}
        return cls(canonical=can, **kw)

    def map(self, fn) -> IdentityState:
        return IdentityState.from_tensors({k: fn(v) for k, v in self.tensors().items()})

    def select(self, b: int) -> IdentityState:
        return self.map(lambda v: v[b])

    def detach(self) -> IdentityState:
        return self.map(lambda v: v.detach())


class LCAModel(nn.Module):
    """The feed-forward avatar model. `drive_only=True` builds just the per-frame modules (for loaded avatars)."""

    def __init__(self, cfg: ModelConfig, rig: BodyRig, *, anchors: Anchors | None = None, drive_only: bool = False):
        super().__init__()
        self.cfg = cfg
        self.rig = rig
        self.anchors = (
            anchors
            if anchors is not None
            else cached_anchors(rig, cfg.tokens.num_anchors, cfg.tokens.seed, cfg.tokens.head_share)
        )
        if self.anchors.positions.shape[0] != cfg.tokens.num_anchors:
            raise ValueError(f"{self.anchors.positions.shape[0]} anchors given, config wants {cfg.tokens.num_anchors}")
        a = self.anchors
        self.parents = rig.parents
        self.register_buffer("anchor_pos", a.positions.float(), persistent=False)
        self.register_buffer("anchor_normals", a.normals.float(), persistent=False)
        self.register_buffer("anchor_weights", a.weights.float(), persistent=False)
        self.register_buffer("anchor_parts", a.parts, persistent=False)
        self.register_buffer("anchor_part_prior", part_prior(a.parts), persistent=False)  # [A, 1, P]
        self.register_buffer("anchor_expr", a.expression_basis.float().flatten(1), persistent=False)  # [E, A*3]
        # Skeleton and the anchors' triangle corners ("support" vertices): posing runs core.body's kinematics on
        # them, so anchors land on the posed body surface exactly where BodyModel puts it.
        support, corners = anchor_support(rig.faces, a.face_idx)
        self.register_buffer("rest_poses", rig.rest_poses.float(), persistent=False)  # [J, 4, 4]
        self.register_buffer("root_position", rig.root_position.float(), persistent=False)  # [3]
        self.register_buffer(
            "ref_orients", None if rig.ref_orients is None else rig.ref_orients.float(), persistent=False
        )  # [J, 3, 3]
        self.register_buffer("support_ids", support, persistent=False)  # [U]
        self.register_buffer("anchor_corners", corners, persistent=False)  # [A, 3] index into support
        self.register_buffer("anchor_bary", a.bary.float(), persistent=False)  # [A, 3]
        self.register_buffer("support_rest", rig.vertices[support].float(), persistent=False)  # [U, 3]
        self.register_buffer("support_weights", rig.weights[support].float(), persistent=False)  # [U, J]
        self.register_buffer(
            "support_expr", rig.expression_basis[:, support].float().flatten(1), persistent=False
        )  # [E, U*3]
        self.phenotype = rig.phenotype  # the body's non-linear shape model (a submodule, so it moves with us)
        self.register_buffer("eye_joints", torch.tensor(rig.eye_joints, dtype=torch.int64), persistent=False)
        self.base_log_scale = math.log(max(a.spacing, 1e-4) / math.sqrt(cfg.heads.gaussians_per_anchor))
        D, h, K = cfg.transformer.width, cfg.heads.hidden, cfg.heads.gaussians_per_anchor
        J, E = rig.num_joints, rig.num_expressions
        self.shape_dim = 0 if drive_only else rig.num_shape
        self.drive_only = drive_only
        self.pixel_appearance: PixelAppearance | None = None
        if not drive_only:
            enc = cfg.encoder
            self.encoder = ViTEncoder(enc)
            self.image_mlp = nn.Linear(enc.width, D)  # the shared 1-layer MLP to image tokens
            self.crop_embed = nn.Parameter(torch.randn(2, D) * 0.02)  # 0: full body, 1: face; no photo order
            self.geometry = GeometryTokens(a, D, cfg.tokens.frequencies)
            self.pixel_appearance = (
                PixelAppearance(enc.width, D, cfg.tokens.pixel_albedo) if cfg.tokens.pixel_aligned else None
            )
            self.transformer = MultimodalTransformer(cfg.transformer)
            if cfg.heads.decoder == "dual":
                self.canonical_head = CanonicalHead(D, h, K)
        self.pose_encoder = PoseEncoder(J, E, h)
        out = DELTA_CHANNELS if cfg.heads.decoder == "dual" else CANONICAL_CHANNELS
        self.pose_head = ConditionedMLP(D, h, K * out, zero_last=cfg.heads.decoder == "dual")
        dcfg = cfg.deformer
        self.deformer = NodeDeformer(dcfg, a, D, J, E) if dcfg.enabled and dcfg.kind == "nodes" else None
        self.skin_correction = SkinningCorrection(dcfg, a, D, J) if dcfg.enabled and dcfg.kind == "skinning" else None
        self.lighting_code = LightingCode(cfg.appearance.lighting_code_dim)
        app = cfg.appearance
        self.light_estimator = (
            LightingEstimator(app.lighting_code_dim)
            if app.lighting_estimator and app.lighting_code_dim > 0 and not drive_only
            else None
        )

    # ------------------------------------------------------------------------------------------------------
    def drive_state_dict(self) -> dict[str, Tensor]:
        """Parameters of the per-frame modules (what an avatar file carries)."""
        keep = ("pose_encoder.", "pose_head.", "deformer.", "skin_correction.", "lighting_code.")
        return {k: v for k, v in self.state_dict().items() if k.startswith(keep)}

    @property
    def num_joints(self) -> int:
        return self.rest_poses.shape[0]

    @property
    def num_expressions(self) -> int:
        return self.anchor_expr.shape[0]

    @property
    def anchor_shape(self) -> Tensor | None:
        """The default identity shape [S] when the model takes one (`shape_dim > 0`), else None."""
        if self.shape_dim == 0:
            return None
        return self.rig.default_shape.to(self.anchor_pos)

    def shaped_rest(self, shape: Tensor | None, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """Rest anchors [B, A, 3], bone frames [B, J, 4, 4] and support vertices [B, U, 3] for identity shapes
        `shape` [B, S] through the body's own shape model (None, or a rig without one: the template).

        Runs once per identity; the anchors are interpolated from the shaped triangle corners.
        """
        U, J = self.support_rest.shape[0], self.rest_poses.shape[0]
        if shape is None or self.shape_dim == 0:
            support = self.support_rest.expand(batch, U, 3)
            rest_poses = self.rest_poses.expand(batch, J, 4, 4)
        else:
            if shape.shape != (batch, self.shape_dim):
                raise ValueError(
                    f"shape: expected [B={batch}, S={self.shape_dim}] identity shape values, got {tuple(shape.shape)}"
                )
            verts, rest_poses = self.rig.rest(shape, batch)
            support = verts.to(self.support_rest)[:, self.support_ids]
            rest_poses = rest_poses.to(self.rest_poses)
        anchors = (support[:, self.anchor_corners] * self.anchor_bary[..., None]).sum(-2)  # [B, A, 3]
        return anchors, rest_poses, support

    @property
    def new_layer_prefixes(self) -> tuple[str, ...]:
        """Names of optional layers that a checkpoint trained without them may lack when it initialises this model
        (`init_from`); they start so that the model computes what the checkpoint computed (the albedo prior aside)."""
        new = ("pixel_appearance.",) if self.pixel_appearance is not None else ()
        new += ("light_estimator.",) if self.light_estimator is not None else ()
        return new + (("skin_correction.",) if self.skin_correction is not None else ())

    def encode(self, body: Tensor, face: Tensor) -> tuple[Tensor, Tensor]:
        """body [B, N, 3, Hb, Wb], face [B, N, 3, Hf, Wf] in [0, 1] -> (image tokens [B, N*(Tb+Tf), D],
        body patch features [B, N, De, gh, gw] of the encoder)."""
        B, N = body.shape[:2]
        joint = self.encoder.forward_joint(body.flatten(0, 1), face.flatten(0, 1))  # (B*N, Tb+Tf, De), one pass
        grid = self.encoder.patch_grid(body.shape[-2], body.shape[-1])
        Tb = grid[0] * grid[1]
        eb = joint[:, :Tb]  # (B*N, Tb, De) the body crops' tokens
        crop = torch.cat([self.crop_embed[:1].expand(Tb, -1), self.crop_embed[1:].expand(joint.shape[1] - Tb, -1)])
        tokens = self.image_mlp(joint) + crop  # (B*N, Tb+Tf, D)
        patches = eb.transpose(1, 2).unflatten(2, grid).unflatten(0, (B, N))  # (B, N, De, gh, gw)
        return tokens.view(B, N * tokens.shape[1], tokens.shape[2]), patches

    def image_tokens(self, body: Tensor, face: Tensor) -> Tensor:
        """body [B, N, 3, Hb, Wb], face [B, N, 3, Hf, Wf] in [0, 1] -> image tokens [B, N*(Tb+Tf), D]."""
        return self.encode(body, face)[0]

    def forward(
        self,
        body: Tensor,  # [B, N, 3, Hb, Wb] in [0, 1]
        face: Tensor,  # [B, N, 3, Hf, Wf]
        shape: Tensor | None = None,  # [B, S]
        views: ReferenceViews | None = None,  # [B, N] body estimate and body-crop camera of each reference
        *,
        check_finite: bool = True,
    ) -> IdentityState:
        """Identities from crops -> IdentityState. `views` feeds the pixel-aligned path (`tokens.pixel_aligned`);
        models without that path ignore it, and with it but no views the path sees nothing (warned once).
        `check_finite=False` skips the crops' NaN check, which waits for the device (training reads 8-bit images)."""
        if self.drive_only:
            raise RuntimeError("this model was built drive_only (from an avatar file); it cannot create avatars")
        check_crops(body, face, self.cfg, finite=check_finite)
        B, N = body.shape[:2]
        pixel = self.pixel_appearance
        with torch.autocast(device_type=body.device.type, enabled=False):  # body geometry stays float32
            anchors, rest_poses, support = self.shaped_rest(None if shape is None else shape.float(), B)
            if pixel is not None and views is not None:
                if views.batch_shape != (B, N):
                    raise ValueError(f"views: expected [B={B}, N={N}] like the crops, got {views.batch_shape}")
                ref_uv, ref_weight = reference_uv(self, support, rest_poses, views, tuple(body.shape[-2:]))
        geo = self.geometry(anchors)  # (B, A, D)
        tokens, patches = self.encode(body, face)
        albedo_prior = None
        if pixel is not None:
            A = anchors.shape[1]
            if views is None:
                warn_missing_views()
                rgb = body.new_zeros(B, A, 3)
                feat = body.new_zeros(B, A, patches.shape[2])
                seen = body.new_zeros(B, A)
            else:
                rgb, seen = pool_views(sample_views(body.float(), ref_uv), ref_weight)  # (B, A, 3), (B, A)
                feat, _ = pool_views(sample_views(patches, ref_uv), ref_weight)  # (B, A, De)
            add, albedo_prior = pixel(rgb, feat, seen)
            geo = geo + add
        feats = self.transformer(tokens, geo)  # (B, A, D)
        return self.identity_from_features(feats, anchors, rest_poses, support, albedo_prior=albedo_prior)

    def identity_from_features(
        self,
        feats: Tensor,  # [B, A, D]
        anchors: Tensor,  # [B, A, 3]
        rest_poses: Tensor,  # [B, J, 4, 4]
        support: Tensor,  # [B, U, 3]
        albedo_prior: Tensor | None = None,  # [B, A, 3] logits added to the canonical albedo (pixel-aligned path)
    ) -> IdentityState:
        """Geometry features -> canonical Gaussians and the per-frame caches (inputs from `shaped_rest`)."""
        B, A, _ = feats.shape
        K = self.cfg.heads.gaussians_per_anchor
        proj = self.pose_head.in_proj(feats)  # (B, A, h)
        J, E = self.num_joints, self.num_expressions
        zero_cond = self.pose_encoder(
            feats.new_zeros(J, 6), feats.new_zeros(E), feats.new_zeros(2), self.anchor_weights
        )  # (A, h)
        zero = self.pose_head(proj, zero_cond).unflatten(-1, (K, -1))  # (B, A, K, C)
        if self.cfg.heads.decoder == "dual":
            raw = self.canonical_head(feats)
            if albedo_prior is not None:
                raw = torch.cat([raw[..., :3] + albedo_prior[:, :, None, :], raw[..., 3:]], dim=-1)
        else:
            raw = zero
        can = decode_canonical(
            raw,
            self.anchor_normals,
            self.anchor_part_prior,
            max_offset=self.cfg.heads.max_offset,
            base_log_scale=self.base_log_scale,
        )
        garment = F.softmax(can.part_logits, -1)[..., GARMENT_SLICE].sum(-1)  # (B, A, K)
        node_proj = node_zero = None
        if self.deformer is not None:
            node_proj = self.deformer.project(feats)  # (B, Nn, h)
            w = self.deformer.node_weights
            zc = self.deformer.pose(feats.new_zeros(J, 6), feats.new_zeros(E), feats.new_zeros(2), w)
            node_zero = self.deformer.mlp(node_proj, zc)  # (B, Nn, 6)
        skin_nodes = self.skin_correction.node_deltas(feats) if self.skin_correction is not None else None
        return IdentityState(
            anchors=anchors,
            rest_poses=rest_poses,
            support=support,
            canonical=can,
            pose_proj=proj,
            pose_zero=zero,
            garment=garment,
            node_proj=node_proj,
            node_zero=node_zero,
            skin_nodes=skin_nodes,
        )


def check_crops(body: Tensor, face: Tensor, cfg: ModelConfig, *, finite: bool = True) -> None:
    """Raise a clear ValueError for missing, mis-sized or (with `finite`, a wait for the device) non-finite crops."""
    for name, t, (h, w) in (("body crops", body, cfg.encoder.body_crop), ("face crops", face, cfg.encoder.face_crop)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected a tensor [B, N, 3, {h}, {w}], got {type(t).__name__}")
        if t.dim() != 5 or t.shape[2] != 3 or tuple(t.shape[3:]) != (h, w):
            raise ValueError(
                f"{name}: expected [B, N, 3, {h}, {w}] (config '{cfg.name}'), got {tuple(t.shape)}; "
                "crop with core.model.crops.crop_inputs or resize to the config's crop size"
            )
        if t.shape[1] == 0:
            raise ValueError(f"{name}: no images given; pass 1 to {cfg.max_images} reference images")
        if t.shape[1] > cfg.max_images:
            raise ValueError(f"{name}: {t.shape[1]} images given, at most {cfg.max_images} are supported")
        if finite and not torch.isfinite(t).all():
            raise ValueError(f"{name}: contain NaN or infinite values; check the image loading and cropping")
    if body.shape[:2] != face.shape[:2]:
        raise ValueError(f"body crops {tuple(body.shape[:2])} and face crops {tuple(face.shape[:2])} differ in [B, N]")
