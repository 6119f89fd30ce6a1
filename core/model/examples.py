"""Bundled example inputs: reference crops of held-out identities, from which the studio decodes example avatars.

An example file holds N full-body and face crops (uint8), the identity's estimated shape and, optionally, each
reference's body estimate and crop intrinsics (what a pixel-aligned model samples the crops with); a trained model
turns it into an avatar in one `Avatar.create` call (`decode_example`). Built from the benchmark shards with
`python -m core.eval.bundle_examples --bench data/benchmarks --out assets/examples`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from core.io import FileFormatError, load_tensors, save_tensors
from core.model.avatar import Avatar
from core.model.crops import fit_crop_matrix, fit_crops
from core.model.model import LCAModel
from core.model.pixel_align import ReferenceViews

log = logging.getLogger(__name__)
KIND = "lca-example-inputs"


@dataclass(frozen=True)
class ExampleInputs:
    name: str
    body: Tensor  # [N, 3, S, S] uint8 full-body crops
    face: Tensor  # [N, 3, Sf, Sf] uint8 face crops
    shape: Tensor  # [S_shape] float32 estimated identity shape
    source: str  # where the crops came from
    views: ReferenceViews | None = None  # [N] body estimates; K in pixels of the stored [S, S] body crops

    def create(self, model: LCAModel) -> Avatar:
        """The example's avatar decoded by `model` (crops resized to the model's crop sizes)."""
        enc = model.cfg.encoder
        body = fit_crops(self.body[None].float() / 255.0, tuple(enc.body_crop))[0]
        face = fit_crops(self.face[None].float() / 255.0, tuple(enc.face_crop))[0]
        shape = self.shape if model.shape_dim > 0 and self.shape.numel() == model.shape_dim else None
        views = None
        if self.views is not None and self.views.rotations.shape[-2] == model.num_joints:
            views = self.views.cropped(fit_crop_matrix(tuple(self.body.shape[-2:]), tuple(enc.body_crop)))
        return Avatar.create(model, body_crops=body, face_crops=face, shape=shape, views=views)


VIEW_KEYS = ("rotations", "expression", "gaze", "translation", "K", "T_cam_world")


def save_example(path: str | Path, ex: ExampleInputs) -> Path:
    tensors = {"body": ex.body.to(torch.uint8), "face": ex.face.to(torch.uint8), "shape": ex.shape.float()}
    if ex.views is not None:
        tensors.update({f"views.{k}": getattr(ex.views, k).float() for k in VIEW_KEYS})
    return save_tensors(path, tensors, {"name": ex.name, "source": ex.source}, kind=KIND)


def load_example(path: str | Path) -> ExampleInputs:
    t, meta = load_tensors(path, kind=KIND, max_bytes=64 << 20)
    for k, dims, dtype in (("body", 4, torch.uint8), ("face", 4, torch.uint8), ("shape", 1, torch.float32)):
        if k not in t or t[k].dim() != dims or t[k].dtype != dtype:
            raise FileFormatError(f"{path}: example file lacks a valid {k!r} tensor ({dims}-d {dtype})")
    for k in ("body", "face"):
        n, c, h, w = t[k].shape
        if n < 1 or c != 3 or h < 1 or w < 1:
            raise FileFormatError(f"{path}: {k!r} crops have shape {list(t[k].shape)}; expected [N>=1, 3, H, W]")
    if t["body"].shape[0] != t["face"].shape[0]:
        raise FileFormatError(f"{path}: {t['body'].shape[0]} body crops but {t['face'].shape[0]} face crops")
    name, source = meta.get("name", Path(path).stem), meta.get("source", "")
    if not isinstance(name, str) or not isinstance(source, str):
        raise FileFormatError(f"{path}: example header 'name' and 'source' must be strings")
    views = None
    if any(k.startswith("views.") for k in t):
        try:
            views = ReferenceViews(**{k: t[f"views.{k}"].float() for k in VIEW_KEYS})
        except (KeyError, ValueError) as e:
            raise FileFormatError(f"{path}: the example's reference views are incomplete or inconsistent ({e})") from e
        if views.batch_shape != (t["body"].shape[0],):
            raise FileFormatError(f"{path}: {views.batch_shape} reference views for {t['body'].shape[0]} body crops")
    return ExampleInputs(name, t["body"], t["face"], t["shape"], source, views)


def decode_example(model: LCAModel, path: str | Path) -> tuple[Avatar, ExampleInputs]:
    """The avatar `model` decodes from the example file at `path` (the one way the studio makes example avatars);
    raises FileFormatError (a ValueError) or OSError for an unusable file."""
    ex = load_example(path)
    return ex.create(model), ex
