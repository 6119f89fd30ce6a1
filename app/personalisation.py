"""Personalise an avatar made from photos: refine its canonical Gaussians against those photos (core.capture.references)
in a worker thread (core.model.personalise; letterbox padding left out, floaters pruned after), with progress the Create panel shows; the result is a new studio avatar."""

from __future__ import annotations

import logging
import threading
import time

from core.capture.references import PhotoReferences

log = logging.getLogger(__name__)


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
        from core.model.personalise import personalise, prune_floaters

        def on_step(step: int, loss: float) -> None:
            self.progress, self.loss = (step + 1) / self.steps, loss

        src = self.source
        try:
            refined, losses = personalise(
                src.avatar,
                refs.images,
                list(refs.estimates),
                steps=self.steps,
                progress=on_step,
                log_every=0,
                bone_trust=refs.trust,
                masks=refs.masks,
                valid=refs.valid,
            )
            refined, pruned = prune_floaters(
                refined, list(refs.estimates), refs.masks, valid=refs.valid, bone_trust=refs.trust
            )
        except (ValueError, RuntimeError) as e:
            self.error = f"{type(e).__name__}: {e}"
            return
        self.result = ModelAvatar(
            refined,
            name=f"{src.name} (personalised)",
            description=f"{src.description}; refined {self.steps} steps on its photos "
            f"(loss {losses[0]:.4f} -> {losses[-1]:.4f}), pruned {pruned} floater(s)",
            device=src.device,
            references=refs,
        )
