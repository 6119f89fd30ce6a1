"""What the training step reads of a batch besides images: the targets' posing and lighting (`target_frames`, the
synthetic world's SH light as the model's `Lighting`) and the references' views (`batch_views`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.constants import constant
from core.model.appearance import Lighting
from core.model.crops import fit_crop_values
from core.model.drive_batch import TargetFrames
from core.model.pixel_align import ReferenceViews
from core.raster.sh import SH_C1
from core.raster.types import SH_C0


def env_from_sh(env_sh: Tensor) -> Tensor:
    """The synthetic world's degree-2 radiance SH [..., 9, 3] (3DGS basis order) as the model's degree-1
    irradiance environment [..., 4, 3] (rows: ambient, x, y, z).

    Irradiance / pi of a cosine lobe keeps band 0 at gain 1 and band 1 at gain 2/3 (Ramamoorthi & Hanrahan);
    band 2 is dropped (the model's transfer is degree 1).
    """
    M = constant(_SH_TO_ENV, env_sh.dtype, env_sh.device).view(4, 9)
    return M @ env_sh  # one product (rows picked and scaled), not four scalings and a stack


def _sh_to_env() -> tuple[float, ...]:
    """`env_from_sh` as a [4, 9] matrix, row-major: rows ambient, x (basis -C1 * x), y (-C1 * y), z (+C1 * z)."""
    M = [[0.0] * 9 for _ in range(4)]
    M[0][0], M[1][3], M[2][1], M[3][2] = SH_C0, -(2 / 3) * SH_C1, -(2 / 3) * SH_C1, (2 / 3) * SH_C1
    return tuple(v for row in M for v in row)


_SH_TO_ENV = _sh_to_env()
_NEUTRAL_ENV = (1.0, 1.0, 1.0) + (0.0,) * 9  # [4, 3] ambient 1, no linear rows (`Lighting.neutral`)


def lighting_from_sh(env_sh: Tensor, key_dir: Tensor | None = None, key_rgb: Tensor | None = None) -> Lighting:
    """One frame's radiance SH [9, 3] and key light as the model's `Lighting` (see `env_from_sh`)."""
    env = env_from_sh(env_sh)
    if key_dir is None or key_rgb is None or float(key_rgb.abs().sum()) == 0.0:
        return Lighting(env=env)
    return Lighting(env=env, direction=key_dir, colour=key_rgb)


def target_frames(batch: dict, device: torch.device, light_estimator: nn.Module | None = None) -> TargetFrames:
    """The posing and lighting of a training batch's targets [B, T], as `TrainStep._lighting` lights each one:
    the generator's lighting where it is known (`tgt_lit`), else neutral light plus the lighting code that
    `light_estimator` reads off the frame. Zeros stand for what a target lacks (a key colour of 0, a code of 0)
    and add exactly nothing, so one batch holds targets of both kinds."""
    key = "tgt_key_dir" in batch and "tgt_key_rgb" in batch
    env = env_from_sh(batch["tgt_env_sh"].to(device))  # [B, T, 4, 3]
    key_dir = batch["tgt_key_dir"].to(device) if key else None
    key_rgb = batch["tgt_key_rgb"].to(device) if key else None
    code = None
    if "tgt_lit" in batch:
        lit = (batch["tgt_lit"].to(device) > 0.5)[..., None]  # [B, T, 1]
        neutral = constant(_NEUTRAL_ENV, env.dtype, env.device).view(4, 3)
        env = torch.where(lit[..., None], env, neutral)
        if key_rgb is not None:
            key_rgb = torch.where(lit, key_rgb, 0.0)
        if light_estimator is not None:  # read off every frame (cheap), used only where the light is unknown
            frame = batch["tgt_rgb"].to(device) * batch["tgt_mask"].to(device)  # [B, T, 3, H, W] person over black
            est = light_estimator(frame)  # [B, T, Dl]
            code = torch.where(lit, 0.0, est)
    return TargetFrames(
        pose=batch["tgt_pose"].to(device),
        expression=batch["tgt_expression"].to(device),
        gaze=batch["tgt_gaze"].to(device),
        translation=batch["tgt_translation"].to(device),
        env=env,
        key_dir=key_dir,
        key_rgb=key_rgb,
        code=code,
    )


def batch_views(batch: dict, body_crop: tuple[int, int]) -> ReferenceViews:
    """The references' views [B, N] of a training batch: their body estimates and the intrinsics of their body
    crops once `fit_crops` has cut the loader's square crops to the model's `body_crop` (H, W)."""
    full = batch["ref_full"]  # [B, N, 3, S, S]
    rot = batch["ref_pose"]
    M = constant(fit_crop_values(tuple(full.shape[-2:]), body_crop), rot.dtype, rot.device).view(3, 3)  # cached
    return ReferenceViews(
        rotations=rot,
        expression=batch["ref_expression"],
        gaze=batch["ref_gaze"] if "ref_gaze" in batch else rot.new_zeros(*rot.shape[:2], 2),
        translation=batch["ref_translation"],
        K=M @ batch["ref_K_full"].to(rot),
        T_cam_world=batch["ref_T_cam_world"],
    )
