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
from core.raster.types import Camera, Gaussians

log = logging.getLogger(__name__)

Renderer = Callable[[Gaussians, Camera], Tensor]  # -> colour [1, H, W, 3]

OPTIMISED = ("offsets", "albedo", "opacity_logits", "quats", "log_scales", "transfer")


def _default_render(g: Gaussians, cam: Camera) -> Tensor:
    from core.raster.rasterize import rasterize

    return rasterize(g, cam, background=(0.0, 0.0, 0.0)).color


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
) -> tuple[Avatar, list[float]]:
    """Refine the canonical Gaussians so that driven renders match the photos (L1 + as-close-as-possible).

    Returns a new Avatar (the input is left unchanged) and the loss per step. Only the avatar's own tensors are
    optimised: the forward passes run on a frozen copy of the model, so the model (which a GUI thread may be
    driving meanwhile, and which other avatars share) gets no gradients and no change.
    """
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[0] != len(estimates) or len(estimates) == 0:
        raise ValueError(f"images: expected [N, 3, H, W] with one estimate per image, got {tuple(images.shape)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    render = render or _default_render
    model, dev = avatar.model, avatar.state.anchors.device
    frozen = frozen_view(model)
    can = avatar.state.canonical
    params = {k: getattr(can, k).detach().clone().requires_grad_(True) for k in OPTIMISED}
    opt = torch.optim.Adam(params.values(), lr=lr)
    targets = images.to(dev).permute(0, 2, 3, 1)  # [N, H, W, 3]
    light = Lighting.neutral(dev)
    losses: list[float] = []
    for step in range(steps):
        i = step % len(estimates)
        est = estimates[i]
        c = dataclasses.replace(can, **params)
        state = dataclasses.replace(avatar.state, canonical=c)
        out = drive_gaussians(
            frozen, state, est.pose.to(dev), est.expression.to(dev), est.gaze.to(dev), light, est.translation.to(dev)
        )
        cam = est.camera.to(dev)
        if (cam.height, cam.width) != tuple(targets.shape[1:3]):
            raise ValueError(f"camera {i} is {cam.width}x{cam.height} but its image is {tuple(targets.shape[1:3])}")
        pred = render(out.gaussians, cam)[0]  # [H, W, 3]
        loss = (pred - targets[i]).abs().mean() + acap_weight * (params["offsets"] - can.offsets).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
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
