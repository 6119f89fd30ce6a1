"""The photos an avatar was made from, sized for per-subject refinement (`core.model.personalise`): each photo as
the capture assistant read it, letterboxed to one size with the person cut out, and its body estimate moved into
those pixels (no photo is read or estimated again)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from core.model.crops import BodyEstimate

PHOTO_SIDE = 160  # long side in pixels the photos are refined at (renders on the CPU stay quick)


@dataclass(frozen=True)
class PhotoReferences:
    """The photos an avatar was made from, with a body estimate each (what personalisation fits)."""

    images: torch.Tensor  # [N, 3, H, W] in [0, 1], one size
    estimates: tuple[BodyEstimate, ...]  # N, cameras sized W x H


def photo_references(checks, *, side: int = PHOTO_SIDE) -> PhotoReferences:
    """From the capture assistant's usable checks whose body fit is trusted: each photo letterboxed to one size (long
    side `side`), the person cut out by its mask onto black (nothing of the background is fitted), and its body
    estimate in the letterboxed pixels. Photos whose fit is poor are refused: their colours would land on the wrong
    body part."""
    usable = [c for c in checks if c.usable and (c.fit is None or not c.fit.poor)]
    if not usable:
        raise ValueError(
            "no photo to personalise against: "
            + ("the body fit of every photo is poor (see each photo's fit); " if any(c.usable for c in checks) else "")
            + "add a photo where the whole person is found and the fitted body lies on them"
        )
    H = W = side
    images, estimates = [], []
    for c in usable:
        rgb = c.image
        s = side / max(rgb.shape[:2])
        h, w = max(1, round(rgb.shape[0] * s)), max(1, round(rgb.shape[1] * s))
        canvas = np.zeros((H, W, 3), np.uint8)
        oy, ox = (H - h) // 2, (W - w) // 2
        if c.mask is not None:
            rgb = rgb * (c.mask[..., None] > 127)
        canvas[oy : oy + h, ox : ox + w] = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        images.append(torch.from_numpy(canvas).permute(2, 0, 1).float() / 255.0)
        est = c.estimate
        M = torch.tensor([[s, 0.0, ox], [0.0, s, oy], [0.0, 0.0, 1.0]])  # photo pixels -> letterboxed pixels
        cam = type(est.camera)(M @ est.camera.K.float(), est.camera.T_cam_world, W, H)
        estimates.append(type(est)(est.params, cam))
    return PhotoReferences(torch.stack(images), tuple(estimates))
