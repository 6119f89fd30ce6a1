"""Refinement after creation (`create --refine N`): the avatar fitted to the photos it was made from, inside their
person masks and through their fitted poses (core.model.personalise), and to head close-ups of those photos
(core.model.closeups), letterbox padding left out; Gaussians whose coverage lies mostly off the person masks
(floaters) then made transparent; scored person-only on those photos and on photos held out of the refinement, whole and
inside the head close-up, before and after; the refined avatar is kept only when it is finite and neither whole-person
score drops."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.capture.references import PhotoReferences
from core.model.personalise import render_through

log = logging.getLogger(__name__)

DROP_DB = 0.05  # a refined avatar that scores this much worse (dB) on the fitted or held-out photos is not kept


@dataclass(frozen=True)
class PhotoScore:
    """Person-only scores of one photo (core.train.evaluate_real.person_score on the letterboxed references)."""

    name: str
    psnr_before: float  # dB, avatar-on-black vs person-on-black inside the union of the two silhouettes
    psnr_after: float
    iou_before: float  # silhouette IoU of the render and the person mask
    iou_after: float
    face_psnr_before: float = math.nan  # dB, the same inside the photo's head close-up (nan: the photo has none)
    face_psnr_after: float = math.nan


@dataclass(frozen=True)
class RefineReport:
    """What a refinement did, on the photos it fitted and on those it did not see."""

    steps: int
    seconds: float  # the optimisation alone
    seconds_per_step: float
    device: str
    fitted: tuple[PhotoScore, ...]
    held_out: tuple[PhotoScore, ...]  # photos used by the feed-forward create but not by the refinement
    trust_note: str  # which photos refine only some body parts
    closeups: int  # head close-ups refined on (one per fitted photo with a usable head, as often as its photo)
    head_notes: tuple[str, ...]  # photos without a head close-up, and why
    kept: bool  # the refined avatar was written (else the feed-forward one, see `why`)
    why: str
    pruned: int = 0  # floaters made transparent after refinement (core.model.personalise.prune_floaters)

    @staticmethod
    def _mean(rows: tuple[PhotoScore, ...], key: str) -> float | None:
        v = [getattr(r, key) for r in rows if math.isfinite(getattr(r, key))]
        return float(np.mean(v)) if v else None

    def means(self) -> dict[str, float | None]:
        """Mean person PSNR (dB) before/after on the fitted and the held-out photos."""
        return {
            f"{group}_{k}": self._mean(rows, f"psnr_{k}")
            for group, rows in (("fitted", self.fitted), ("held_out", self.held_out))
            for k in ("before", "after")
        }

    def face_means(self) -> dict[str, float | None]:
        """Mean person PSNR (dB) inside the head close-ups before/after, on the fitted and held-out photos."""
        return {
            f"{group}_{k}": self._mean(rows, f"face_psnr_{k}")
            for group, rows in (("fitted", self.fitted), ("held_out", self.held_out))
            for k in ("before", "after")
        }

    def to_json(self) -> dict:
        """The report as JSON-ready data; scores that are not numbers (no close-up, a diverged run) as null."""
        out = dataclasses.asdict(self)
        for group in ("fitted", "held_out"):
            out[group] = [{k: None if _nan(v) else v for k, v in row.items()} for row in out[group]]
        return out | {"mean_person_psnr": self.means(), "mean_face_psnr": self.face_means()}

    def lines(self) -> list[str]:
        """What `create` prints: one line per group and the decision."""
        from core.model.personalise import PRUNE_SHARE

        m, fm = self.means(), self.face_means()
        out = [
            f"refined {self.steps} steps in {self.seconds:.1f} s ({self.seconds_per_step:.2f} s/step, {self.device})"
            f" on {len(self.fitted)} photo(s) and {self.closeups} head close-up(s)"
        ]
        out += self.head_notes
        out.append(
            f"pruned {self.pruned} floater(s): Gaussians with > {100 * PRUNE_SHARE:.0f}% of their coverage off the person masks"
        )
        for group, rows in (("fitted", self.fitted), ("held_out", self.held_out)):
            if rows:
                names = ", ".join(r.name for r in rows)
                b, a = m[f"{group}_before"], m[f"{group}_after"]
                label = group.replace("_", "-")
                out.append(f"person PSNR on {len(rows)} {label} photo(s) ({names}): {_db(b)} -> {_db(a)} dB")
                faces = [r.name for r in rows if math.isfinite(r.face_psnr_before)]
                if faces:
                    b, a = fm[f"{group}_before"], fm[f"{group}_after"]
                    out.append(f"face PSNR on {len(faces)} {label} head close-up(s): {_db(b)} -> {_db(a)} dB")
        if not self.held_out:
            out.append("no held-out photo (give >= 2 photos and --holdout K): only the fitted photos are scored")
        if self.trust_note:
            out.append(self.trust_note)
        out.append(("kept the refined avatar" if self.kept else "kept the unrefined avatar") + f": {self.why}")
        return out


def _nan(v: object) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def _db(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def split_holdout(n: int, holdout: int | None) -> tuple[list[int], list[int]]:
    """(fitted, held-out) photo indices: the last `holdout` photos are held out (default: one when n >= 3, else
    none); at least one photo is always fitted."""
    k = (1 if n >= 3 else 0) if holdout is None else holdout
    if k < 0:
        raise ValueError(f"--holdout must be >= 0, got {k}")
    if k >= n:
        raise ValueError(f"--holdout {k} leaves no photo to refine on ({n} photo(s) with a usable body fit)")
    return list(range(n - k)), list(range(n - k, n))


def references_of(avatar, estimates: list, names: tuple[str, ...] = ()) -> PhotoReferences:
    """'Photos' of an avatar through `estimates`, its silhouettes as person masks (tests and benches: a known
    person to refine towards)."""
    shots = [render_through(avatar, e) for e in estimates]
    images = torch.stack([c.permute(2, 0, 1).cpu() for c, _ in shots])  # [N, 3, H, W]
    masks = torch.stack([(a > 0.5).float().cpu() for _, a in shots])  # [N, H, W]
    return PhotoReferences(images, tuple(estimates), masks, torch.ones_like(masks, dtype=torch.bool), names=names)


def score_photos(avatar, refs: PhotoReferences) -> list[tuple[float, float]]:
    """(person PSNR dB, silhouette IoU) of the avatar on each reference photo, rendered through its fitted body."""
    from core.train.evaluate_real import person_score

    out = []
    for i, est in enumerate(refs.estimates):
        colour, alpha = render_through(avatar, est)
        pred, alpha = colour.cpu().numpy(), alpha.cpu().numpy()
        target = refs.images[i].permute(1, 2, 0).numpy()
        mask = np.ones(target.shape[:2], np.float32) if refs.masks is None else refs.masks[i].numpy()
        valid = None if refs.valid is None else refs.valid[i].numpy()
        out.append(tuple(getattr(person_score(pred, alpha, target, mask, valid), k) for k in ("psnr", "iou")))
    return out


def face_scores(avatar, refs: PhotoReferences) -> dict[int, float]:
    """Person PSNR (dB) inside each photo's head close-up, by photo index in `refs` (photos without one left out)."""
    if refs.heads is None:
        return {}
    return {i: p for i, (p, _) in zip(refs.head_of, score_photos(avatar, refs.heads), strict=True)}


def training_views(refs: PhotoReferences, *, closeups: bool = True) -> PhotoReferences:
    """The views refinement fits: each photo followed by its head close-up, if any (one visit each per round)."""
    if not closeups or refs.heads is None:
        return refs
    heads = refs.heads
    order: list[tuple[PhotoReferences, int]] = []
    for i in range(len(refs)):
        order.append((refs, i))
        order += [(heads, k) for k, j in enumerate(refs.head_of) if j == i]

    def cat(f: str) -> torch.Tensor | None:
        if getattr(refs, f) is None or getattr(heads, f) is None:
            return None
        return torch.stack([getattr(r, f)[k] for r, k in order])

    return PhotoReferences(
        cat("images"), tuple(r.estimates[k] for r, k in order), cat("masks"), cat("valid"), cat("trust"),
        tuple(r.names[k] for r, k in order) if refs.names and heads.names else (),
    )  # fmt: skip


def trust_note(refs: PhotoReferences, anchor_weights: torch.Tensor) -> str:  # anchor_weights [A, J]
    """Which fitted photos refine only part of the avatar (their fit misplaced some bones), or ''."""
    if refs.trust is None:
        return ""
    anchor = refs.trust.float() @ anchor_weights.float().cpu().T  # [N, A]; no gradient below 0.3
    parts = []
    for name, bones, a in zip(refs.names, refs.trust, anchor, strict=True):
        off = int((bones <= 0.3).sum())
        if off:
            share = 100 * float((a <= 0.3).float().mean())
            parts.append(
                f"{name}: its body fit misplaced {off} of {len(bones)} bones; {share:.0f}% of the avatar is not refined from it"
            )
    return "; ".join(parts)


def refine_created(
    avatar,  # core.model.avatar.Avatar, the feed-forward result
    refs: PhotoReferences,  # every photo with a usable fit (core.capture.references.photo_references(poor=True))
    steps: int,
    *,
    holdout: int | None = None,
    lr: float = 2e-3,
    closeups: bool = True,  # also refine on the photos' head close-ups (refs.heads), when there are any
    progress: Callable[[int, float], None] | None = None,  # after each step: (step, loss)
):  # -> (Avatar, RefineReport)
    """Refine `avatar` for `steps` steps on the fitted photos and their head close-ups (each close-up visited right
    after its photo, as often; only the pixels that show the photo count), prune the floaters over those views
    (core.model.personalise.prune_floaters, skipped without masks), score fitted and held-out photos before and after, whole and inside their head
    close-ups, and return the avatar to keep with the report. Raises ValueError for bad arguments."""
    import time

    from core.model.personalise import personalise, prune_floaters

    if steps < 1:
        raise ValueError(f"--refine must be >= 1 step, got {steps}")
    fit_idx, held_idx = split_holdout(len(refs), holdout)
    fitted, held = refs.select(fit_idx), refs.select(held_idx)
    before_f, before_h = score_photos(avatar, fitted), score_photos(avatar, held)
    face_b = face_scores(avatar, fitted), face_scores(avatar, held)
    views = training_views(fitted, closeups=closeups)
    dev = avatar.state.anchors.device
    t0 = time.perf_counter()
    refined, losses = personalise(
        avatar, views.images, list(views.estimates), steps=steps, lr=lr, log_every=0, progress=progress,
        bone_trust=views.trust, masks=views.masks, valid=views.valid,
    )  # fmt: skip
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    can = refined.state.canonical
    finite = all(bool(torch.isfinite(getattr(can, f.name)).all()) for f in dataclasses.fields(can))
    pruned = 0
    if finite:  # floaters: close-ups let refinement park Gaussians just outside their frame, beside the head
        refined, pruned = prune_floaters(
            refined, list(views.estimates), views.masks, valid=views.valid, bone_trust=views.trust
        )
    after_f, after_h = (
        (score_photos(refined, fitted), score_photos(refined, held))
        if finite
        else ([(math.nan, math.nan)] * len(fit_idx), [(math.nan, math.nan)] * len(held_idx))
    )
    face_a = (face_scores(refined, fitted), face_scores(refined, held)) if finite else ({}, {})
    rows = lambda r, b, a, fb, fa: tuple(  # noqa: E731
        PhotoScore(n, pb, pa, ib, ia, fb.get(i, math.nan), fa.get(i, math.nan))
        for i, (n, (pb, ib), (pa, ia)) in enumerate(zip(r.names, b, a, strict=True))
    )
    report_f = rows(fitted, before_f, after_f, face_b[0], face_a[0])
    report_h = rows(held, before_h, after_h, face_b[1], face_a[1])
    kept, why = _decide(finite, report_f, report_h)
    report = RefineReport(
        steps=steps, seconds=seconds, seconds_per_step=seconds / steps, device=str(dev), fitted=report_f,
        held_out=report_h, trust_note=trust_note(fitted, avatar.model.anchor_weights),
        closeups=len(views) - len(fitted), head_notes=refs.head_notes, kept=kept, why=why, pruned=pruned,
    )  # fmt: skip
    log.debug("refinement loss %.4f -> %.4f", losses[0], losses[-1])
    return (refined if kept else avatar), report


def _decide(finite: bool, fitted: tuple[PhotoScore, ...], held: tuple[PhotoScore, ...]) -> tuple[bool, str]:
    """Keep the refined avatar only when it is finite and scores no worse on the fitted and held-out photos."""
    if not finite:
        return False, "the refinement diverged (non-finite values)"
    for group, rows in (("fitted", fitted), ("held-out", held)):
        if not rows:
            continue
        b = RefineReport._mean(rows, "psnr_before")
        a = RefineReport._mean(rows, "psnr_after")
        if b is not None and (a is None or a < b - DROP_DB):
            return False, f"it scored worse on the {group} photos ({_db(b)} -> {_db(a)} dB)"
    return True, "it scores no worse on the fitted" + (" and held-out" if held else "") + " photos"
