"""Adapter from `core.model.avatar.Avatar` (the trained model's drivable avatar) to the studio's interface."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from app.avatar_source import ROOT, AvatarLoadError, StudioAvatar
from core.body.frame import Controls, DriveFrame
from core.raster.types import Gaussians
from core.train.export import SHIPPED_MODEL_FILE as DEFAULT_MODEL_FILE
from core.train.export import shipped_model as trained_model

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]  # (fraction done, what is happening)

# A saved default avatar wins; otherwise the shipped trained model decodes the bundled example inputs.
DEFAULT_AVATAR_FILES = (ROOT / "assets" / "default_avatar.safetensors",)
EXAMPLES_DIR = ROOT / "assets" / "examples"


def example_files() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.safetensors")) if EXAMPLES_DIR.is_dir() else []


def example_avatar(path: Path, progress: Progress | None = None) -> StudioAvatar:
    """The trained model's avatar of one bundled example (8 photos of a held-out identity); decoded once, then
    read from the user's cache (core.model.avatar_cache) on later starts. `progress(fraction, text)` hears each
    step (model and anchors, decode, or the cache read)."""
    say = progress or (lambda fraction, text: None)
    from core.model.avatar_cache import cached_avatar
    from core.model.examples import decode_example, load_example

    if not (DEFAULT_MODEL_FILE.is_file() and model_available()):
        raise AvatarLoadError("no trained model is installed (assets/default_model.safetensors)")
    try:
        ex = load_example(path)
    except (OSError, ValueError) as e:
        raise AvatarLoadError(f"{path.name} is not a usable example: {e}") from e
    labels: list[str] = []

    def decode():
        say(0.05, "loading the trained model and placing its anchors on the body")
        trained = trained_model()
        if trained is None:
            raise AvatarLoadError("the trained model assets/default_model.safetensors could not be loaded")
        labels.append(trained[1])
        say(0.3, f"decoding {ex.name} from {len(ex.body)} photos (first start only; kept in the cache)")
        return decode_example(trained[0], path)[0]

    device = "cuda" if torch.cuda.is_available() else "cpu"
    avatar = cached_avatar(
        [DEFAULT_MODEL_FILE, path], decode, tag=f"example {ex.name}", device=device,
        progress=lambda text: say(0.2, text),
    )  # fmt: skip
    label = labels[0] if labels else trained_model_label()
    return ModelAvatar(
        avatar, name=ex.name, description=f"{ex.name}: decoded by the {label} from {len(ex.body)} photos"
    )


def trained_model_label() -> str:
    """How `trained_model` describes the shipped model, read from its header alone (no weights loaded)."""
    from core.train.checkpoint import read_checkpoint_meta

    meta = read_checkpoint_meta(DEFAULT_MODEL_FILE)
    return (
        f"trained {meta['config']['model'].get('name', 'model')} model (step {meta['step']}, {DEFAULT_MODEL_FILE.name})"
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
    """A `core.model` avatar with the studio's name and description; `drive(frame)` is the core avatar's."""

    def __init__(self, avatar, *, name: str, description: str, device: str | None = None, references=None) -> None:
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.avatar = avatar.to(self.device) if self.device != "cpu" else avatar
        self.name, self.description = name, description
        rig = self.avatar.model.rig
        self.controls = Controls(tuple(rig.expression_names), _joint_names(rig.num_joints), tuple(rig.parents))
        self.references = references  # app.personalisation.PhotoReferences when made from photos here, else None

    @property
    def supports_detail(self) -> bool:
        """`drive(frame, detail=k)` decodes k Gaussians per anchor (fast previews while a control is dragged)."""
        return True

    @property
    def supports_looseness(self) -> bool:
        return self.avatar.model.deformer is not None

    def save(self, path: str | Path) -> Path:
        return self.avatar.save(path)

    def canonical(self) -> Gaussians:
        return self.avatar.canonical()

    def face_target(self) -> tuple[float, float, float]:
        return self.avatar.face_target()

    def drive(self, frame: DriveFrame, detail: int | None = None) -> Gaussians:
        """Posed Gaussians; `detail=k` keeps k of each anchor's Gaussians (clamped to what the avatar has)."""
        return self.avatar.drive(frame, detail)


def created_avatar(created) -> ModelAvatar:
    """The studio's avatar of one made from photos (core.capture.photos.CreatedAvatar)."""
    return ModelAvatar(
        created.avatar, name=created.name, description=created.description, references=created.references
    )


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
    description = Avatar.read_description(path) or f"{getattr(cfg, 'name', 'model')} avatar from {path.name}"
    return ModelAvatar(avatar, name=path.stem, description=description)


def default_model_avatar(progress: Progress | None = None) -> StudioAvatar | None:
    """The saved default avatar, else the first bundled example the trained model decodes, else None."""
    for path in DEFAULT_AVATAR_FILES:
        if path.is_file() and model_available():
            if progress is not None:
                progress(0.1, f"reading {path.name}")
            try:
                return load_model_avatar(path)
            except AvatarLoadError as e:
                log.warning("default avatar %s could not be opened: %s", path, e)
    for path in example_files():
        try:
            return example_avatar(path, progress)
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
