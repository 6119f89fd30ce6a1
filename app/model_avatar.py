"""Adapter from `core.model.avatar.Avatar` (the trained model's drivable avatar) to the studio's interface."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import torch

from app.avatar_source import ROOT, AvatarLoadError, Rig, StudioAvatar
from app.lighting import model_lighting
from app.part_edits import apply_part_edits
from app.state import EditState
from core.data.lighting import Lighting
from core.raster.types import PART_NAMES, Gaussians
from core.tracking.body_params import body_arrays

log = logging.getLogger(__name__)

# A saved default avatar wins; otherwise the shipped trained model decodes the bundled example inputs.
DEFAULT_AVATAR_FILES = (ROOT / "assets" / "default_avatar.safetensors",)
DEFAULT_MODEL_FILE = ROOT / "assets" / "default_model.safetensors"
EXAMPLES_DIR = ROOT / "assets" / "examples"
_MODEL_CACHE: dict[str, tuple] = {}


def trained_model():
    """The shipped trained model and a description, or None when it is missing or unreadable (cached)."""
    if "model" not in _MODEL_CACHE:
        result = None
        if DEFAULT_MODEL_FILE.is_file() and model_available():
            from core.io import FileFormatError
            from core.train.export import model_from_checkpoint

            device = "cuda" if torch.cuda.is_available() else "cpu"
            try:
                model, meta = model_from_checkpoint(DEFAULT_MODEL_FILE, device)
                result = (model, f"trained {model.cfg.name} model (step {meta['step']}, {DEFAULT_MODEL_FILE.name})")
            except (FileFormatError, OSError, ValueError, KeyError) as e:
                log.warning("the trained model %s could not be loaded: %s", DEFAULT_MODEL_FILE, e)
        _MODEL_CACHE["model"] = result
    return _MODEL_CACHE["model"]


def example_files() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.safetensors")) if EXAMPLES_DIR.is_dir() else []


def example_avatar(path: Path) -> StudioAvatar:
    """The trained model's avatar of one bundled example (8 photos of a held-out identity)."""
    from core.model.examples import load_example

    trained = trained_model()
    if trained is None:
        raise AvatarLoadError("no trained model is installed (assets/default_model.safetensors)")
    model, label = trained
    try:
        ex = load_example(path)
    except (OSError, ValueError) as e:
        raise AvatarLoadError(f"{path.name} is not a usable example: {e}") from e
    avatar = ex.create(model)
    return ModelAvatar(
        avatar, name=ex.name, description=f"{ex.name}: decoded by the {label} from {len(ex.body)} photos"
    )


def model_available() -> bool:
    return importlib.util.find_spec("core.model.avatar") is not None


def _joint_names(num_joints: int) -> tuple[str, ...]:
    """Bone names of the baked body when the avatar uses it, else generic names."""
    try:
        from core.body.asset import load_body_asset

        names = load_body_asset().bone_names
        if len(names) == num_joints:
            return tuple(names)
    except (FileNotFoundError, ValueError, ImportError) as e:
        log.debug("no bone names from the body asset (%s)", e)
    return tuple(f"joint{j}" for j in range(num_joints))


class ModelAvatar:
    """A `core.model` avatar: pose, expression, gaze and lighting go through its pose head each frame."""

    def __init__(self, avatar, *, name: str, description: str, device: str | None = None, references=None) -> None:
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.avatar = avatar.to(self.device) if self.device != "cpu" else avatar
        self.name, self.description = name, description
        rig = self.avatar.model.rig
        self.rig = Rig(tuple(rig.expression_names), _joint_names(rig.num_joints), tuple(rig.parents))
        self._joint = {n: i for i, n in enumerate(self.rig.joint_names)}
        self._expr = {n: i for i, n in enumerate(self.rig.expression_names)}
        self._looseness: dict[str, float] = {}
        self.references = references  # app.personalisation.PhotoReferences when made from photos here, else None

    @property
    def supports_detail(self) -> bool:
        """`drive(..., detail=k)` decodes k Gaussians per anchor (fast previews while a control is dragged)."""
        return True

    @property
    def supports_looseness(self) -> bool:
        return self.avatar.model.deformer is not None

    def save(self, path: str | Path) -> Path:
        return self.avatar.save(path)

    def canonical(self) -> Gaussians:
        return self.avatar.canonical()

    def face_target(self) -> tuple[float, float, float]:
        m, rest = self.avatar.model, self.avatar.state.rest_poses
        if m.eye_joints.numel():  # between the eyes, a little lower: robust to stray face labels of a young model
            # the rest bones are in the canonical frame; driving puts the root at model.root_position
            c = (rest[m.eye_joints, :3, 3].mean(0) + m.root_position - rest[0, :3, 3]).float().cpu()
            return (float(c[0]), float(c[1]) - 0.04, float(c[2]))
        g = self.canonical()
        face = g.means[g.parts == PART_NAMES.index("face")] if g.parts is not None else g.means[:0]
        c = face.mean(0) if face.shape[0] else g.means[g.means[:, 1] > g.means[:, 1].quantile(0.95)].mean(0)
        return (float(c[0]), float(c[1]), float(c[2]))

    def _sync_looseness(self, edit: EditState) -> None:
        if self.avatar.model.deformer is None:
            return
        for part, e in zip(PART_NAMES, edit.parts, strict=True):
            if self._looseness.get(part, 1.0) != e.looseness:
                self.avatar.loosen(part, e.looseness)
                self._looseness[part] = e.looseness

    def drive(self, edit: EditState, lighting: Lighting, detail: int | None = None) -> Gaussians:
        """Posed Gaussians; `detail=k` keeps k of each anchor's Gaussians (clamped to what the avatar has)."""
        dev = self.device
        if detail is not None:
            detail = max(1, min(int(detail), self.avatar.gaussians_per_anchor))
        b = body_arrays(
            edit.pose.rotations, edit.expression, edit.gaze_deg, edit.pose.root_translation,
            self.rig.joint_names, self.rig.expression_names, dtype=np.float32,
        )  # fmt: skip
        pose, expr, gaze = torch.from_numpy(b.pose), torch.from_numpy(b.expression), torch.from_numpy(b.gaze)
        light = None if edit.view_mode == "albedo" else model_lighting(lighting)
        self._sync_looseness(edit)
        g = self.avatar.drive(
            pose=pose.to(dev), expression=expr.to(dev), gaze=gaze.to(dev), lighting=light,
            translation=torch.from_numpy(b.translation).to(dev), detail=detail,
            shading_only=edit.view_mode == "shading",
        )  # fmt: skip
        return apply_part_edits(g, edit.parts)


def load_model_avatar(path: Path) -> StudioAvatar:
    if not model_available():
        raise AvatarLoadError(f"cannot open {path.name}: this build has no avatar model (core.model.avatar)")
    from core.io import FileFormatError
    from core.model.avatar import Avatar

    try:
        avatar = Avatar.load(path)
    except (FileFormatError, ValueError, KeyError, OSError) as e:
        raise AvatarLoadError(f"{path.name} is not a usable avatar file: {e}") from e
    cfg = avatar.model.cfg
    return ModelAvatar(avatar, name=path.stem, description=f"{getattr(cfg, 'name', 'model')} avatar from {path.name}")


def default_model_avatar() -> StudioAvatar | None:
    for path in DEFAULT_AVATAR_FILES:
        if path.is_file() and model_available():
            try:
                return load_model_avatar(path)
            except AvatarLoadError as e:
                log.warning("default avatar %s could not be opened: %s", path, e)
    for path in example_files():
        try:
            return example_avatar(path)
        except AvatarLoadError as e:
            log.warning("example %s could not be decoded: %s", path, e)
    return None


def untrained_model_avatar(config: str = "tiny", seed: int = 0) -> ModelAvatar:
    """A randomly initialised model's avatar made from blank crops (for speed checks before training)."""
    from core.model.avatar import Avatar
    from core.model.config import load_model_config
    from core.model.model import LCAModel
    from core.model.rig import rig_from_body_asset

    torch.manual_seed(seed)
    cfg = load_model_config(config)
    model = LCAModel(cfg, rig_from_body_asset()).eval()
    hb, wb = cfg.encoder.body_crop
    hf, wf = cfg.encoder.face_crop
    body, face = torch.full((1, 3, hb, wb), 0.5), torch.full((1, 3, hf, wf), 0.5)
    avatar = Avatar.create(model, body_crops=body, face_crops=face)
    return ModelAvatar(avatar, name=f"untrained {config} model", description=f"randomly initialised {config} model")
