"""Photos -> avatar: the capture assistant's checks per photo (person, face, fit, exposure), coverage of views,
and creation through `Avatar.create` (the one crop convention of `core.model.crops`). Each photo is read once and
its body estimated once, when it is added; creation and personalisation reuse both. No GUI code: the studio's
Create panel and `python main.py create` both use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

log = logging.getLogger(__name__)

MAX_PHOTOS = 16
FACE_MIN_PX = 40  # face boxes shorter than this carry little facial detail for the face crop
BLUR_MIN = 60.0  # variance of the Laplacian of the grey image below which a photo counts as blurred
VIEWS = ("front", "side", "back", "unknown")

# What the model has to invent when a view is missing.
GUESSED_WITHOUT = {
    "front": "the face and the front of the clothing",
    "side": "the profile (nose, ears, body depth)",
    "back": "the back of the head, hair and clothing",
}


class PhotoError(ValueError):
    """A photo could not be used; the message says why."""


@dataclass
class PhotoCheck:
    path: str
    size: tuple[int, int]  # (height, width)
    person_box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 pixels
    face_box: tuple[float, float, float, float] | None
    sharpness: float  # variance of the Laplacian
    brightness: float  # mean grey level in [0, 1]
    clipped: float  # share of pixels at black or white
    view: str = "unknown"
    problems: list[str] = field(default_factory=list)
    body_crop: np.ndarray | None = None  # [Hb, Wb, 3] float in [0, 1], cut as the model's crops are (a preview)
    face_crop: np.ndarray | None = None  # [Hf, Wf, 3]
    mask: np.ndarray | None = None  # [H, W] uint8 person mask (255 = person)
    image: np.ndarray | None = None  # [H, W, 3] uint8 RGB: the photo as read (read once, when added)
    estimate: object | None = None  # core.model.crops.BodyEstimate: the body on this photo (estimated once)
    shows: dict[str, bool] = field(default_factory=dict)  # body regions the photo shows (face, legs, ...)
    found_by: str = ""  # how the person was found (pose, pose (crop), face detector)
    fit: object | None = None  # core.capture.photo_fit.PhotoFit: the body fitted to this photo and its errors

    @property
    def lacks(self) -> list[str]:
        """Regions the photo does not show (empty when unknown)."""
        return [k for k in ("face", "legs") if self.shows and not self.shows.get(k, False)]

    @property
    def trusted(self) -> bool:
        """The body fit places the body's parts on this photo's (personalisation may take colours from it)."""
        return self.usable and self.fit is not None and not self.fit.poor

    @property
    def usable(self) -> bool:
        return self.person_box is not None

    @property
    def face_visible(self) -> bool:
        return self.face_box is not None

    def face_status(self) -> str:
        """`face visible (62 px)` or `face not visible`, for the photo's row."""
        if self.face_box is None:
            return "face not visible"
        return f"face visible ({self.face_box[3] - self.face_box[1]:.0f} px)"


def read_photo(path: str | Path) -> np.ndarray:
    """[H, W, 3] uint8 RGB with EXIF rotation applied; raises PhotoError for unreadable or oversized files."""
    from core.io import read_image_rgb

    try:
        return read_image_rgb(path)
    except (OSError, ValueError) as e:
        raise PhotoError(f"{Path(path).name} could not be read as a photo: {e}") from e


def photo_inputs(checks: list[PhotoCheck]) -> tuple[list[torch.Tensor], list, list[torch.Tensor] | None]:
    """What `Avatar.create` takes from usable checks: images N x [3, H, W] in [0, 1], their body estimates, and
    person masks N x [H, W] in [0, 1] (None unless every photo has one)."""
    images = [torch.from_numpy(np.array(c.image)).permute(2, 0, 1).float() / 255.0 for c in checks]
    estimates = [c.estimate for c in checks]
    masks = None
    if all(c.mask is not None for c in checks):
        masks = [torch.from_numpy(np.array(c.mask)).float() / 255.0 for c in checks]
    return images, estimates, masks


def photo_estimate(c: PhotoCheck, rig, shape: torch.Tensor | None = None):  # -> BodyEstimate
    """The photo's body estimate: the landmark fit when there is one (even a poor one places the head and limbs
    nearer their place than a standing template in the box, which put a kicking man's face on the chest), else the
    standing template (or `shape` [S], the person's shared shape) in its box. Regions a poor fit misplaced are
    refused by `photo_trust`."""
    from core.capture.photo_fit import box_estimate

    if c.fit is not None and c.fit.method == "landmarks":
        return c.fit.estimate
    return box_estimate(rig, c.person_box, c.size, c.view, shape)


def photo_trust(checks: list[PhotoCheck], num_bones: int) -> torch.Tensor | None:
    """Per-bone trust [N, J] of the photos' landmark fits (1 for photos without one); None when no photo has one.
    Anchors take no colour from a photo where the fit put their bones elsewhere (core.capture.photo_fit.bone_trust)."""
    rows = [getattr(c.fit, "bone_trust", None) if c.fit is not None and c.fit.method == "landmarks" else None
            for c in checks]  # fmt: skip
    if all(t is None for t in rows):
        return None
    ones = np.ones(num_bones, np.float32)
    return torch.from_numpy(np.stack([ones if t is None or len(t) != num_bones else t for t in rows])).float()


_RIG = None


def _fit_rig():
    """The body the photo fits are reported on (the shipped body asset), built once."""
    global _RIG
    if _RIG is None:
        from core.model.rig import rig_from_body_asset

        _RIG = rig_from_body_asset()
    return _RIG


def check_photo(
    rgb: np.ndarray,  # [H, W, 3] uint8
    path: str,
    detector,
    *,
    body_crop: tuple[int, int] = (256, 192),
    face_crop: tuple[int, int] = (128, 128),
) -> PhotoCheck:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    sharp = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    bright = float(grey.mean() / 255.0)
    clipped = float(((grey <= 3) | (grey >= 252)).mean())
    found = detector(rgb)
    person = None if found is None else found.box
    face = None if found is None else found.face_box
    c = PhotoCheck(
        path=path, size=rgb.shape[:2], sharpness=sharp, brightness=bright, clipped=clipped, image=rgb,
        person_box=None if person is None else tuple(float(v) for v in person),
        face_box=None if face is None else tuple(float(v) for v in face),
    )  # fmt: skip
    if found is None:
        c.problems.append("no person found")
    else:
        c.view = found.view if found.view != "unknown" else "front"
        c.found_by, c.shows, c.mask = found.found_by, dict(found.shows), found.mask
        if found.pose is not None or found.mask is not None:
            from core.capture.photo_fit import fit_photo

            _set_fit(c, fit_photo(_fit_rig(), c.size, c.person_box, c.view, found.pose, found.pose_world, found.mask))
        c.estimate = photo_estimate(c, _fit_rig())
        c.body_crop, c.face_crop = _preview_crops(rgb, c.estimate, body_crop, face_crop)
        for part, what in (("legs", "the legs are not in the photo"), ("face", "the face is not seen")):
            if part in c.lacks:
                c.problems.append(f"{what}: the model will guess them")
    if face is not None and face[3] - face[1] < FACE_MIN_PX:
        c.problems.append(
            f"the face is small ({face[3] - face[1]:.0f} px < {FACE_MIN_PX}): facial detail will be guessed"
        )
    if sharp < BLUR_MIN:
        c.problems.append(f"blurred (sharpness {sharp:.0f} < {BLUR_MIN:.0f})")
    if bright < 0.2:
        c.problems.append(f"under-exposed (mean level {bright:.2f})")
    elif bright > 0.85:
        c.problems.append(f"over-exposed (mean level {bright:.2f})")
    if clipped > 0.25:
        c.problems.append(f"{100 * clipped:.0f}% of the pixels are clipped to black or white")
    return c


def _set_fit(c: PhotoCheck, fit) -> None:
    """The photo's body fit, and the problem line a poor one adds (first), in place of an earlier fit's."""
    c.problems = [p for p in c.problems if not p.startswith("fit: ")]
    c.fit = fit
    if fit.poor:
        c.problems.insert(0, fit.summary() + "; this photo will not be used to personalise")


def _preview_crops(rgb: np.ndarray, estimate, body_crop: tuple[int, int], face_crop: tuple[int, int]):
    """The body and face crops the model will see ([H, W, 3] float in [0, 1]), for the photo's row."""
    from core.model.config import EncoderConfig
    from core.model.crops import crop_image

    image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255.0
    try:
        body, face = crop_image(image, estimate, _fit_rig(), EncoderConfig(body_crop=body_crop, face_crop=face_crop))
    except ValueError as e:  # a body estimate behind the camera: no preview, the problem shows at creation
        log.warning("no crop preview: %s", e)
        return None, None
    return body.permute(1, 2, 0).numpy(), face.permute(1, 2, 0).numpy()


def _head_of(box) -> tuple[float, float, float, float]:
    """A head-sized box at the top of a person box (when no face is seen, e.g. from behind)."""
    x0, y0, x1, y1 = box
    s = (y1 - y0) / 7.5
    cx = (x0 + x1) / 2
    return (cx - s / 2, y0, cx + s / 2, y0 + s)


def coverage(checks: list[PhotoCheck]) -> tuple[dict[str, int], list[str]]:
    """Photos per view, and the regions the model will have to guess."""
    views = {v: 0 for v in VIEWS}
    for c in checks:
        if c.usable:
            views[c.view] += 1
    guessed = [GUESSED_WITHOUT[v] for v in ("front", "side", "back") if views[v] == 0]
    if not any(c.face_box is not None for c in checks):
        guessed.append("all facial detail (no photo shows the face)")
    if checks and not any(c.shows.get("legs", False) for c in checks if c.usable and c.shows):
        guessed.append("the legs and feet (no photo shows them)")
    return views, guessed


class CaptureAssistant:
    """Collects photos, checks each one, and makes an avatar from the usable ones."""

    def __init__(self, detector=None) -> None:  # detector: core.data.person.PersonFinder (the default) or alike
        from core.data.person import PersonFinder

        self.detector = detector or PersonFinder()
        self.checks: list[PhotoCheck] = []
        self.shape: torch.Tensor | None = None  # [S] the body shape shared by the photos (`fit_shape`); None: none
        self.shape_config = None  # core.capture.shape_fit.ShapeFitConfig of the fit `create` runs (None: defaults)

    def add(self, path: str | Path, *, body_crop=(256, 192), face_crop=(128, 128)) -> PhotoCheck:
        if len(self.checks) >= MAX_PHOTOS:
            raise PhotoError(f"at most {MAX_PHOTOS} photos; remove one before adding {Path(path).name}")
        c = check_photo(read_photo(path), str(path), self.detector, body_crop=body_crop, face_crop=face_crop)
        self.checks.append(c)
        return c

    def set_view(self, index: int, view: str) -> None:
        """The person's view in photo `index` as the user says it is; its box estimate follows the view."""
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
        c = self.checks[index]
        c.view = view
        if c.usable:
            c.estimate = photo_estimate(c, _fit_rig(), self.shape)

    def remove(self, index: int) -> None:
        del self.checks[index]

    def fit_shape(self, cfg=None):  # cfg: core.capture.shape_fit.ShapeFitConfig -> ShapeFit | None
        """One body shape for all usable photos (core.capture.shape_fit), fitted with each landmark-fitted photo's
        pose and camera from that photo's own fit; every photo's fit and estimate then carry it (box-only photos
        stand in it). Run again after photos change: it always starts from the photos' own fits. None (and the
        photos keep their own fits) when no photo has a landmark fit or the fit fails."""
        from core.capture.photo_fit import refit_photo
        from core.capture.shape_fit import PhotoTarget, fit_shared_shape

        rig = _fit_rig()
        usable = [c for c in self.checks if c.usable]
        fitted = [
            c for c in usable if c.fit is not None and c.fit.method == "landmarks" and c.fit.landmarks is not None
        ]
        for c in fitted:  # back to the photo's own fit (a refit of an earlier set of photos is stale)
            _set_fit(c, c.fit.before or c.fit)
        self.shape = None
        if not fitted:
            return None
        targets = [PhotoTarget(c.fit.estimate, c.fit.landmarks, c.mask, c.fit.person_px) for c in fitted]
        try:
            result = fit_shared_shape(rig, targets, cfg or self.shape_config)
        except FloatingPointError as e:
            log.warning("%s: the photos keep the template's body shape", e)
            return None
        self.shape = result.shape
        for c, est in zip(fitted, result.estimates, strict=True):
            _set_fit(c, refit_photo(rig, c.fit, est, c.mask, result.garment))
        for c in usable:
            c.estimate = photo_estimate(c, rig, self.shape)
        return result

    def create(self, progress: Callable[[float, str], None] | None = None) -> CreatedAvatar:
        """An avatar from the usable photos: `Avatar.create` on the photos and their estimates (the model's
        canonical head runs once), with the references personalisation fits."""
        usable = [c for c in self.checks if c.usable]
        if not usable:
            raise PhotoError(
                "none of the photos shows a person the detector can find; add a photo where the whole person is seen"
            )
        from core.capture.references import photo_references
        from core.model.avatar import Avatar

        if progress:
            progress(0.05, f"fitting one body shape to {len(usable)} photo{'s' if len(usable) > 1 else ''}")
        self.fit_shape()
        model, label = creation_model()
        if progress:
            progress(0.3, f"encoding {len(usable)} photos")
        images, estimates, masks = photo_inputs(usable)
        views = None
        if model.pixel_appearance is not None:  # colours only from the person, and only where the fit lies on it
            from core.model.crops import crop_masks, crop_views

            enc = model.cfg.encoder
            views = crop_views(estimates, model.rig, enc)
            if masks is not None:
                views = views.with_masks(crop_masks(masks, estimates, model.rig, enc))
            trust = photo_trust(usable, len(model.rig.parents))
            if trust is not None:
                views = views.with_trust(trust)
        avatar = Avatar.create(model, images, estimates, masks=masks, views=views)
        if progress:
            progress(1.0, "avatar created")
        name = f"from {len(usable)} photo{'s' if len(usable) > 1 else ''}"
        try:
            refs = photo_references(usable, poor=True)  # poor fits only on the bones they placed
        except ValueError as e:  # no photo with a trusted body fit: the avatar is made, but not personalisable
            log.warning("%s", e)
            refs = None
        return CreatedAvatar(avatar, name, f"created with the {label}", refs)


@dataclass(frozen=True)
class CreatedAvatar:
    """An avatar made from photos, with what the studio shows of it and the photos personalisation refines on."""

    avatar: object  # core.model.avatar.Avatar
    name: str
    description: str
    references: object | None  # core.capture.references.PhotoReferences, or None when no fit is trusted


def creation_model():
    """The model that turns photos into avatars: (LCAModel, description).

    The shipped trained model when it is installed; otherwise a randomly initialised `tiny` model, so created
    avatars have the body's shape but not the person's appearance.
    """
    from core.model.config import load_model_config
    from core.model.model import LCAModel
    from core.model.rig import rig_from_body_asset
    from core.train.export import shipped_model

    trained = shipped_model()
    if trained is not None:
        return trained
    torch.manual_seed(0)
    cfg = load_model_config("tiny")
    return LCAModel(cfg, rig_from_body_asset()).eval(), "untrained tiny model (no trained checkpoint installed)"
