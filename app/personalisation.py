"""Personalise an avatar made from photos: refine its canonical Gaussians against those photos in a worker
thread (core.model.personalise), with progress the Create panel shows; the result is a new studio avatar."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from core.model.crops import BodyEstimate

log = logging.getLogger(__name__)

PHOTO_SIDE = 160  # long side in pixels the photos are refined at (renders on the CPU stay quick)


@dataclass(frozen=True)
class PhotoReferences:
    """The photos an avatar was made from, with a body estimate each (what personalisation fits)."""

    images: torch.Tensor  # [N, 3, H, W] in [0, 1], one size
    estimates: tuple[BodyEstimate, ...]  # N, cameras sized W x H


def photo_references(checks, rig, *, side: int = PHOTO_SIDE) -> PhotoReferences:
    """From the capture assistant's usable checks whose body fit is trusted: each photo letterboxed to one size (long
    side `side`), the person cut out by its mask onto black (nothing of the background is fitted), and the body
    fitted to its landmarks. Photos whose fit is poor are refused: their colours would land on the wrong body part."""
    from app.creation import read_photo
    from core.model.photo_fit import box_estimate

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
        rgb = read_photo(c.path)
        s = side / max(rgb.shape[:2])
        h, w = max(1, round(rgb.shape[0] * s)), max(1, round(rgb.shape[1] * s))
        canvas = np.zeros((H, W, 3), np.uint8)
        oy, ox = (H - h) // 2, (W - w) // 2
        if c.mask is not None:
            rgb = rgb * (c.mask[..., None] > 127)
        canvas[oy : oy + h, ox : ox + w] = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        x0, y0, x1, y1 = c.person_box
        box = (x0 * s + ox, y0 * s + oy, x1 * s + ox, y1 * s + oy)
        images.append(torch.from_numpy(canvas).permute(2, 0, 1).float() / 255.0)
        if c.fit is not None and c.fit.method == "landmarks":  # the landmark fit, in the letterboxed pixels
            est = c.fit.estimate
            M = torch.tensor([[s, 0.0, ox], [0.0, s, oy], [0.0, 0.0, 1.0]])
            cam = type(est.camera)(M @ est.camera.K.float(), est.camera.T_cam_world, W, H)
            estimates.append(type(est)(est.params, cam))
        else:
            estimates.append(box_estimate(rig, box, (H, W), c.view))
    return PhotoReferences(torch.stack(images), tuple(estimates))


class PersonaliseJob:
    """One refinement in a daemon thread; the GUI polls `progress`, `done` and `result`/`error` each frame."""

    def __init__(self, studio_avatar, steps: int) -> None:
        refs = getattr(studio_avatar, "references", None)
        if refs is None:
            raise ValueError(
                f"{studio_avatar.name} was not made from photos in this session; personalising needs its photos "
                "(create it in the Create panel first)"
            )
        if steps < 1:
            raise ValueError(f"refinement steps must be >= 1, got {steps}")
        self.source = studio_avatar
        self.steps = steps
        self.progress = 0.0
        self.loss: float | None = None
        self.result = None
        self.error: str | None = None
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, args=(refs,), daemon=True, name="personalise")
        self._thread.start()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def time_left(self) -> str:
        """', 12 s left' at the rate so far ('' before the first step)."""
        from app.tasks import format_duration

        if self.progress <= 0.0:
            return ", estimating time left..."
        elapsed = time.perf_counter() - self.started
        return f", {format_duration(elapsed * (1.0 - self.progress) / self.progress)} left"

    def _run(self, refs: PhotoReferences) -> None:
        from app.model_avatar import ModelAvatar
        from core.model.personalise import personalise

        def on_step(step: int, loss: float) -> None:
            self.progress, self.loss = (step + 1) / self.steps, loss

        src = self.source
        try:
            refined, losses = personalise(
                src.avatar, refs.images, list(refs.estimates), steps=self.steps, progress=on_step, log_every=0
            )
        except (ValueError, RuntimeError) as e:
            self.error = f"{type(e).__name__}: {e}"
            return
        self.result = ModelAvatar(
            refined,
            name=f"{src.name} (personalised)",
            description=f"{src.description}; refined {self.steps} steps on its photos "
            f"(loss {losses[0]:.4f} -> {losses[-1]:.4f})",
            device=src.device,
            references=refs,
        )
