"""Synthetic samples: wild monocular clips and studio multi-view captures of ground-truth identities."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from core.data import augment
from core.data.backgrounds import studio_background, wild_background
from core.data.body_bridge import world_body
from core.data.cameras import project, studio_rig, to_camera, wild_camera_path
from core.data.closeups import closeup_intrinsics, render_closeups, to_uint8
from core.data.identity import build_identity
from core.data.identity_spec import draw_identity_spec
from core.data.lighting import lighting_sweep, random_lighting, studio_lighting
from core.data.motion import expression_vector, generate_expressions, generate_gaze, generate_motion
from core.data.render import lit_gaussians, pose_identity, render_views
from core.data.seeds import identity_seed, rng_for
from core.data.shards import Sample


@dataclass(frozen=True)
class SynthConfig:
    """Sizes of generated samples (defaults: 256 px, 16-frame wild clips, 8-32-camera studio captures)."""

    width: int = 256
    height: int = 256
    wild_frames: int = 16
    studio_poses: int = 3
    studio_cameras: tuple[int, int] = (8, 32)  # inclusive range
    studio_lights: int = 2  # lighting-sweep frames per capture (on top of the evenly lit poses)
    detail: float = 1.0  # Gaussian count factor (1.0: about 25-35k per identity)
    fps: float = 15.0
    # Side of each frame's head close-up (core.data.closeups: the frame's camera zoomed onto its padded head box),
    # stored beside the frame; 0: none. The full frames are the same with or without close-ups.
    closeup_size: int = 0


def _head_boxes(verts: np.ndarray, head_idx: np.ndarray, K: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Pixel box [x0, y0, x1, y1] of the head vertices [F, V, 3] in each frame's camera (K [F, 3, 3], T [F, 4, 4])."""
    boxes = []
    for f in range(len(K)):
        uv, z = project(verts[f, head_idx], K[f], T[f])
        uv = uv[z > 0] if (z > 0).any() else np.zeros((1, 2))
        boxes.append([*uv.min(0), *uv.max(0)])
    return np.array(boxes, np.float32)


class _Closeups:
    """The head close-ups of a sample's frames [F, C] (none when `size` is 0), filled frame by frame. Wild
    close-ups get the clip's sensor response drawn from their own generator, so the full frames stay the same."""

    def __init__(
        self,
        size: int,
        F: int,
        C: int,
        head_box: np.ndarray,  # [F, C, 4]
        K: np.ndarray,  # [F, C, 3, 3] the full frames' intrinsics
        rng: np.random.Generator | None = None,
    ) -> None:
        self.size, self.rng = size, rng
        if size:
            self.K = closeup_intrinsics(head_box, K, size)  # [F, C, 3, 3]
            self.rgb = np.zeros((F, C, size, size, 3), np.uint8)
            self.mask = np.zeros((F, C, size, size), np.uint8)

    def render(self, f: int, lit, K, T, bg, *, occluder=None, noise=None) -> None:
        """Frame f's close-ups from its C cameras (K [C, 3, 3], T [C, 4, 4]) over the frame's backdrop `bg`."""
        if not self.size:
            return
        col, alpha = render_closeups(lit, K, self.K[f], T, self.size, bg, occluder=occluder)
        if noise is not None and self.rng is not None:
            col = np.stack([augment.sensor_noise(c, self.rng, gain=noise[0], sigma=noise[1]) for c in col])
        self.rgb[f], self.mask[f] = to_uint8(col), to_uint8(alpha)

    def attach(self, sample: Sample) -> Sample:
        """`sample` with the close-ups, their intrinsics (`closeup_K`) and their size in its metadata."""
        if self.size:
            sample.arrays["closeup_K"] = self.K
            sample.closeup_rgb, sample.closeup_mask = self.rgb, self.mask
        return sample


def _body_arrays(
    prefix: str, phenotype: np.ndarray, rot: np.ndarray, trans: np.ndarray, expr: np.ndarray, gaze: np.ndarray
) -> dict[str, np.ndarray]:
    return {
        f"{prefix}shape": phenotype.astype(np.float32),
        f"{prefix}pose": rot.astype(np.float32),
        f"{prefix}translation": trans.astype(np.float32),
        f"{prefix}expression": expr.astype(np.float32),
        f"{prefix}gaze": gaze.astype(np.float32),
    }


def _common_meta(kind: str, split: str, index: int, world_seed: int, spec, body, motion: str) -> dict:
    return {
        "kind": kind,
        "split": split,
        "index": index,
        "world_seed": world_seed,
        "identity_seed": spec.seed,
        "identity": spec.to_json(),
        "motion": motion,
        "bone_names": body.bone_names,
        "expression_names": body.expression_names,
        "phenotype_names": body.phenotype_names,
        "pose_convention": "core.body.BodyParams: rotations axis-angle [F, J, 3], world-aligned axes at each bone's reference pose",
        "camera_convention": "OpenCV: x right, y down, z forward; world metres, y-up, feet at y=0, facing +z",
    }


def make_wild_sample(world_seed: int, split: str, index: int, cfg: SynthConfig) -> Sample:
    """A monocular clip of identity `index` of `split`, with tracker-like (noisy) body estimates."""
    body = world_body()
    seed = identity_seed(world_seed, split, index)
    spec = draw_identity_spec(seed)
    identity = build_identity(spec, body, detail=cfg.detail)
    rng = rng_for("wild-clip", seed)
    F, W, H = cfg.wild_frames, cfg.width, cfg.height
    rot, trans, motion = generate_motion(rng, body.bone_names, F, fps=cfg.fps)
    expr = generate_expressions(rng, body.expression_names, F, fps=cfg.fps)
    gaze = generate_gaze(rng, F, fps=cfg.fps)
    posed = pose_identity(
        identity,
        body,
        torch.as_tensor(rot, dtype=torch.float32),
        torch.as_tensor(trans, dtype=torch.float32),
        torch.as_tensor(expr, dtype=torch.float32),
        torch.as_tensor(gaze, dtype=torch.float32),
        fps=cfg.fps,
    )
    K, T = wild_camera_path(rng, F, W, H, body_height=float(identity.rest.vertices[:, 1].max()))
    light = random_lighting(rng)
    bg = wild_background(rng, H, W)
    occ = augment.occluder(rng, H, W) if rng.uniform() < 0.3 else None
    blur = rng.uniform() < 0.5
    gain, sigma = augment.camera_response(rng)
    rgb = np.empty((F, 1, H, W, 3), np.uint8)
    mask = np.empty((F, 1, H, W), np.uint8)
    parts = np.empty((F, 1, H, W), np.uint8)
    head_idx = np.nonzero(np.isin(body.regions.numpy(), [0, 1, 2]))[0]  # head, face, scalp
    verts = posed.body.vertices.float().numpy()
    head_box = _head_boxes(verts, head_idx, K, T)  # [F, 4]
    closeups = _Closeups(cfg.closeup_size, F, 1, head_box[:, None], K[:, None], rng_for("wild-closeup", seed))
    for f in range(F):
        lit = lit_gaussians(identity, posed, f, light)
        col, alpha, lab = render_views(lit, to_camera(K[f], T[f], W, H))
        img = col[0] + (1 - alpha[0, ..., None]) * bg
        a = alpha[0]
        if occ is not None:
            img = img * (1 - occ[1][..., None]) + occ[0] * occ[1][..., None]
            a = a * (1 - occ[1])
            lab[0][occ[1] > 0.5] = 255
        if blur:
            img = augment.motion_blur(img, rng, max_len=5)
        img = augment.sensor_noise(img, rng, gain=gain, sigma=sigma)
        rgb[f, 0] = np.round(img * 255).clip(0, 255).astype(np.uint8)
        mask[f, 0] = np.round(a * 255).clip(0, 255).astype(np.uint8)
        parts[f, 0] = lab[0]
        closeups.render(f, lit, K[f : f + 1], T[f : f + 1], bg, occluder=occ, noise=(gain, sigma))
    phen = np.array([spec.phenotype[n] for n in body.phenotype_names])
    noisy = augment.tracker_noise(rng, rot, trans, phen, expr)
    arrays = {
        "K": K[:, None].astype(np.float32),
        "T_cam_world": T[:, None].astype(np.float32),
        "head_box": head_box[:, None],
        **_body_arrays("gt_", phen, rot, trans, expr, gaze),
        **_body_arrays(
            "est_",
            noisy["shape"],
            noisy["pose"],
            noisy["translation"],
            noisy["expression"],
            gaze + rng.normal(0, 0.05, gaze.shape),
        ),
        "env_sh": np.repeat(light.env_sh[None], F, 0).astype(np.float32),
        "key_dir": np.repeat(light.key_dir[None], F, 0).astype(np.float32),
        "key_rgb": np.repeat(light.key_rgb[None], F, 0).astype(np.float32),
    }
    meta = _common_meta("wild", split, index, world_seed, spec, body, motion)
    meta.update(occluded=occ is not None, motion_blur=bool(blur), config=asdict(cfg))
    sample = Sample(key=f"wild-{split}-{index:06d}", meta=meta, arrays=arrays, rgb=rgb, mask=mask, parts=parts)
    return closeups.attach(sample)


def make_studio_sample(world_seed: int, split: str, index: int, cfg: SynthConfig) -> Sample:
    """A calibrated multi-view capture: a few poses with (often subtle) expressions under even light, then a
    lighting sweep on the last pose; exact body parameters, clean background."""
    body = world_body()
    seed = identity_seed(world_seed, split, index)
    spec = draw_identity_spec(seed)
    identity = build_identity(spec, body, detail=cfg.detail)
    rng = rng_for("studio-capture", seed)
    W, H = cfg.width, cfg.height
    C = int(rng.integers(cfg.studio_cameras[0], cfg.studio_cameras[1] + 1))
    K1, T1 = studio_rig(rng, C, W, H, body_height=float(identity.rest.vertices[:, 1].max()))
    P = cfg.studio_poses
    # One still pose per moment: a frame from a random motion, with an expression held at a random strength.
    rots, transs, exprs = [], [], []
    for p in range(P):
        r, t, _ = generate_motion(
            rng, body.bone_names, 8, fps=cfg.fps, motion=str(rng.choice(["idle", "talk", "wave", "reach"]))
        )
        rots.append(r[int(rng.integers(8))])
        transs.append(t[0] * 0)
        kind = str(
            rng.choice(["smile", "surprise", "frown", "pucker", "sneer", "smirk", "sad", "jaw_left", "cheek_puff"])
        )
        strength = rng.uniform(0.1, 0.3) if p % 2 == 0 else rng.uniform(0.5, 1.0)  # subtle and full expressions
        exprs.append(
            expression_vector(body.expression_names, kind, strength) if p > 0 else np.zeros(len(body.expression_names))
        )
    lights = [studio_lighting()] * P + lighting_sweep(cfg.studio_lights)
    rot = np.stack(rots + [rots[-1]] * cfg.studio_lights)
    trans = np.stack(transs + [transs[-1]] * cfg.studio_lights)
    expr = np.stack(exprs + [exprs[-1]] * cfg.studio_lights)
    F = len(lights)
    gaze = np.zeros((F, 2))
    posed = pose_identity(
        identity,
        body,
        torch.as_tensor(rot, dtype=torch.float32),
        torch.as_tensor(trans, dtype=torch.float32),
        torch.as_tensor(expr, dtype=torch.float32),
        torch.as_tensor(gaze, dtype=torch.float32),
    )
    bg = studio_background(H, W)
    cams = to_camera(K1, T1, W, H)
    rgb = np.empty((F, C, H, W, 3), np.uint8)
    mask = np.empty((F, C, H, W), np.uint8)
    parts = np.empty((F, C, H, W), np.uint8)
    head_idx = np.nonzero(np.isin(body.regions.numpy(), [0, 1, 2]))[0]
    verts = posed.body.vertices.float().numpy()
    boxes = np.stack([_head_boxes(np.repeat(verts[f : f + 1], C, 0), head_idx, K1, T1) for f in range(F)])
    closeups = _Closeups(cfg.closeup_size, F, C, boxes, np.repeat(K1[None], F, 0))
    for f in range(F):
        sweep = f >= P  # same geometry as the last pose: its part labels are reused
        lit = lit_gaussians(identity, posed, f, lights[f])
        col, alpha, lab = render_views(lit, cams, with_parts=not sweep)
        rgb[f] = np.round((col + (1 - alpha[..., None]) * bg) * 255).clip(0, 255).astype(np.uint8)
        mask[f] = np.round(alpha * 255).clip(0, 255).astype(np.uint8)
        parts[f] = parts[P - 1] if sweep else lab
        closeups.render(f, lit, K1, T1, bg)
    phen = np.array([spec.phenotype[n] for n in body.phenotype_names])
    arrays = {
        "K": np.repeat(K1[None], F, 0).astype(np.float32),
        "T_cam_world": np.repeat(T1[None], F, 0).astype(np.float32),
        "head_box": boxes,
        **_body_arrays("gt_", phen, rot, trans, expr, gaze),
        **_body_arrays("est_", phen, rot, trans, expr, gaze),  # studio fits are exact
        "env_sh": np.stack([li.env_sh for li in lights]).astype(np.float32),
        "key_dir": np.stack([li.key_dir for li in lights]).astype(np.float32),
        "key_rgb": np.stack([li.key_rgb for li in lights]).astype(np.float32),
    }
    meta = _common_meta("studio", split, index, world_seed, spec, body, "stills")
    meta.update(num_lighting_sweep=cfg.studio_lights, config=asdict(cfg))
    sample = Sample(key=f"studio-{split}-{index:06d}", meta=meta, arrays=arrays, rgb=rgb, mask=mask, parts=parts)
    return closeups.attach(sample)
