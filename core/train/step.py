"""One training forward pass: references -> identities -> posed renders of the targets -> weighted losses.

`TrainStep` wraps the model so that DDP / FSDP see the whole differentiable computation in one `forward`. Its
fast path poses, shades and renders all targets of all identities as one batch (`drive_targets`, one batched
rasteriser call; the targets' head close-ups, when the batch has them, in one more). It runs as three stages with
tensor-only inputs and outputs (identities; posed Gaussians and regularisers; losses) around the rasteriser, which
`graphs=True` replays as CUDA graphs (`core.train.step_graphs`) and `compile=True` runs through `torch.compile`;
`forward_per_target` is the slow reference it is tested against, one posed target after another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.constants import constant
from core.model.appearance import Lighting
from core.model.crops import fit_crops
from core.model.drive import drive_gaussians, identity_chain
from core.model.drive_batch import drive_targets
from core.model.model import IdentityState, LCAModel
from core.raster import Camera, Gaussians
from core.raster.rasterize import rasterize
from core.train.closeups import CloseupTargets, closeup_targets, face_loss
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
from core.train.step_graphs import Stage, StageGraphs
from core.train.step_inputs import batch_views, lighting_from_sh, target_frames

log = logging.getLogger(__name__)

TERM_WEIGHTS = {"loss_face": "face"}  # loss terms whose weight (a LossConfig field) has another name


def _cat_sets(a: Gaussians, b: Gaussians) -> Gaussians:
    """Two batches of sets [Ba, G, ...] and [Bb, G, ...] -> one [Ba + Bb, G, ...] (rendered in one call)."""
    return Gaussians(**{f: torch.cat([getattr(a, f), getattr(b, f)]) for f in _SET_FIELDS})


class _CompiledOrEager:
    """`torch.compile(fn)` that falls back to `fn` for good when compiling fails (a missing compiler, an op
    the backend lacks): training carries on eagerly with a warning instead of stopping."""

    def __init__(self, fn: Callable, name: str) -> None:
        self.fn, self.name = fn, name
        self.compiled: Callable | None = torch.compile(fn, dynamic=False)

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as e:  # noqa: BLE001  (any compiler failure; the eager call below re-raises real errors)
                log.warning("torch.compile of %s failed (%s: %s); running it eagerly", self.name, type(e).__name__, e)
                self.compiled = None
        return self.fn(*args, **kwargs)


@dataclass
class StepOutput:
    loss: Tensor
    terms: dict[str, Tensor]  # unweighted loss terms (detached)
    pred: Tensor  # [B*T, H, W, 3] renders of the targets (detached, for sample images)
    target: Tensor  # [B*T, H, W, 3]
    mask: Tensor | None = None  # [B*T, H, W, 1] the targets' person masks (person-only metrics)
    face_pred: Tensor | None = None  # [B*T, S, S, 3] renders of the targets' head close-ups (when the batch has them)
    face_target: Tensor | None = None  # [B*T, S, S, 3] person over black
    face_mask: Tensor | None = None  # [B*T, S, S, 1]
    face_valid: Tensor | None = None  # [B*T] 1 where a close-up is scored


class TrainStep(nn.Module):
    """model + losses in one module (what DDP/FSDP wrap).

    `per_target=True` selects the slow reference path (`forward_per_target`); `compile=True` runs the identity
    model, the batched per-target path and the image losses through `torch.compile` (static shapes; GPU)."""

    def __init__(
        self,
        model: LCAModel,
        loss_cfg: LossConfig,
        *,
        render_size: int,
        perceptual: PerceptualLoss | None,
        amp: bool = False,
        per_target: bool = False,
        compile: bool = False,
        graphs: bool = False,
        closeup_size: int = 0,
    ):
        """`closeup_size`: side of the head close-up renders (0: `render_size`). `graphs`: replay the batched
        step's stages as CUDA graphs from the second training step on (a GPU, one process; else eager)."""
        super().__init__()
        self.amp = amp
        self.model = model
        self.cfg = loss_cfg
        self.render_size = render_size
        self.closeup_size = closeup_size or render_size
        self.perceptual = perceptual
        self.per_target = per_target
        # plain callables, not submodules: the state dict keeps the model's own names
        self._fast: dict[str, Callable] = {
            "model": model,
            "drive": drive_targets,
            "losses": self._image_terms,
            "face": self._face_term,
        }
        if compile:
            self._fast = {k: _CompiledOrEager(fn, k) for k, fn in self._fast.items()}
        stages = {
            "identity": Stage(self._identity_stage, model),
            "drive": Stage(self._drive_stage, model),
            "losses": Stage(self._loss_stage),
        }
        self._stages = StageGraphs(stages)
        if compile or not graphs:  # not combined: both remove launches, and compiled code is not captured here
            self._stages.off("compile: true" if compile else "graphs: false")

    @property
    def compiled(self) -> bool:
        """True while some part of the step runs compiled (False after a fallback to eager)."""
        return any(isinstance(f, _CompiledOrEager) and f.compiled is not None for f in self._fast.values())

    def _autocast(self, device: torch.device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=self.amp and device.type == "cuda")

    def identities(self, batch: dict, device: torch.device) -> IdentityState:
        """The batch's identities [B] from their reference crops (encoder and transformer in bf16 under `amp`)."""
        return IdentityState.from_tensors(self._stage("identity", self._reference_inputs(batch, device)))

    def _stage(self, name: str, *args):
        """Stage `name` as a CUDA graph where one is live (training with gradients), else eagerly."""
        if self.training and torch.is_grad_enabled():
            return self._stages(name, *args)
        return self._stages.eager(name, *args)

    def _reference_inputs(self, batch: dict, device: torch.device) -> dict[str, Tensor]:
        """What the identity stage reads of a batch, on `device`."""
        model = self.model
        keys = ["ref_full", "ref_face"]
        if model.anchor_shape is not None:
            keys.append("shape")
        if model.pixel_appearance is not None:
            keys += ["ref_pose", "ref_expression", "ref_translation", "ref_K_full", "ref_T_cam_world"]
            keys += ["ref_gaze"] if "ref_gaze" in batch else []
        return {k: batch[k].to(device) for k in keys}

    def _identity_stage(self, refs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Stage 1: identities from reference crops -> `IdentityState.tensors()` in float32."""
        mcfg = self.model.cfg
        device = refs["ref_full"].device
        body = fit_crops(refs["ref_full"], tuple(mcfg.encoder.body_crop))  # [B, N, 3, h, w]
        face = fit_crops(refs["ref_face"], tuple(mcfg.encoder.face_crop))
        views = batch_views(refs, tuple(mcfg.encoder.body_crop)) if "ref_pose" in refs else None
        with self._autocast(device):  # the crops come from 8-bit images: finite, so no check that waits for them
            states = self._fast["model"](body, face, refs.get("shape"), views, check_finite=False)
        return {k: v.float() if v.is_floating_point() else v for k, v in states.tensors().items()}

    def _frame_inputs(self, batch: dict, device: torch.device) -> dict[str, Tensor]:
        """What the drive stage reads of a batch (`target_frames`), on `device`."""
        keys = ["tgt_pose", "tgt_expression", "tgt_gaze", "tgt_translation", "tgt_env_sh"]
        keys += ["tgt_key_dir", "tgt_key_rgb"] if "tgt_key_dir" in batch and "tgt_key_rgb" in batch else []
        if "tgt_lit" in batch:
            keys += ["tgt_lit"] + (["tgt_rgb", "tgt_mask"] if self.model.light_estimator is not None else [])
        return {k: batch[k].to(device) for k in keys}

    def _drive_stage(self, state: dict[str, Tensor], frames_in: dict[str, Tensor]) -> dict:
        """Stage 2: every target of every identity posed and lit (`drive_targets`), the regularisers, and each
        identity's part probabilities when the part loss is on."""
        model = self.model
        states = IdentityState.from_tensors(state)
        dev = states.anchors.device
        frames = target_frames(frames_in, dev, model.light_estimator)
        canonical = self.cfg.canonical > 0  # also the canonical branch alone, skinned to the same frames (Eq. 12)
        out = self._fast["drive"](model, states, frames, amp=self.amp and dev.type == "cuda", canonical=canonical)
        regs = {
            "acap": acap_loss(out.offsets),  # the mean over targets of each target's mean
            "asap": asap_loss(states.canonical.log_scales),
            **{k: v.mean() for k, v in out.regularisers.items()},
        }
        result = {"gaussians": _set_fields(out.gaussians), "regs": regs}
        if out.canonical is not None:
            result["canonical"] = _set_fields(out.canonical)
        if self.cfg.parts > 0:
            result["part_probs"] = F.softmax(states.canonical.part_logits, -1).flatten(1, 2)  # [B, G, P]
        return result

    def _render(
        self,
        g: Gaussians,
        cam: Camera,
        part_probs: Tensor | None,  # [G, P] or [B, G, P] or None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        g = g.to(torch.float32)
        feats = None if part_probs is None else part_probs.to(torch.float32)
        # the part probabilities ride in the colour pass as extra channels (softmax labels stay differentiable)
        out = rasterize(g, cam, background=(0.0, 0.0, 0.0), features=feats)
        return out.color, out.alpha, out.features

    def _targets(self, batch: dict, device: torch.device) -> tuple[Camera, Tensor, Tensor, Tensor | None]:
        """Cameras [B*T, 1] at the render size and the targets resized to it: person over black [B*T, H, W, 3],
        masks [B*T, H, W, 1] and part labels [B*T, H, W] (-1: none) when the batch has them."""
        B, T, _, H, W = batch["tgt_rgb"].shape
        cam = Camera(
            batch["tgt_K"].to(device).flatten(0, 1)[:, None],
            batch["tgt_T_cam_world"].to(device).flatten(0, 1)[:, None],
            W,
            H,
        ).scaled(self.render_size / max(H, W))
        size = (cam.height, cam.width)
        rgb = F.interpolate(batch["tgt_rgb"].to(device).flatten(0, 1), size=size, mode="area")
        m = F.interpolate(batch["tgt_mask"].to(device).flatten(0, 1), size=size, mode="area")
        target = (rgb * m).permute(0, 2, 3, 1)  # person over black, like the render
        labels = None
        if self.cfg.parts > 0 and "tgt_parts" in batch:
            lab = batch["tgt_parts"].to(device).flatten(0, 1)[:, None].float()
            lab = F.interpolate(lab, size=size, mode="nearest")[:, 0].long()
            labels = torch.where(lab == 255, torch.full_like(lab, -1), lab)
        return cam, target, m.permute(0, 2, 3, 1), labels

    def forward(self, batch: dict) -> StepOutput:
        if self.per_target:
            return self.forward_per_target(batch)
        if self.training and torch.is_grad_enabled() and self._stages.status == "recording":
            self._forward_batched(batch)  # once: records each stage's inputs (the result is dropped) ...
            self._stages.capture()  # ... and captures the stages on them
        return self._forward_batched(batch)

    def _forward_batched(self, batch: dict) -> StepOutput:
        dev = next(self.model.parameters()).device
        state = self._stage("identity", self._reference_inputs(batch, dev))
        drive = self._stage("drive", state, self._frame_inputs(batch, dev))
        B, T = batch["tgt_rgb"].shape[:2]
        cam, target, mask, labels = self._targets(batch, dev)
        closeups = self._closeups(batch, dev)
        probs_g = None
        if labels is not None:  # [B*T, G, P] each identity's part probabilities, for each of its targets
            probs = drive["part_probs"]
            probs_g = probs[:, None].expand(B, T, *probs.shape[1:]).flatten(0, 1)
        g = posed = Gaussians(**drive["gaussians"])
        canonical = "canonical" in drive
        if canonical:  # posed and canonical sets in the same call: [2*B*T, G, ...]
            g = _cat_sets(g, Gaussians(**drive["canonical"]))
            cam = Camera(cam.K.repeat(2, 1, 1, 1), cam.T_cam_world.repeat(2, 1, 1, 1), cam.width, cam.height)
            probs_g = None if probs_g is None else probs_g.repeat(2, 1, 1)
        color, alpha, part_probs = self._render(g, cam, probs_g)  # one batched call: [(2*)B*T, 1, ...]
        M = B * T
        canon = color[M:, 0] if canonical else None
        color, alpha = color[:M], alpha[:M]
        parts = None if part_probs is None else part_probs[:M, 0]
        face = None
        if closeups is not None:  # the same posed Gaussians through the close-up cameras: one more batched call
            face = self._render(posed, closeups.cam, None)[0][:, 0]  # [B*T, S, S, 3]
        x = _loss_inputs(color[:, 0], target, alpha[:, 0], mask, parts, labels, drive["regs"], canon, face, closeups)
        return self._output(x, self._stage("losses", x), closeups)

    def forward_per_target(self, batch: dict) -> StepOutput:
        """The reference: one posed target after another through `drive_gaussians` and an unbatched rasteriser
        call each (the slow path the batched `forward` is tested against)."""
        model, cfg = self.model, self.cfg
        dev = next(model.parameters()).device
        states = self.identities(batch, dev)
        B, T = batch["tgt_rgb"].shape[:2]
        side = self.render_size
        preds, alphas, targets, masks, part_probs, part_labels, canon = [], [], [], [], [], [], []
        regs: dict[str, list[Tensor]] = {"acap": [], "asap": [], "arap": [], "sparsity": []}
        use_parts = cfg.parts > 0 and "tgt_parts" in batch
        closeups, faces = self._closeups(batch, dev), []
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
                if closeups is not None:
                    faces.append(self._render(out.gaussians, closeups.camera_at(b * T + t), None)[0][0])
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
        x = _loss_inputs(
            torch.stack(preds),
            torch.stack(targets),
            torch.stack(alphas),
            torch.stack(masks),
            torch.stack(part_probs) if use_parts else None,
            torch.stack(part_labels) if use_parts else None,
            {k: torch.stack(v).mean() for k, v in regs.items() if v},
            torch.stack(canon) if canon else None,
            torch.stack(faces) if faces else None,
            closeups,
        )
        return self._output(x, self._loss_stage(x), closeups)

    def _closeups(self, batch: dict, device: torch.device) -> CloseupTargets | None:
        """The batch's close-up targets when it has them and they count: for the face loss in training, always
        when evaluating (the face PSNR)."""
        if self.training and self.cfg.face <= 0:
            return None
        return closeup_targets(batch, device, self.closeup_size)

    def _face_term(self, pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
        """`face_loss` of the close-up renders, the perceptual network in bf16 under `amp` as for the body."""

        def perceptual(p: Tensor, t: Tensor) -> Tensor:
            with self._autocast(p.device):
                return self.perceptual(p, t)

        return face_loss(pred, target, valid, self.cfg, perceptual if self.perceptual is not None else None)

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

    def _image_terms(self, x: dict) -> dict[str, Tensor]:
        """The unweighted image losses of the target renders (those with a non-zero weight); `x` as
        `_loss_inputs` makes it."""
        cfg = self.cfg
        pred, target = x["pred"], x["target"]
        terms: dict[str, Tensor] = {"l1": (pred - target).abs().mean()}
        if cfg.ssim > 0:
            terms["ssim"] = 1.0 - ssim(pred, target)
        if cfg.perceptual > 0 and self.perceptual is not None:
            with self._autocast(pred.device):  # a frozen feature network: bf16 under `amp`, like the encoder
                terms["perceptual"] = self.perceptual(pred, target).float()
        if cfg.mask > 0:
            terms["mask"] = mask_loss(x["alpha"], x["mask"])
        if "canonical" in x:
            terms["canonical"] = canonical_render_loss(x["canonical"], target)
        if "parts" in x:
            terms["parts"] = part_loss(x["parts"], x["labels"])
        return terms

    def _loss_stage(self, x: dict) -> dict:
        """Stage 3: the unweighted loss terms with a non-zero weight and their weighted sum ("loss")."""
        cfg = self.cfg
        terms = self._fast["losses"](x)
        terms.update({k: v for k, v in x["regs"].items() if getattr(cfg, k) > 0})
        if "face" in x:
            terms["loss_face"] = self._fast["face"](x["face"], x["face_target"], x["face_valid"])
        # the weighted sum as one product (two launches, not two per term)
        weights = tuple(float(getattr(cfg, TERM_WEIGHTS.get(k, k))) for k in terms)
        loss = torch.stack(list(terms.values())) @ constant(weights, torch.float32, terms["l1"].device)
        return {"loss": loss, "terms": terms}

    def _output(self, x: dict, losses: dict, closeups: CloseupTargets | None) -> StepOutput:
        """The step's output; the terms copied out of the loss stage (a graph's outputs are overwritten when it
        is replayed) in one stack."""
        terms = losses["terms"]
        values = torch.stack([v.detach() for v in terms.values()]).unbind()
        with_face = "face" in x
        return StepOutput(
            loss=losses["loss"],
            terms=dict(zip(terms, values, strict=True)),
            pred=x["pred"].detach(),
            target=x["target"].detach(),
            mask=x["mask"].detach(),
            face_pred=x["face"].detach() if with_face else None,
            face_target=closeups.target if with_face else None,
            face_mask=closeups.mask if with_face else None,
            face_valid=closeups.valid if with_face else None,
        )


_SET_FIELDS = ("means", "quats", "log_scales", "opacity_logits", "sh")


def _set_fields(g: Gaussians) -> dict[str, Tensor]:
    """A batch of Gaussian sets as the tensors a stage returns (`Gaussians(**fields)` rebuilds it)."""
    return {f: getattr(g, f) for f in _SET_FIELDS}


def _loss_inputs(
    pred: Tensor,  # [M, H, W, 3]
    target: Tensor,  # [M, H, W, 3]
    alpha: Tensor,  # [M, H, W, 1]
    mask: Tensor,  # [M, H, W, 1]
    part_probs: Tensor | None,  # [M, H, W, P]
    part_labels: Tensor | None,  # [M, H, W] int, -1 = none
    regs: dict[str, Tensor],  # regulariser values (means over identities or targets)
    canonical: Tensor | None = None,  # [M, H, W, 3] canonical renders
    face: Tensor | None = None,  # [M, S, S, 3] close-up renders
    closeups: CloseupTargets | None = None,
) -> dict:
    """The loss stage's inputs: tensors only, the optional ones present or absent."""
    x = {"pred": pred, "target": target, "alpha": alpha, "mask": mask, "regs": regs}
    if part_probs is not None and part_labels is not None:
        x["parts"], x["labels"] = part_probs, part_labels
    if canonical is not None:
        x["canonical"] = canonical
    if face is not None and closeups is not None:
        x["face"], x["face_target"], x["face_valid"] = face, closeups.target, closeups.valid
    return x
