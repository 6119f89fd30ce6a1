"""One training forward pass: references -> identities -> posed renders of the targets -> weighted losses.

`TrainStep` wraps the model so that DDP / FSDP see the whole differentiable computation in one `forward`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.model.appearance import Lighting
from core.model.crops import fit_crop_matrix, fit_crops
from core.model.drive import drive_gaussians, identity_chain
from core.model.model import LCAModel
from core.model.pixel_align import ReferenceViews
from core.raster import Camera, Gaussians
from core.raster.rasterize import rasterize
from core.raster.sh import SH_C1
from core.raster.types import SH_C0
from core.train.config import LossConfig
from core.train.losses import (
    PerceptualLoss,
    acap_loss,
    asap_loss,
    canonical_render_loss,
    mask_loss,
    part_loss,
    ssim,
)


def lighting_from_sh(env_sh: Tensor, key_dir: Tensor | None = None, key_rgb: Tensor | None = None) -> Lighting:
    """The synthetic world's degree-2 radiance SH [9, 3] (3DGS basis order) as the model's degree-1 irradiance.

    Irradiance / pi of a cosine lobe keeps band 0 at gain 1 and band 1 at gain 2/3 (Ramamoorthi & Hanrahan);
    band 2 is dropped (the model's transfer is degree 1). Rows of the result: ambient, x, y, z.
    """
    env = torch.stack(
        [
            SH_C0 * env_sh[0],
            -(2 / 3) * SH_C1 * env_sh[3],  # basis -C1 * x
            -(2 / 3) * SH_C1 * env_sh[1],  # basis -C1 * y
            (2 / 3) * SH_C1 * env_sh[2],  # basis +C1 * z
        ]
    )
    if key_dir is None or key_rgb is None or float(key_rgb.abs().sum()) == 0.0:
        return Lighting(env=env)
    return Lighting(env=env, direction=key_dir, colour=key_rgb)


def batch_views(batch: dict, body_crop: tuple[int, int]) -> ReferenceViews:
    """The references' views [B, N] of a training batch: their body estimates and the intrinsics of their body
    crops once `fit_crops` has cut the loader's square crops to the model's `body_crop` (H, W)."""
    full = batch["ref_full"]  # [B, N, 3, S, S]
    rot = batch["ref_pose"]
    M = fit_crop_matrix(tuple(full.shape[-2:]), body_crop).to(rot.device)
    return ReferenceViews(
        rotations=rot,
        expression=batch["ref_expression"],
        gaze=batch["ref_gaze"] if "ref_gaze" in batch else rot.new_zeros(*rot.shape[:2], 2),
        translation=batch["ref_translation"],
        K=M @ batch["ref_K_full"].to(rot),
        T_cam_world=batch["ref_T_cam_world"],
    )


@dataclass
class StepOutput:
    loss: Tensor
    terms: dict[str, Tensor]  # unweighted loss terms (detached)
    pred: Tensor  # [B*T, H, W, 3] renders of the targets (detached, for sample images)
    target: Tensor  # [B*T, H, W, 3]
    mask: Tensor | None = None  # [B*T, H, W, 1] the targets' person masks (person-only metrics)


class TrainStep(nn.Module):
    """model + losses in one module (what DDP/FSDP wrap)."""

    def __init__(
        self,
        model: LCAModel,
        loss_cfg: LossConfig,
        *,
        render_size: int,
        perceptual: PerceptualLoss | None,
        amp: bool = False,
    ):
        super().__init__()
        self.amp = amp
        self.model = model
        self.cfg = loss_cfg
        self.render_size = render_size
        self.perceptual = perceptual

    def _render(
        self,
        g: Gaussians,
        cam: Camera,
        part_probs: Tensor | None,  # [G, P] or None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        g = g.to(torch.float32)
        feats = None if part_probs is None else part_probs.to(torch.float32)
        # the part probabilities ride in the colour pass as extra channels (softmax labels stay differentiable)
        out = rasterize(g, cam, background=(0.0, 0.0, 0.0), features=feats)
        return out.color, out.alpha, out.features

    def _lighting(self, batch: dict, b: int, t: int, dev: torch.device) -> Lighting:
        """Target t of identity b: its generator lighting where known; otherwise (wild clips under pipeline
        supervision, real footage) neutral light plus the per-frame lighting code the model reads off the frame."""
        if "tgt_lit" not in batch or float(batch["tgt_lit"][b, t]) > 0.5:
            return lighting_from_sh(
                batch["tgt_env_sh"][b, t].to(dev),
                batch["tgt_key_dir"][b, t].to(dev) if "tgt_key_dir" in batch else None,
                batch["tgt_key_rgb"][b, t].to(dev) if "tgt_key_rgb" in batch else None,
            )
        est = self.model.light_estimator
        if est is None:
            return Lighting.neutral(dev)
        frame = batch["tgt_rgb"][b, t].to(dev) * batch["tgt_mask"][b, t].to(dev)  # [3, H, W] person over black
        return replace(Lighting.neutral(dev), code=est(frame))

    def forward(self, batch: dict) -> StepOutput:
        model, cfg = self.model, self.cfg
        dev = next(model.parameters()).device
        mcfg = model.cfg
        body = fit_crops(batch["ref_full"].to(dev), tuple(mcfg.encoder.body_crop))  # [B, N, 3, h, w]
        face = fit_crops(batch["ref_face"].to(dev), tuple(mcfg.encoder.face_crop))
        shape = batch["shape"].to(dev) if model.anchor_shape is not None else None
        views = None
        if model.pixel_appearance is not None:
            views = batch_views(batch, tuple(mcfg.encoder.body_crop)).to(dev)
        # bf16 for the encoder and transformer only; skinning, shading and rasterising stay float32
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=self.amp and dev.type == "cuda"):
            states = model(body, face, shape, views)
        states = states.map(lambda v: v.float() if v.is_floating_point() else v)
        B, T = batch["tgt_rgb"].shape[:2]
        side = self.render_size
        preds, alphas, targets, masks, part_probs, part_labels, canon = [], [], [], [], [], [], []
        regs: dict[str, list[Tensor]] = {"acap": [], "asap": [], "arap": [], "sparsity": []}
        use_parts = cfg.parts > 0 and "tgt_parts" in batch
        for b in range(B):
            st = states.select(b)
            probs_g = F.softmax(st.canonical.part_logits, -1).flatten(0, 1) if use_parts else None  # [A*K, P]
            regs["asap"].append(asap_loss(st.canonical.log_scales))
            chain = identity_chain(model, st)  # the rest skeleton, shared by this identity's targets
            for t in range(T):
                light = self._lighting(batch, b, t, dev)
                out = drive_gaussians(
                    model,
                    st,
                    batch["tgt_pose"][b, t].to(dev),
                    batch["tgt_expression"][b, t].to(dev),
                    batch["tgt_gaze"][b, t].to(dev),
                    light,
                    batch["tgt_translation"][b, t].to(dev),
                    chain=chain,
                )
                regs["acap"].append(acap_loss(out.offsets))
                for k in ("arap", "sparsity"):
                    if k in out.regularisers:
                        regs[k].append(out.regularisers[k])
                H, W = batch["tgt_rgb"].shape[-2:]
                scale = side / max(H, W)
                cam = Camera(batch["tgt_K"][b, t].to(dev), batch["tgt_T_cam_world"][b, t].to(dev), W, H).scaled(scale)
                color, alpha, probs = self._render(out.gaussians, cam, probs_g)
                preds.append(color[0])
                if cfg.canonical > 0:  # the canonical branch alone, skinned to the same frame (Eq. 12)
                    args = (batch["tgt_pose"][b, t], batch["tgt_expression"][b, t], batch["tgt_gaze"][b, t])
                    args = (*(a.to(dev) for a in args), light, batch["tgt_translation"][b, t].to(dev))
                    g_can = drive_gaussians(model, st, *args, chain=chain, pose_dependent=False).gaussians
                    canon.append(self._render(g_can, cam, None)[0][0])
                alphas.append(alpha[0])
                size = (cam.height, cam.width)
                rgb = F.interpolate(batch["tgt_rgb"][b, t : t + 1].to(dev), size=size, mode="area")
                m = F.interpolate(batch["tgt_mask"][b, t : t + 1].to(dev), size=size, mode="area")
                targets.append((rgb * m)[0].permute(1, 2, 0))  # person over black, like the render
                masks.append(m[0].permute(1, 2, 0))
                if use_parts:
                    part_probs.append(probs[0])
                    lab = batch["tgt_parts"][b, t : t + 1, None].to(dev).float()
                    lab = F.interpolate(lab, size=size, mode="nearest")[0, 0].long()
                    part_labels.append(torch.where(lab == 255, torch.full_like(lab, -1), lab))
        pred, target = torch.stack(preds), torch.stack(targets)  # [B*T, H, W, 3]
        alpha, mask = torch.stack(alphas), torch.stack(masks)
        terms: dict[str, Tensor] = {"l1": (pred - target).abs().mean()}
        if cfg.ssim > 0:
            terms["ssim"] = 1.0 - ssim(pred, target)
        if cfg.perceptual > 0 and self.perceptual is not None:
            terms["perceptual"] = self.perceptual(pred, target)
        if cfg.mask > 0:
            terms["mask"] = mask_loss(alpha, mask)
        if canon:
            terms["canonical"] = canonical_render_loss(torch.stack(canon), target)
        if use_parts:
            terms["parts"] = part_loss(torch.stack(part_probs), torch.stack(part_labels))
        for k, v in regs.items():
            if v and getattr(cfg, k) > 0:
                terms[k] = torch.stack(v).mean()
        loss = sum(getattr(cfg, k) * v for k, v in terms.items())
        return StepOutput(
            loss=loss,
            terms={k: v.detach() for k, v in terms.items()},
            pred=pred.detach(),
            target=target.detach(),
            mask=mask.detach(),
        )
