"""Per-subject refinement on frames of one sample (core.model.personalise): a benchmark identity's reference views or a
real clip's reference frames, each the person cut out onto black by its mask and driven by its own fitted body and
camera, optionally followed by its head close-up (core.model.closeups), as `create --refine` does with photos."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.body.records import BodyParams
from core.data.benchmarks import ROLE_REF
from core.data.shards import Sample
from core.model.crops import BodyEstimate
from core.model.model import IdentityState, LCAModel
from core.raster import Camera


def valid_pixels(sample: Sample, f: int) -> np.ndarray | None:
    """[H, W] bool: the pixels of frame f that show the source (ingestion's `valid_box`), None when not recorded."""
    if "valid_box" not in sample.arrays:
        return None
    H, W = sample.rgb.shape[2:4]
    x0, y0, x1, y1 = np.round(sample.arrays["valid_box"][f, 0]).astype(int)
    v = np.zeros((H, W), bool)
    v[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    return v


def frame_estimates(sample: Sample, frames: np.ndarray) -> list[BodyEstimate]:
    """One body estimate per frame of `frames` (camera 0): its fitted pose, expression, gaze and translation with the
    sample's fitted shape (`est_*`), and its camera (K, T_cam_world) sized like the frames."""
    a = sample.arrays
    H, W = sample.rgb.shape[2:4]
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
    params = BodyParams(
        shape=t(np.repeat(np.asarray(a["est_shape"])[None], len(frames), 0)),  # [N, S]
        rotations=t(a["est_pose"][frames]),  # [N, J, 3]
        expression=t(a["est_expression"][frames]),  # [N, E]
        gaze=t(a["est_gaze"][frames]),  # [N, 2]
        translation=t(a["est_translation"][frames]),  # [N, 3]
    )
    cameras = [Camera(t(a["K"][f, 0]), t(a["T_cam_world"][f, 0]), W, H) for f in frames]
    return BodyEstimate.split(params, cameras)


@dataclass(frozen=True)
class FrameViews:
    """The views a refinement fits: each frame, then its head close-up where it has one (visited right after it)."""

    images: torch.Tensor  # [N, 3, H, W] in [0, 1], the person on black
    masks: torch.Tensor  # [N, H, W] in [0, 1] person masks (0 beyond the source frame)
    valid: torch.Tensor  # [N, H, W] bool: pixels that show the source (not padding beyond its frame)
    estimates: tuple[BodyEstimate, ...]  # N, cameras sized W x H
    frames: tuple[int, ...]  # N: the sample frame each view was cut from
    closeups: int  # how many of the N views are head close-ups
    notes: tuple[str, ...] = ()  # frames without a close-up, and why
    trimmed: tuple[float, ...] = ()  # per frame (not per view) with a trimmed mask: the share of its mask trimmed

    def __len__(self) -> int:
        return len(self.estimates)


def frame_views(sample: Sample, frames: np.ndarray, *, head_rig=None, trim: bool = False) -> FrameViews:
    """The frames `frames` (camera 0) with the person cut out onto black by the frame's mask and its valid box; with
    `head_rig` (the core.model.rig.BodyRig the estimates drive) and square frames, each frame whose fitted head is in
    view at a usable size is followed by its head close-up at the frame's size (core.model.closeups.head_closeup).
    With `trim`, the frames' masks trimmed to their fitted bodies at ingestion are fitted where the sample has them
    (`arrays["fit_mask"]`, core.capture.mask_trim.with_fit_masks: background the segmenter took in far from the body
    is cut out, so refinement does not paint it onto the avatar); the person masks a frame is scored with are
    `sample.mask`, as the segmenter gave them."""
    from core.model.closeups import head_closeup

    H, W = sample.rgb.shape[2:4]
    images, masks, valids, estimates, owners, notes = [], [], [], [], [], []
    fit_mask = sample.arrays.get("fit_mask") if trim else None  # [F, H, W] uint8, ingestion's trimmed masks
    closeups = 0
    trimmed: list[float] = []
    for f, est in zip(frames, frame_estimates(sample, frames), strict=True):
        f = int(f)
        valid = valid_pixels(sample, f)
        raw = sample.mask[f, 0] if fit_mask is None else fit_mask[f]
        if fit_mask is not None:
            n = int((sample.mask[f, 0] > 127).sum())
            trimmed.append(1.0 - int((raw > 127).sum()) / n if n else 0.0)
        mask = raw if valid is None else raw * valid  # [H, W] uint8, 255 on the person
        rgb = sample.rgb[f, 0] * (mask[..., None] > 127)  # [H, W, 3] uint8, the person on black
        images.append(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0)
        masks.append(torch.from_numpy(mask).float() / 255.0)
        valids.append(torch.ones(H, W, dtype=torch.bool) if valid is None else torch.from_numpy(valid))
        estimates.append(est)
        owners.append(f)
        if head_rig is None:
            continue
        square = H == W
        got = (
            head_closeup(sample.rgb[f, 0], mask, est, head_rig, H, valid=valid)
            if square
            else "the frames are not square"
        )
        if isinstance(got, str):
            notes.append(f"frame {f}: no head close-up: {got}")
            continue
        images.append(got[0])
        masks.append(got[1])
        valids.append(got[2])
        estimates.append(got[3])
        owners.append(f)
        closeups += 1
    return FrameViews(
        torch.stack(images), torch.stack(masks), torch.stack(valids), tuple(estimates), tuple(owners), closeups,
        tuple(notes), tuple(trimmed),
    )  # fmt: skip


def personalise_views(
    model: LCAModel,
    state: IdentityState,
    views: FrameViews,
    *,
    steps: int,
    device: torch.device,
    lr: float = 2e-3,
    acap_weight: float = 10.0,
    progress: Callable[[int, float], None] | None = None,  # after each step: (step, loss)
    fit_masks: bool = True,
) -> tuple[IdentityState, list[float], int]:
    """`state` refined for `steps` steps on `views` (core.model.personalise: L1 of the render on black against the
    person on black, the offsets' closeness to `state`'s and, with `fit_masks`, the L1 of the render's coverage
    against the person masks, as `create --refine` does; only the views' valid pixels count); with `fit_masks`, the
    floaters are then pruned over the same views (core.model.personalise.prune_floaters). The refined identity, the
    loss per step and how many Gaussians were pruned."""
    from core.model.avatar import Avatar
    from core.model.personalise import personalise, prune_floaters

    masks = views.masks if fit_masks else None
    avatar, losses = personalise(
        Avatar(model, state), views.images.to(device), list(views.estimates), steps=steps, lr=lr,
        acap_weight=acap_weight, log_every=0, progress=progress, masks=masks, valid=views.valid,
    )  # fmt: skip
    avatar, pruned = prune_floaters(avatar, list(views.estimates), masks, valid=views.valid)
    return avatar.state, losses, pruned


def personalise_sample(
    model: LCAModel,
    state: IdentityState,
    sample: Sample,
    *,
    steps: int,
    device: torch.device,
    lr: float = 2e-3,
    acap_weight: float = 10.0,
) -> tuple[IdentityState, list[float]]:
    """`state` refined for `steps` steps on a benchmark sample's reference views (role 0; body views only). With the
    feed-forward identity as `state` it is the "feed-forward + refinement" arm; with `template_state` on
    `template_model` (core.train.evaluate) it is the independent per-subject baseline (Gaussians optimised from the
    template on the same photos). Colours only (no coverage term), as bench/personalise.py's results were measured."""
    refs = np.nonzero(sample.arrays["role"] == ROLE_REF)[0]
    views = frame_views(sample, refs)
    new, losses, _ = personalise_views(
        model, state, views, steps=steps, device=device, lr=lr, acap_weight=acap_weight, fit_masks=False
    )
    return new, losses
