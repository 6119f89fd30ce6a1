"""Per-subject refinement: a few hundred steps on one avatar's canonical Gaussians against its reference photos."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable

import torch
from torch import Tensor

from core.model.appearance import Lighting
from core.model.avatar import Avatar
from core.model.crops import BodyEstimate
from core.model.drive import drive_gaussians
from core.model.heads import CanonicalGaussians
from core.raster.torch_ref import TorchRasterSettings
from core.raster.types import Camera, Gaussians

log = logging.getLogger(__name__)

Renderer = Callable[[Gaussians, Camera], tuple[Tensor, Tensor]]  # -> colour [1, H, W, 3], alpha [1, H, W, 1]

OPTIMISED = ("offsets", "albedo", "opacity_logits", "quats", "log_scales", "transfer")


# Small tiles and long depth blocks suit the torch rasteriser on refinement's small photos (mostly sub-tile splats):
# about 3-4x faster per step than its defaults on a CPU, the same image (tiling changes no pixel's sum).
CPU_RASTER = TorchRasterSettings(tile_size=4, depth_block=128)

# A Gaussian whose coverage over the refined views lies more than this share off the person masks is a floater
# (`prune_off_person`): on the shipped avatar, pruning at 0.8 removed every floater head close-ups leave beside the
# head; a Gaussian straddling the silhouette's edge has about half its coverage off the mask, well below it.
PRUNE_SHARE = 0.8


def _default_render(g: Gaussians, cam: Camera) -> tuple[Tensor, Tensor]:
    from core.raster.rasterize import rasterize

    settings = CPU_RASTER if g.means.device.type == "cpu" else None
    r = rasterize(g, cam, background=(0.0, 0.0, 0.0), torch_settings=settings)
    return r.color, r.alpha


def drive_through(model: torch.nn.Module, state, est: BodyEstimate, light: Lighting) -> Gaussians:
    """`state`'s Gaussians driven by one body estimate (pose, expression, gaze, translation) on `state`'s device,
    without the deformer's training terms (refinement and pictures are not a training step)."""
    dev = state.anchors.device
    return drive_gaussians(
        model, state, est.pose.to(dev), est.expression.to(dev), est.gaze.to(dev), light, est.translation.to(dev),
        regularisers=False,
    ).gaussians  # fmt: skip


@torch.no_grad()
def render_state(model: torch.nn.Module, state, est: BodyEstimate) -> tuple[Tensor, Tensor]:
    """`state` drawn through one body estimate under neutral light on black, as refinement renders it: colour
    [H, W, 3] in [0, 1] and alpha [H, W], on the state's device."""
    dev = state.anchors.device
    colour, alpha = _default_render(drive_through(model, state, est, Lighting.neutral(dev)), est.camera.to(dev))
    return colour[0].clamp(0, 1), alpha[0, ..., 0]


def render_through(avatar: Avatar, est: BodyEstimate) -> tuple[Tensor, Tensor]:
    """The avatar drawn through one fitted body estimate (`render_state`)."""
    return render_state(avatar.model, avatar.state, est)


def frozen_view(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` whose parameters share the model's storage but never require gradients (no memory copy)."""
    memo: dict[int, object] = {id(p): torch.nn.Parameter(p.detach(), requires_grad=False) for p in model.parameters()}
    memo.update({id(b): b for b in model.buffers()})
    return copy.deepcopy(model, memo)


def personalise(
    avatar: Avatar,
    images: Tensor,  # [N, 3, H, W] in [0, 1], the reference photos
    estimates: list[BodyEstimate],  # one per image; cameras sized like the images
    *,
    steps: int = 300,
    lr: float = 2e-3,
    acap_weight: float = 10.0,
    render: Renderer | None = None,
    log_every: int = 50,
    progress: Callable[[int, float], None] | None = None,  # called after each step with (step, loss)
    bone_trust: Tensor | None = None,  # [N, J] in [0, 1] per photo: 0 where its body fit put that bone elsewhere
    masks: Tensor | None = None,  # [N, H, W] in [0, 1] person masks of the images
    silhouette_weight: float = 0.5,
    valid: Tensor | None = None,  # [N, H, W] bool or [0, 1]: pixels that show the photo (not letterbox padding)
) -> tuple[Avatar, list[float]]:
    """Refine the canonical Gaussians so that driven renders match the photos (L1 + as-close-as-possible).

    Returns a new Avatar (the input is left unchanged) and the loss per step. Only the avatar's own tensors are
    optimised: the forward passes run on a frozen copy of the model, so the model (which a GUI thread may be
    driving meanwhile, and which other avatars share) gets no gradients and no change. With `bone_trust`, a photo's
    gradient reaches each anchor as the trust of the bones it is skinned to allows (none below 0.3, all above 0.7,
    as in creation): a region the body fit misplaced in a photo learns nothing from that photo. With `masks`, the
    render's coverage (alpha) is also fitted to each person mask (L1, `silhouette_weight`): on black, a dark stray
    Gaussian off the person costs next to nothing in colour, so refinement without it leaves dark floaters around
    the avatar and a speckled outline, which show against any backdrop but black. With `valid`, both terms are
    means over the valid pixels only: the letterbox padding around a photo says nothing about the person (a torso
    continuing below a waist-up photo's edge is not empty), so the avatar there gets no gradient from it.
    """
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[0] != len(estimates) or len(estimates) == 0:
        raise ValueError(f"images: expected [N, 3, H, W] with one estimate per image, got {tuple(images.shape)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    for name, t in (("masks", masks), ("valid", valid)):
        if t is not None and (t.dim() != 3 or tuple(t.shape) != (images.shape[0], *images.shape[2:])):
            raise ValueError(
                f"{name}: expected [N, H, W] = {[images.shape[0], *images.shape[2:]]}, got {list(t.shape)}"
            )
    render = render or _default_render
    model, dev = avatar.model, avatar.state.anchors.device
    anchor_trust = _anchor_trust(model, bone_trust, len(estimates), dev)
    frozen = frozen_view(model)
    can = avatar.state.canonical
    params = {k: getattr(can, k).detach().clone().requires_grad_(True) for k in OPTIMISED}
    opt = torch.optim.Adam(params.values(), lr=lr)
    targets = images.to(dev).permute(0, 2, 3, 1)  # [N, H, W, 3]
    coverage = None if masks is None else masks.to(dev, torch.float32)[..., None]  # [N, H, W, 1]
    weight = None if valid is None else valid.to(dev, torch.float32)[..., None]  # [N, H, W, 1]

    def mean(x: Tensor, i: int) -> Tensor:  # x [H, W, C]: its mean over the valid pixels of view i
        if weight is None:
            return x.mean()
        return (x * weight[i]).sum() / (weight[i].sum().clamp_min(1.0) * x.shape[-1])

    light = Lighting.neutral(dev)
    losses: list[float] = []
    for step in range(steps):
        i = step % len(estimates)
        est = estimates[i]
        c = dataclasses.replace(can, **params)
        state = dataclasses.replace(avatar.state, canonical=c)
        posed = drive_through(frozen, state, est, light)
        cam = est.camera.to(dev)
        if (cam.height, cam.width) != tuple(targets.shape[1:3]):
            raise ValueError(f"camera {i} is {cam.width}x{cam.height} but its image is {tuple(targets.shape[1:3])}")
        colour, alpha = render(posed, cam)
        pred = colour[0]  # [H, W, 3]
        loss = mean((pred - targets[i]).abs(), i) + acap_weight * (params["offsets"] - can.offsets).pow(2).mean()
        if coverage is not None:
            loss = loss + silhouette_weight * mean((alpha[0] - coverage[i]).abs(), i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if anchor_trust is not None:
            for p in params.values():  # [A, K, ...]: scale each anchor's gradient by its trust in this photo
                p.grad.mul_(anchor_trust[i].view(-1, *([1] * (p.dim() - 1))))
        opt.step()
        with torch.no_grad():
            params["albedo"].clamp_(0.0, 1.0)
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step, losses[-1])
        if log_every and step % log_every == 0:
            log.info("personalise step %d/%d loss %.4f", step, steps, losses[-1])
    final = CanonicalGaussians(
        **{
            **{f.name: getattr(can, f.name) for f in dataclasses.fields(can)},
            **{k: v.detach() for k, v in params.items()},
        }
    )
    state = dataclasses.replace(avatar.state, canonical=final)
    return Avatar(model, state, strength=avatar.part_strength.clone()), losses


def _anchor_trust(model, bone_trust: Tensor | None, n: int, dev: torch.device) -> Tensor | None:
    """[N, A] in [0, 1] how much each view may teach each anchor from `bone_trust` [N, J] (none below 0.3 for the
    anchor's bones, all above 0.7, as creation's pixel-aligned colours), or None when all are trusted."""
    if bone_trust is None:
        return None
    J = model.anchor_weights.shape[1]
    if tuple(bone_trust.shape) != (n, J):
        raise ValueError(f"bone_trust: expected [N={n}, J={J}], got {tuple(bone_trust.shape)}")
    w = model.anchor_weights.to(dev, torch.float32)  # [A, J] skinning weights of the anchors
    t = bone_trust.to(dev, torch.float32) @ w.T  # [N, A] the trust of each anchor's bones
    return ((t - 0.3) / 0.4).clamp(0.0, 1.0)


def off_person_share(
    avatar: Avatar,
    estimates: list[BodyEstimate],  # the views, one per mask; cameras sized like the masks
    masks: Tensor,  # [N, H, W] in [0, 1] person masks
    *,
    render: Renderer | None = None,
    valid: Tensor | None = None,  # [N, H, W] bool or [0, 1]: pixels that show the photo (not letterbox padding)
    bone_trust: Tensor | None = None,  # [N, J] per view, as in `personalise`
) -> Tensor:
    """[A, K] the share of each Gaussian's coverage, summed over the views, that falls off the person masks (nan
    where no view sees it). The coverage of a Gaussian is the derivative of the rendered alpha, summed over pixels,
    with respect to its opacity: its own contribution, less what lies in front of it.

    Views that crop the person (head close-ups) let refinement park a Gaussian just outside their frame at no cost;
    seen from further out it floats beside the head. This finds such floaters for `prune_off_person`. Only `valid`
    pixels count (a part of the avatar in a photo's letterbox padding is unseen there, not off the person), and a
    view counts for each anchor only as far as its `bone_trust` allows (a misplaced arm is not a floater).
    """
    if masks.dim() != 3 or masks.shape[0] != len(estimates) or len(estimates) == 0:
        raise ValueError(f"masks: expected [N={len(estimates)}, H, W], got {list(masks.shape)}")
    if valid is not None and valid.shape != masks.shape:
        raise ValueError(f"valid: expected {list(masks.shape)} like the masks, got {list(valid.shape)}")
    render = render or _default_render
    model, dev = avatar.model, avatar.state.anchors.device
    trust = _anchor_trust(model, bone_trust, len(estimates), dev)  # [N, A] or None
    weights = torch.ones_like(masks, dtype=torch.float32) if valid is None else valid.float()  # [N, H, W]
    frozen = frozen_view(model)
    can = avatar.state.canonical
    opacity = can.opacity_logits.detach().clone().requires_grad_(True)
    state = dataclasses.replace(avatar.state, canonical=dataclasses.replace(can, opacity_logits=opacity))
    light = Lighting.neutral(dev)
    on, off = torch.zeros_like(opacity), torch.zeros_like(opacity)
    for i, (est, mask, v) in enumerate(zip(estimates, masks.to(dev, torch.float32), weights.to(dev), strict=True)):
        alpha = render(drive_through(frozen, state, est, light), est.camera.to(dev))[1][0, ..., 0]  # [H, W]
        if alpha.shape != mask.shape:
            raise ValueError(f"a view renders {tuple(alpha.shape)} but its mask is {tuple(mask.shape)}")
        (g_on,) = torch.autograd.grad((alpha * mask * v).sum(), opacity, retain_graph=True)
        (g_off,) = torch.autograd.grad((alpha * (1.0 - mask) * v).sum(), opacity)
        t = 1.0 if trust is None else trust[i][:, None]  # [A, 1]
        on += g_on.clamp_min(0.0) * t
        off += g_off.clamp_min(0.0) * t
    total = on + off
    return torch.where(total > 0, off / total.clamp_min(1e-12), torch.full_like(total, float("nan"))).detach()


def prune_off_person(avatar: Avatar, share: Tensor, *, threshold: float = PRUNE_SHARE) -> tuple[Avatar, int]:
    """A new Avatar whose Gaussians with an off-person `share` (`off_person_share`) above `threshold` are made
    fully transparent (the anchor layout stays: every avatar keeps K Gaussians per anchor); and how many."""
    can = avatar.state.canonical
    if share.shape != can.opacity_logits.shape:
        raise ValueError(f"share: expected {list(can.opacity_logits.shape)}, got {list(share.shape)}")
    drop = torch.nan_to_num(share, nan=0.0).to(can.opacity_logits.device) > threshold
    opacity = torch.where(drop, torch.full_like(can.opacity_logits, -30.0), can.opacity_logits)
    state = dataclasses.replace(avatar.state, canonical=dataclasses.replace(can, opacity_logits=opacity))
    return Avatar(avatar.model, state, strength=avatar.part_strength.clone()), int(drop.sum())


def prune_floaters(
    avatar: Avatar,
    estimates: list[BodyEstimate],  # the views refined on, one per mask
    masks: Tensor | None,  # [N, H, W] in [0, 1] person masks (None: nothing is pruned)
    *,
    valid: Tensor | None = None,  # [N, H, W] pixels that show the photo
    bone_trust: Tensor | None = None,  # [N, J]
    threshold: float = PRUNE_SHARE,
    render: Renderer | None = None,
) -> tuple[Avatar, int]:
    """After refinement: the avatar with the Gaussians whose coverage over the views lies mostly off the person
    masks made transparent (`off_person_share`, `prune_off_person`) and how many; unchanged without masks."""
    if masks is None:
        return avatar, 0
    share = off_person_share(avatar, estimates, masks, render=render, valid=valid, bone_trust=bone_trust)
    return prune_off_person(avatar, share, threshold=threshold)
