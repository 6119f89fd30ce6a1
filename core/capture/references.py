"""The photos an avatar was made from, sized for per-subject refinement (`core.model.personalise`): each photo as
the capture assistant read it, letterboxed to one size with the person cut out, its person mask and its body
estimate moved into those pixels, and the per-bone trust of its body fit (no photo is read or estimated again);
with a rig, also a head close-up of each photo that shows the fitted head large enough (core.model.closeups)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from core.model.crops import BodyEstimate

PHOTO_SIDE = 160  # long side in pixels the photos are refined at (renders on the CPU stay quick)


@dataclass(frozen=True)
class PhotoReferences:
    """The photos an avatar was made from, with a body estimate each (what personalisation fits)."""

    images: torch.Tensor  # [N, 3, H, W] in [0, 1], one size, the person on black
    estimates: tuple[BodyEstimate, ...]  # N, cameras sized W x H
    masks: torch.Tensor | None = None  # [N, H, W] in [0, 1] person masks (None: the photos had none)
    valid: torch.Tensor | None = None  # [N, H, W] bool: pixels that show the photo (not the letterbox padding)
    trust: torch.Tensor | None = None  # [N, J] per-bone trust of each photo's body fit (None: all trusted)
    names: tuple[str, ...] = ()  # N photo file names
    heads: PhotoReferences | None = None  # M head close-ups of some of these photos (core.model.closeups)
    head_of: tuple[int, ...] = ()  # M: the photo (index here) each close-up was cut from
    head_notes: tuple[str, ...] = ()  # why photos have no close-up, one line each

    def __len__(self) -> int:
        return len(self.estimates)

    def select(self, idx: list[int]) -> PhotoReferences:
        """The references of photos `idx` only (e.g. those refined on, or those held out)."""
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        heads, head_of = None, ()
        if self.heads is not None:
            rows = [k for k, i in enumerate(self.head_of) if i in idx]
            if rows:
                heads, head_of = self.heads.select(rows), tuple(idx.index(self.head_of[k]) for k in rows)
        return PhotoReferences(
            self.images[idx], tuple(self.estimates[i] for i in idx), pick(self.masks), pick(self.valid),
            pick(self.trust), tuple(self.names[i] for i in idx) if self.names else (), heads, head_of,
            self.head_notes,
        )  # fmt: skip


def refinable(c, *, poor: bool) -> bool:
    """A usable photo personalisation may take colours from: its fit is trusted, or (`poor`) it is a landmark fit
    with per-bone trust, so that only the bones it placed take colour from it."""
    if not c.usable:
        return False
    if c.fit is None or not c.fit.poor:
        return True
    return poor and c.fit.method == "landmarks" and getattr(c.fit, "bone_trust", None) is not None


def trimmed_checks(checks, rig=None) -> list:
    """`checks` with each landmark-fitted photo's person mask trimmed to its fitted body and clothing allowance
    (core.capture.mask_trim: background the segmenter took in far from the body is cut out); photos whose fit is
    POOR, box-only fits and photos without a mask keep theirs. New PhotoCheck copies; `checks` are left unchanged."""
    from core.capture.mask_trim import trim_frame_mask

    out = []
    for c in checks:
        fit = c.fit
        if c.mask is None or fit is None or fit.method != "landmarks" or fit.poor:
            out.append(c)
            continue
        if rig is None:
            from core.capture.photos import _fit_rig

            rig = _fit_rig()
        t = trim_frame_mask(rig, fit.estimate, c.mask, fit.garment)
        out.append(dataclasses.replace(c, mask=t.mask) if t.trimmed > 0 else c)
    return out


def photo_references(
    checks, *, side: int = PHOTO_SIDE, poor: bool = False, head_rig=None, trim: bool = True
) -> PhotoReferences:
    """From the capture assistant's usable checks whose body fit is trusted: each photo letterboxed to one size (long
    side `side`), the person cut out by its mask onto black (nothing of the background is fitted), and its body
    estimate in the letterboxed pixels. Photos whose fit is poor are refused (their colours would land on the wrong
    body part), unless `poor` and the fit has per-bone trust: then the photo joins, and that trust keeps its
    misplaced regions out of the refinement. Every landmark fit's per-bone trust is carried (`trust`). With
    `head_rig` (the core.model.rig.BodyRig the estimates drive), each photo whose fitted head is in view at a usable
    size also gets a head close-up of the same size (`heads`), cut from the photo at its full resolution. With
    `trim`, each trusted photo's mask is first trimmed to its fitted body (`trimmed_checks`)."""
    usable = [c for c in checks if refinable(c, poor=poor)]
    if not usable:
        raise ValueError(
            "no photo to personalise against: "
            + ("the body fit of every photo is poor (see each photo's fit); " if any(c.usable for c in checks) else "")
            + "add a photo where the whole person is found and the fitted body lies on them"
        )
    if trim:
        usable = trimmed_checks(usable, head_rig)
    H = W = side
    images, masks, valid, estimates, trust = [], [], [], [], []
    for c in usable:
        rgb = c.image
        s = side / max(rgb.shape[:2])
        h, w = max(1, round(rgb.shape[0] * s)), max(1, round(rgb.shape[1] * s))
        oy, ox = (H - h) // 2, (W - w) // 2
        mask = np.full(rgb.shape[:2], 255, np.uint8) if c.mask is None else c.mask
        rgb = rgb * (mask[..., None] > 127)
        canvas = np.zeros((H, W, 3), np.uint8)
        canvas[oy : oy + h, ox : ox + w] = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        m = np.zeros((H, W), np.float32)
        m[oy : oy + h, ox : ox + w] = cv2.resize(mask.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_AREA)
        v = np.zeros((H, W), bool)
        v[oy : oy + h, ox : ox + w] = True
        images.append(torch.from_numpy(canvas).permute(2, 0, 1).float() / 255.0)
        masks.append(torch.from_numpy(m))
        valid.append(torch.from_numpy(v))
        est = c.estimate
        M = torch.tensor([[s, 0.0, ox], [0.0, s, oy], [0.0, 0.0, 1.0]])  # photo pixels -> letterboxed pixels
        cam = type(est.camera)(M @ est.camera.K.float(), est.camera.T_cam_world, W, H)
        estimates.append(type(est)(est.params, cam))
        trust.append(getattr(c.fit, "bone_trust", None) if c.fit is not None and c.fit.method == "landmarks" else None)
    rows = None
    if any(t is not None for t in trust):
        J = next(len(t) for t in trust if t is not None)
        rows = torch.from_numpy(np.stack([np.ones(J, np.float32) if t is None else t for t in trust])).float()
    refs = PhotoReferences(
        torch.stack(images), tuple(estimates), torch.stack(masks), torch.stack(valid), rows,
        tuple(Path(c.path).name for c in usable),
    )  # fmt: skip
    return refs if head_rig is None else with_head_closeups(refs, usable, head_rig, side=side)


def with_head_closeups(refs: PhotoReferences, checks, rig, *, side: int) -> PhotoReferences:
    """`refs` (photo_references of `checks`, one per photo) with a head close-up of every photo whose fitted head is in
    view at a usable size (core.model.closeups.head_closeup), and a note for each photo that has none."""
    from core.model.closeups import head_closeup

    images, masks, valid, estimates, trust, names, head_of, notes = [], [], [], [], [], [], [], []
    for i, c in enumerate(checks):
        t = 1.0 if refs.trust is None else float(refs.trust[i, rig.head_joint])
        got = head_closeup(c.image, c.mask, c.estimate, rig, side, t)
        name = refs.names[i] if refs.names else Path(c.path).name
        if isinstance(got, str):
            notes.append(f"{name}: no head close-up: {got}")
            continue
        images.append(got[0])
        masks.append(got[1])
        valid.append(got[2])
        estimates.append(got[3])
        trust.append(None if refs.trust is None else refs.trust[i])
        names.append(f"{name} (head)")
        head_of.append(i)
    heads = None
    if head_of:
        heads = PhotoReferences(
            torch.stack(images), tuple(estimates), torch.stack(masks), torch.stack(valid),
            None if refs.trust is None else torch.stack(trust), tuple(names),
        )  # fmt: skip
    return dataclasses.replace(refs, heads=heads, head_of=tuple(head_of), head_notes=tuple(notes))
