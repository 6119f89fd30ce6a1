"""`Avatar`: one identity's cached canonical Gaussians plus the per-frame modules; create, drive, save, load.

Part edits (hide, recolour, swap) are a frame's (`DriveFrame.parts`), applied by `core.raster.parts` after the
drive as for every avatar kind; the avatar itself only scales its garment deformer per part (`loosen`)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
from torch import Tensor

from core.body.frame import DriveFrame
from core.config import to_dict
from core.io import (
    FileFormatError,
    header_meta,
    inconsistent_as_format_error,
    load_tensors,
    read_safetensors_header,
    save_tensors,
)
from core.model.appearance import Lighting
from core.model.config import stored_model_config
from core.model.crops import BodyEstimate, crop_inputs, crop_masks, crop_views
from core.model.drive import DetailLevel, detail_level, drive_gaussians, identity_chain
from core.model.drive_graph import GraphedDrive, graphs_enabled
from core.model.model import IdentityState, LCAModel, check_crops
from core.model.pixel_align import ReferenceViews
from core.model.rig import BodyRig
from core.model.tokens import Anchors
from core.raster.parts import apply_part_edits, face_centre
from core.raster.types import PART_NAMES, Gaussians, rgb_to_sh0

AVATAR_KIND = "lca_avatar"
AVATAR_VERSION = 2  # 2: core.body kinematics (rest bone frames and support vertices in the state)


def part_index(part: str) -> int:
    if part not in PART_NAMES:
        raise ValueError(f"unknown part {part!r}; parts are {list(PART_NAMES)}")
    return PART_NAMES.index(part)


class Avatar:
    """A drivable avatar. `drive` runs one pose-head pass + skinning on the avatar's device, without gradients."""

    def __init__(
        self,
        model: LCAModel,
        state: IdentityState,
        *,
        strength: Tensor | None = None,  # [P] deformer strength per part
    ) -> None:
        self.model = model.eval()
        self.state = state
        dev = state.anchors.device
        self.part_strength = strength.to(dev) if strength is not None else torch.ones(len(PART_NAMES), device=dev)
        self._frame_looseness: dict[int, float] = {}  # the looseness of each part that the last frame asked for
        self._refresh()

    # -- creation -------------------------------------------------------------------------------------------
    @classmethod
    @torch.no_grad()
    def create(
        cls,
        model: LCAModel,
        images: Tensor | list[Tensor] | None = None,  # [N, 3, H, W] in [0, 1] (or a list of [3, H, W])
        body_estimates: list[BodyEstimate] | None = None,  # one per image
        *,
        body_crops: Tensor | None = None,  # [N, 3, Hb, Wb] ready-made crops instead of images
        face_crops: Tensor | None = None,  # [N, 3, Hf, Wf]
        shape: Tensor | None = None,  # [S] identity shape (rig.default_shape convention); default: the estimates' mean
        views: ReferenceViews | None = None,  # [N] body estimate and body-crop camera of each ready-made crop
        garment_extent: bool = True,  # relabel skin-coloured garment regions as skin (core.model.part_labels)
        masks: list[Tensor] | None = None,  # N x [H, W] person masks in [0, 1] of the images (colours only from them)
    ) -> Avatar:
        """Encode the reference photos once: encoder + transformer + canonical head; caches the per-frame inputs.

        A pixel-aligned model (`tokens.pixel_aligned`) also samples the crops where each anchor projects: from
        images it derives the views from `body_estimates`; ready-made crops need `views` (intrinsics in the
        pixels of crops of the model's size), or that path sees nothing.
        """
        if model.drive_only:
            raise RuntimeError("this model was loaded from an avatar file and has no encoder; load a model checkpoint")
        dev = model.anchor_pos.device
        if body_crops is None or face_crops is None:
            if images is None or body_estimates is None:
                raise ValueError("give images with body_estimates, or body_crops with face_crops")
            if isinstance(images, Tensor) and (images.dim() != 4 or images.shape[1] != 3):
                raise ValueError(f"images: expected [N, 3, H, W] in [0, 1], got {tuple(images.shape)}")
            body_crops, face_crops = crop_inputs(images, body_estimates, model.rig, model.cfg.encoder)
            if views is None and model.pixel_appearance is not None:
                views = crop_views(body_estimates, model.rig, model.cfg.encoder)
                if masks is not None:
                    views = views.with_masks(crop_masks(masks, body_estimates, model.rig, model.cfg.encoder))
            if shape is None and model.shape_dim > 0:
                shape = torch.stack([e.shape.to(torch.float32) for e in body_estimates]).mean(0)  # order-free
        for name, t in (("body_crops", body_crops), ("face_crops", face_crops)):
            if not isinstance(t, Tensor) or t.dim() != 4:
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"{name}: expected [N, 3, H, W], got {got}")
        check_crops(body_crops[None], face_crops[None], model.cfg)
        if views is not None and views.batch_shape != (body_crops.shape[0],):
            raise ValueError(f"views: expected one per crop [N={body_crops.shape[0]}], got {views.batch_shape}")
        shape_b = None if shape is None else shape.to(dev, torch.float32)[None]
        views_b = None if views is None else views.map(lambda t: t[None].to(dev))
        was_training = model.training
        model.eval()
        state = model(body_crops[None].to(dev), face_crops[None].to(dev), shape_b, views_b).select(0)
        model.train(was_training)
        if garment_extent:
            from core.model.part_labels import with_garment_extent

            state = with_garment_extent(state)
        return cls(model, state)

    # -- per frame ------------------------------------------------------------------------------------------
    def drive(self, frame: DriveFrame, detail: int | None = None) -> Gaussians:
        """Posed Gaussians of one frame: its lighting and view mode, its looseness per part, then its part edits
        (hide, recolour: `core.raster.parts.apply_part_edits`).

        `detail=k` keeps k of each anchor's Gaussians (clamped to what the avatar has; see `decode`).
        """
        if detail is not None:
            detail = max(1, min(int(detail), self.gaussians_per_anchor))
        if self.model.deformer is not None:
            for i, e in enumerate(frame.parts):  # a frame's looseness 1 leaves a loaded avatar's own strength
                if self._frame_looseness.get(i, 1.0) != e.looseness:
                    self.loosen(PART_NAMES[i], e.looseness)
                    self._frame_looseness[i] = e.looseness
        dev = self.state.anchors.device
        g = self.decode(
            pose=frame.pose.to(dev), expression=frame.expression.to(dev), gaze=frame.gaze.to(dev),
            lighting=Lighting.from_environment(frame.lighting) if frame.lit else None,
            translation=frame.translation.to(dev), detail=detail, shading_only=frame.shading_only,
        )  # fmt: skip
        return apply_part_edits(g, frame.parts)

    def face_target(self) -> tuple[float, float, float]:
        """A world point at the middle of the face (between the eyes, a little lower, when the rig has eyes)."""
        m, rest = self.model, self.state.rest_poses
        if m.eye_joints.numel():  # robust to stray face labels of a young model
            # the rest bones are in the canonical frame; driving puts the root at model.root_position
            c = (rest[m.eye_joints, :3, 3].mean(0) + m.root_position - rest[0, :3, 3]).float().cpu()
            return (float(c[0]), float(c[1]) - 0.04, float(c[2]))
        return face_centre(self.canonical())

    @torch.no_grad()
    def decode(
        self,
        pose: Tensor | None = None,  # [J, 3] axis-angle or [J, 3, 3]; None: rest pose
        expression: Tensor | None = None,  # [E]; None: neutral
        gaze: Tensor | None = None,  # [2] yaw, pitch; None: ahead
        lighting: Lighting | None = None,  # None: neutral (colour = albedo)
        translation: Tensor | None = None,  # [3]
        detail: int | None = None,  # k: decode only k of the K Gaussians per anchor (fast previews); None: all
        shading_only: bool = False,  # light a uniform grey instead of the albedo (the "shading" view)
    ) -> Gaussians:
        """Posed, lit Gaussians [G, ...] in the world frame (every part; `drive` applies a frame's part edits).

        `detail=k` (1 <= k <= K) decodes a fixed subset of A * k widened Gaussians (see `detail_level`); the
        subset is built once per k and edit. `detail=None` or k = K gives the full avatar.
        """
        m, dev, dt = self.model, self.state.anchors.device, self.state.anchors.dtype
        J, E = m.num_joints, m.num_expressions
        pose = self._zero_pose if pose is None else pose
        expression = self._zero_expr if expression is None else expression
        gaze = self._zero_gaze if gaze is None else gaze
        lighting = self._neutral if lighting is None else lighting.to(dev, dt)
        if pose.shape not in ((J, 3), (J, 3, 3)):
            raise ValueError(f"pose: expected [{J}, 3] axis-angle or [{J}, 3, 3], got {tuple(pose.shape)}")
        if expression.shape != (E,):
            raise ValueError(f"expression: expected [{E}] coefficients, got {tuple(expression.shape)}")
        level = self._detail(detail)

        def run(pose: Tensor, expression: Tensor, gaze: Tensor, lighting: Lighting, translation: Tensor | None):
            return drive_gaussians(
                m, self.state, pose, expression, gaze, lighting, translation, self._strength, chain=self._chain,
                detail=level, regularisers=False, shading_only=shading_only,
            ).gaussians  # fmt: skip

        if not graphs_enabled(dev):
            return run(pose, expression, gaze, lighting, translation)
        for name, t in (("pose", pose), ("expression", expression), ("gaze", gaze)):
            if t.device.type == "cpu" and not torch.isfinite(t).all():
                raise ValueError(f"{name} contains NaN or infinite values")
        pose, expression, gaze = (t.to(dev, dt) for t in (pose, expression, gaze))
        translation = self._zero_transl if translation is None else translation.to(dev, dt)
        key = (level.gaussians_per_anchor if level is not None else None, shading_only)
        graph = self._graphs.get(key)
        if graph is None or not graph.matches(pose, lighting):
            graph = self._graphs[key] = GraphedDrive(run, pose, expression, gaze, lighting, translation)
        return graph(pose, expression, gaze, lighting, translation)

    @property
    def gaussians_per_anchor(self) -> int:
        return int(self.state.canonical.offsets.shape[1])

    def _detail(self, k: int | None) -> DetailLevel | None:
        """The cached k-of-K level (None for the full avatar); raises ValueError for an impossible k."""
        if k is None or k == self.gaussians_per_anchor:
            return None
        if k not in self._details:
            self._details[k] = detail_level(self.model, self.state, k)
        return self._details[k]

    @torch.no_grad()
    def canonical(self) -> Gaussians:
        """The canonical avatar (rest pose, neutral lighting, no pose deltas) with all parts."""
        c, s = self.state.canonical, self.state
        A, K = c.offsets.shape[:2]
        rgb = c.albedo.clamp(0, 1)
        return Gaussians(
            means=(s.anchors[:, None] + c.offsets).reshape(A * K, 3),
            quats=c.quats.reshape(A * K, 4),
            log_scales=c.log_scales.reshape(A * K, 3),
            opacity_logits=c.opacity_logits.reshape(A * K),
            sh=rgb_to_sh0(rgb).reshape(A * K, 1, 3),
            parts=c.part_logits.argmax(-1).reshape(A * K),
        )

    # -- edits ----------------------------------------------------------------------------------------------
    def loosen(self, part: str, strength: float) -> None:
        """Scale the node deformer's correction for `part` (0 = plain skinning, 1 = as trained, >1 looser)."""
        if self.model.deformer is None:
            raise ValueError("this model has no node deformer (deformer.enabled is false in its config)")
        if not 0.0 <= strength <= 4.0:
            raise ValueError(f"strength must lie in [0, 4], got {strength}")
        self.part_strength[part_index(part)] = strength
        self._refresh()

    # -- file io --------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, half: bool = False, description: str | None = None) -> Path:
        """One safetensors file: state, per-frame module weights, anchors and rig; JSON header with the config.
        `half`: floating tensors stored as float16 (about half the size; `load` reads them back as float32);
        `description`: a line kept in the header (`read_description`), which the studio shows."""
        m = self.model
        tensors = {f"state.{k}": v for k, v in self.state.tensors().items()}
        tensors.update({f"module.{k}": v for k, v in m.drive_state_dict().items()})
        tensors.update({f"rig.{k}": v for k, v in m.rig.tensors().items()})
        a = m.anchors
        tensors.update(
            {
                f"anchors.{f.name}": getattr(a, f.name)
                for f in dataclasses.fields(a)
                if isinstance(getattr(a, f.name), Tensor)
            }
        )
        tensors["part_strength"] = self.part_strength
        tensors = {k: v.detach().clone() for k, v in tensors.items()}  # safetensors refuses shared storage
        if half:
            tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        meta = {
            "version": AVATAR_VERSION,
            "config": to_dict(m.cfg),
            "rig": m.rig.metadata(),
            "anchor_spacing": a.spacing,
        }
        if description is not None:
            meta["description"] = str(description)
        return save_tensors(path, tensors, meta, kind=AVATAR_KIND)

    @staticmethod
    def read_description(path: str | os.PathLike) -> str | None:
        """The description line `save` kept in an avatar file's header, if any (the header alone is read)."""
        d = header_meta(read_safetensors_header(path), path, AVATAR_KIND).get("description")
        return d if isinstance(d, str) else None

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> Avatar:
        tensors, meta = load_tensors(path, kind=AVATAR_KIND)
        tensors = {k: v.float() if v.dtype == torch.float16 else v for k, v in tensors.items()}  # saved with half
        if meta.get("version") != AVATAR_VERSION:
            raise FileFormatError(f"{path}: avatar format version {meta.get('version')}, expected {AVATAR_VERSION}")
        with inconsistent_as_format_error(path, "avatar"):
            return cls._from_contents(path, tensors, meta, device)

    @classmethod
    def _from_contents(
        cls, path: str | os.PathLike, tensors: dict[str, Tensor], meta: dict, device: torch.device | str
    ) -> Avatar:
        cfg = stored_model_config(meta["config"])  # sizes checked; no path to another file
        group = lambda p: {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}  # noqa: E731
        rig = BodyRig.from_parts(group("rig."), meta["rig"])
        at = group("anchors.")
        anchors = Anchors(**{**at, "shape_basis": at.get("shape_basis")}, spacing=float(meta["anchor_spacing"]))
        model = LCAModel(cfg, rig, anchors=anchors, drive_only=True)
        missing = model.load_state_dict(group("module."), strict=False)
        if missing.missing_keys or missing.unexpected_keys:
            raise FileFormatError(f"{path}: module weights do not match the config ({missing})")
        model = model.to(device)
        state = IdentityState.from_tensors({k: v.to(device) for k, v in group("state.").items()})
        return cls(model, state, strength=tensors["part_strength"])

    # -- internals ------------------------------------------------------------------------------------------
    @property
    def parts(self) -> Tensor:  # [A, K] part label of each Gaussian
        return self._parts

    def _set_canonical(self, **changes: Tensor) -> None:
        self.state = dataclasses.replace(self.state, canonical=dataclasses.replace(self.state.canonical, **changes))
        self._refresh()

    def _refresh(self) -> None:
        """Recompute the per-frame caches that depend on edits."""
        s, dev, dt = self.state, self.state.anchors.device, self.state.anchors.dtype
        self._parts = s.canonical.part_logits.argmax(-1)  # [A, K]
        self._strength = self.part_strength.to(dev, dt)[self._parts]  # [A, K]
        J, E = self.model.num_joints, self.model.num_expressions
        self._chain = identity_chain(self.model, s)
        self._zero_pose = torch.zeros(J, 3, device=dev, dtype=dt)
        self._zero_expr = torch.zeros(E, device=dev, dtype=dt)
        self._zero_gaze = torch.zeros(2, device=dev, dtype=dt)
        self._neutral = Lighting.neutral(dev, dt)
        self._zero_transl = torch.zeros(3, device=dev, dtype=dt)
        # per (detail level, shading only); recorded on the first CUDA drive
        self._graphs: dict[tuple[int | None, bool], GraphedDrive] = {}
        self._details: dict[int, DetailLevel] = {}  # built on first use after each edit

    def to(self, device: torch.device | str) -> Avatar:
        return Avatar(
            self.model.to(device),
            self.state.map(lambda v: v.to(device)),
            strength=self.part_strength,
        )
