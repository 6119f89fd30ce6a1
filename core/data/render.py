"""Posing and rendering ground-truth identities: expression on the rest mesh, LBS, secondary motion,
baked diffuse lighting, with the part labels as extra channels of the same pass."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from core.data.body_bridge import PosedBody, WorldBody, skin_points
from core.data.identity_layers import Identity
from core.raster.lighting import Lighting, shade
from core.raster.project import matrix_to_quat
from core.raster.rasterize import rasterize
from core.raster.types import PART_NAMES, Camera, Gaussians, rgb_to_sh0


@dataclass(frozen=True)
class PosedIdentity:
    """An identity posed over F frames (Gaussian geometry, before lighting)."""

    means: Tensor  # [F, G, 3]
    rotations: Tensor  # [F, G, 3, 3] columns: tangent, bitangent, normal
    body: PosedBody


def _orthonormalise(M: Tensor) -> Tensor:
    """Gram-Schmidt on the first and third columns (normal kept most faithfully) [..., 3, 3]."""
    n = M[..., 2] / M[..., 2].norm(dim=-1, keepdim=True).clamp_min(1e-12)
    t = M[..., 0] - (M[..., 0] * n).sum(-1, keepdim=True) * n
    t = t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.stack([t, torch.linalg.cross(n, t), n], -1)


def pose_identity(
    identity: Identity,
    body: WorldBody,
    rotations: Tensor,  # [F, J, 3] world-axis axis-angle
    translation: Tensor,  # [F, 3]
    expression: Tensor,  # [F, E]
    gaze: Tensor,  # [F, 2] yaw, pitch (radians)
    *,
    fps: float = 15.0,
) -> PosedIdentity:
    """Place every Gaussian: anchor on the expressive rest mesh + offset, LBS, then a little sway."""
    posed = body.pose(identity.spec.phenotype, rotations, translation, expression, gaze)
    faces = body.faces[identity.tri]  # [G, 3]
    rest_v = posed.rest_vertices.float()  # [F, V, 3]
    anchors = torch.einsum("gk,fgkd->fgd", identity.bary, rest_v[:, faces])  # [F, G, 3]
    means, A = skin_points(
        (anchors + identity.offset).reshape(-1, 3)[: identity.num], identity.weights, posed.skin.float()[:1]
    )
    if rest_v.shape[0] > 1:
        per = [
            skin_points(anchors[f] + identity.offset, identity.weights, posed.skin.float()[f : f + 1])
            for f in range(rest_v.shape[0])
        ]
        means = torch.cat([p for p, _ in per])
        A = torch.cat([a for _, a in per])
    # Secondary motion: loose parts lag behind the pelvis (displacement against its velocity, in metres).
    pelvis = posed.joints[:, 0].float()  # [F, 3]
    vel = torch.zeros_like(pelvis)
    if pelvis.shape[0] > 1:
        vel[1:] = (pelvis[1:] - pelvis[:-1]) * fps
        vel[0] = vel[1]
    means = means - identity.sway[None, :, None] * vel[:, None, :].clamp(-2, 2)
    R = _orthonormalise(A @ identity.frames[None])
    return PosedIdentity(means=means, rotations=R, body=posed)


def lit_gaussians(identity: Identity, posed: PosedIdentity, frame: int, light: Lighting) -> Gaussians:
    """Frame `frame` of `posed` as a renderable `Gaussians` with lighting baked into its colour."""
    R = posed.rotations[frame]
    rgb = shade(identity.albedo, R[..., 2], light)
    return Gaussians(
        means=posed.means[frame],
        quats=matrix_to_quat(R),
        log_scales=identity.log_scales,
        opacity_logits=identity.opacity_logits,
        sh=rgb_to_sh0(rgb)[:, None, :],
        parts=identity.parts,
    )


def render_views(
    gaussians: Gaussians, camera: Camera, *, with_parts: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Render over black: colour [C, H, W, 3] float, alpha [C, H, W] float, part ids [C, H, W] uint8 (255 = none)."""
    # On a GPU machine the world renders with gsplat: the torch reference is far too slow for data sets.
    device = torch.device(os.environ.get("LCA_DATA_DEVICE", "cuda" if torch.cuda.is_available() else "cpu"))
    gaussians, camera = gaussians.to(device), camera.to(device)
    with torch.no_grad():
        labelled = with_parts and gaussians.parts is not None
        # part labels ride in the colour pass as one-hot channels; a pixel takes the part with the most weight
        onehot = F.one_hot(gaussians.parts.long(), len(PART_NAMES)).float() if labelled else None
        out = rasterize(gaussians, camera, background=(0.0, 0.0, 0.0), features=onehot)
        color, alpha = out.color.cpu().numpy(), out.alpha[..., 0].cpu().numpy()
        parts = None
        if labelled:
            ids = out.features.argmax(-1).to(torch.uint8)
            ids[out.alpha[..., 0] < 0.5] = 255
            parts = ids.cpu().numpy()
    return color, alpha, parts
