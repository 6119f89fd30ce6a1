"""Photos -> avatar: the capture assistant's checks per photo, coverage of views, crops, and creation.

The checks use `core.data.person` (mediapipe's pose landmarker finds the person as a body, whatever the face's
size; selfie segmentation cuts them out), the body fit of `core.model.photo_fit` (its landmark error and silhouette
IoU are reported per photo) and simple image statistics; the crops come from the person's box.
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
    body_crop: np.ndarray | None = None  # [Hb, Wb, 3] float in [0, 1]
    face_crop: np.ndarray | None = None  # [Hf, Wf, 3]
    mask: np.ndarray | None = None  # [H, W] uint8 person mask (255 = person)
    mask_crop: np.ndarray | None = None  # [Hb, Wb] float in [0, 1]: the mask cut like body_crop
    shows: dict[str, bool] = field(default_factory=dict)  # body regions the photo shows (face, legs, ...)
    found_by: str = ""  # how the person was found (pose, pose (crop), face detector)
    fit: object | None = None  # core.model.photo_fit.PhotoFit: the body fitted to this photo and its errors

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


def _crop_matrix(box, size: tuple[int, int]) -> np.ndarray:
    """[3, 3] map from photo pixels to pixels of the crop `_crop` cuts for box [x0, y0, x1, y1] at `size` (h, w)."""
    h, w = size
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_h = max((y1 - y0) / 2, (x1 - x0) / 2 * h / w) * 1.1
    half_w = half_h * w / h
    return np.array(
        [
            [w / (2 * half_w), 0, w / 2 - cx * w / (2 * half_w)],
            [0, h / (2 * half_h), h / 2 - cy * h / (2 * half_h)],
            [0, 0, 1.0],
        ]
    )


def _crop(rgb: np.ndarray, box, size: tuple[int, int]) -> np.ndarray:
    """Box [x0, y0, x1, y1] grown to the aspect of `size` (h, w), padded with black, resized; float [0, 1]."""
    h, w = size
    M = _crop_matrix(box, size)[:2]
    out = cv2.warpAffine(rgb, M, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT)
    return out.astype(np.float32) / 255.0


def photo_views(checks: list[PhotoCheck], rig, body_crop: tuple[int, int]):
    """Reference views [N] of the usable photos' body crops resized to `body_crop` (h, w): a box-fitted standing
    body estimate per photo (core.model.photo_fit) and the intrinsics of its crop."""
    from core.model.crops import BodyEstimate
    from core.model.pixel_align import ReferenceViews

    estimates: list[BodyEstimate] = []
    Ks = []
    for c in checks:
        est = photo_estimate(c, rig)
        h0, w0 = c.body_crop.shape[:2]
        resize = np.diag([body_crop[1] / w0, body_crop[0] / h0, 1.0])
        M = resize @ _crop_matrix(c.person_box, (h0, w0))
        Ks.append(torch.from_numpy(M).float() @ est.camera.K.float())
        estimates.append(est)
    views = ReferenceViews.from_estimates(estimates, torch.stack(Ks))
    if all(c.mask_crop is not None for c in checks):  # colours only from the person
        masks = [cv2.resize(c.mask_crop, (body_crop[1], body_crop[0]), interpolation=cv2.INTER_AREA) for c in checks]
        views = views.with_masks(torch.from_numpy(np.stack(masks)).float())
    return views


def photo_estimate(c: PhotoCheck, rig):
    """The photo's body estimate: the landmark fit when it is trusted, else the standing template in its box."""
    from core.model.photo_fit import box_estimate

    if c.fit is not None and c.fit.method == "landmarks" and not c.fit.poor:
        return c.fit.estimate
    return box_estimate(rig, c.person_box, c.size, c.view)


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
        path=path, size=rgb.shape[:2], sharpness=sharp, brightness=bright, clipped=clipped,
        person_box=None if person is None else tuple(float(v) for v in person),
        face_box=None if face is None else tuple(float(v) for v in face),
    )  # fmt: skip
    if found is None:
        c.problems.append("no person found")
    else:
        c.view = found.view if found.view != "unknown" else "front"
        c.found_by, c.shows, c.mask = found.found_by, dict(found.shows), found.mask
        c.body_crop = _crop(rgb, person, body_crop)
        c.face_crop = _crop(rgb, face if face is not None else _head_of(person), face_crop)
        if found.mask is not None:
            c.mask_crop = _crop(np.repeat(found.mask[..., None], 3, -1), person, body_crop)[..., 0]
        if found.pose is not None or found.mask is not None:
            from core.model.photo_fit import fit_photo

            c.fit = fit_photo(_fit_rig(), c.size, c.person_box, c.view, found.pose, found.pose_world, found.mask)
            if c.fit.poor:
                c.problems.append(c.fit.summary() + "; this photo will not be used to personalise")
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

    def __init__(self) -> None:
        from core.data.person import PersonFinder

        self.detector = PersonFinder()
        self.checks: list[PhotoCheck] = []

    def add(self, path: str | Path, *, body_crop=(256, 192), face_crop=(128, 128)) -> PhotoCheck:
        if len(self.checks) >= MAX_PHOTOS:
            raise PhotoError(f"at most {MAX_PHOTOS} photos; remove one before adding {Path(path).name}")
        c = check_photo(read_photo(path), str(path), self.detector, body_crop=body_crop, face_crop=face_crop)
        self.checks.append(c)
        return c

    def remove(self, index: int) -> None:
        del self.checks[index]

    def create(self, progress: Callable[[float, str], None] | None = None):
        """A studio avatar from the usable photos (the model's canonical head runs once)."""
        usable = [c for c in self.checks if c.usable]
        if not usable:
            raise PhotoError(
                "none of the photos shows a person the detector can find; add a photo where the whole person is seen"
            )
        from app.model_avatar import ModelAvatar
        from core.model.avatar import Avatar

        model, label = creation_model()
        hb, wb = model.cfg.encoder.body_crop
        hf, wf = model.cfg.encoder.face_crop

        def tensor(img: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
            return torch.from_numpy(cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)

        if progress:
            progress(0.3, f"encoding {len(usable)} photos")
        body = torch.stack([tensor(c.body_crop, (hb, wb)) for c in usable])
        face = torch.stack([tensor(c.face_crop, (hf, wf)) for c in usable])
        views = photo_views(usable, model.rig, (hb, wb)) if model.pixel_appearance is not None else None
        avatar = Avatar.create(model, body_crops=body, face_crops=face, views=views)
        if progress:
            progress(1.0, "avatar created")
        name = f"from {len(usable)} photo{'s' if len(usable) > 1 else ''}"
        from app.personalisation import photo_references

        try:
            refs = photo_references(usable, model.rig)
        except ValueError as e:  # no photo with a trusted body fit: the avatar is made, but not personalisable
            log.warning("%s", e)
            refs = None
        return ModelAvatar(avatar, name=name, description=f"created with the {label}", references=refs)


def creation_model():
    """The model that turns photos into avatars: (LCAModel, description).

    The shipped trained model when it is installed; otherwise a randomly initialised `tiny` model, so created
    avatars have the body's shape but not the person's appearance.
    """
    from app.model_avatar import trained_model
    from core.model.config import load_model_config
    from core.model.model import LCAModel
    from core.model.rig import rig_from_body_asset

    trained = trained_model()
    if trained is not None:
        return trained
    torch.manual_seed(0)
    cfg = load_model_config("tiny")
    return LCAModel(cfg, rig_from_body_asset()).eval(), "untrained tiny model (no trained checkpoint installed)"
