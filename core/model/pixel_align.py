"""Pixel-aligned appearance: where each canonical anchor lies in each reference's body crop, and the crop colour and
encoder features found there, pooled over the references. An addition beside the paper's attention (as in LHM/LAM):
colour reaches the Gaussians from the first training step instead of waiting for attention to learn to carry it.

The anchors are posed with the model's own kinematics (the same as `drive_gaussians`) from each reference's body
estimate, projected through the camera of its body crop, and weighted by how squarely they face that camera.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.body.lbs import apply_gaze, axis_angle_to_matrix, pose_chain, rest_chain, skin_points
from core.constants import constant

if TYPE_CHECKING:
    from core.model.crops import BodyEstimate
    from core.model.model import LCAModel

log = logging.getLogger(__name__)

ALBEDO_EPS = 0.02  # sampled colours are clamped to [eps, 1 - eps] before their logit (a finite prior)


@dataclass(frozen=True)
class ReferenceViews:
    """Body estimate and body-crop camera of each reference image, leading dims [..., N] (the model takes [B, N]).

    `K` maps world points seen by the photo's camera to pixels of the body crop the model sees (the photo's
    intrinsics composed with the crop and resize), so projecting an anchor gives its place in that crop.
    """

    rotations: Tensor  # [..., N, J, 3] axis-angle or [..., N, J, 3, 3] per bone (BodyParams.rotations of each photo)
    expression: Tensor  # [..., N, E]
    gaze: Tensor  # [..., N, 2] yaw, pitch
    translation: Tensor  # [..., N, 3]
    K: Tensor  # [..., N, 3, 3] intrinsics in body-crop pixels (pixel centres at +0.5)
    T_cam_world: Tensor  # [..., N, 4, 4]
    mask: Tensor | None = None  # [..., N, Hm, Wm] person mask in [0, 1] over the body crop (any resolution)
    trust: Tensor | None = None  # [..., N, J] per bone in [0, 1]: 0 where the fit put that bone's region elsewhere

    def __post_init__(self) -> None:
        lead = tuple(self.translation.shape[:-1])
        rot_lead = self.rotations.shape[:-3] if self.rotations.shape[-2:] == (3, 3) else self.rotations.shape[:-2]
        checks = {
            "rotations": tuple(rot_lead),
            "expression": tuple(self.expression.shape[:-1]),
            "gaze": tuple(self.gaze.shape[:-1]),
            "K": tuple(self.K.shape[:-2]),
            "T_cam_world": tuple(self.T_cam_world.shape[:-2]),
        }
        for name, got in checks.items():
            if got != lead:
                raise ValueError(
                    f"ReferenceViews.{name}: leading dims {got} differ from translation's {lead}; give one row per "
                    "reference image"
                )
        if self.gaze.shape[-1] != 2 or self.translation.shape[-1] != 3:
            raise ValueError(
                f"ReferenceViews: gaze [..., 2] and translation [..., 3] expected, got "
                f"{tuple(self.gaze.shape)} and {tuple(self.translation.shape)}"
            )
        if self.mask is not None and tuple(self.mask.shape[:-2]) != lead:
            raise ValueError(
                f"ReferenceViews.mask: leading dims {tuple(self.mask.shape[:-2])} differ from translation's {lead}; "
                "give one person mask [Hm, Wm] per reference image"
            )
        if self.trust is not None and tuple(self.trust.shape[:-1]) != lead:
            raise ValueError(
                f"ReferenceViews.trust: leading dims {tuple(self.trust.shape[:-1])} differ from translation's {lead}; "
                "give one row of per-bone trust [J] per reference image"
            )
        if self.K.shape[-2:] != (3, 3) or self.T_cam_world.shape[-2:] != (4, 4):
            raise ValueError(
                f"ReferenceViews: K [..., 3, 3] and T_cam_world [..., 4, 4] expected, got "
                f"{tuple(self.K.shape)} and {tuple(self.T_cam_world.shape)}"
            )

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.translation.shape[:-1])

    def map(self, fn: Callable[[Tensor], Tensor]) -> ReferenceViews:
        vals = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return ReferenceViews(**{k: None if v is None else fn(v) for k, v in vals.items()})

    def with_masks(self, mask: Tensor | None) -> ReferenceViews:
        """The same views with a person mask per body crop [..., N, Hm, Wm] in [0, 1]: anchors that land outside
        the person in a view take nothing from that view (colours only from the person)."""
        return dataclasses.replace(self, mask=mask)

    def with_trust(self, trust: Tensor | None) -> ReferenceViews:
        """The same views with a per-bone trust [..., N, J] in [0, 1]: an anchor takes a view's colour in proportion
        to the trust of the bones it is skinned to (a region the body fit misplaced in a photo takes none of it)."""
        return dataclasses.replace(self, trust=trust)

    def to(self, *args, **kwargs) -> ReferenceViews:
        return self.map(lambda t: t.to(*args, **kwargs))

    def cropped(self, M: Tensor) -> ReferenceViews:
        """The same views after a further crop/resize of the body crops: pixel map `M` [..., 3, 3] (or [3, 3])."""
        if self.mask is not None:
            raise ValueError("ReferenceViews.cropped: crop the views before giving them masks (with_masks)")
        return dataclasses.replace(self, K=M.to(self.K) @ self.K)

    @classmethod
    def from_estimates(cls, estimates: Sequence[BodyEstimate], K_crop: Tensor) -> ReferenceViews:
        """Views [N] from one body estimate per photo and the intrinsics of each photo's body crop `K_crop` [N, 3, 3]."""
        if len(estimates) != K_crop.shape[0]:
            raise ValueError(f"{len(estimates)} body estimates but {K_crop.shape[0]} crop intrinsics; give one each")
        f32 = lambda ts: torch.stack([t.to(torch.float32) for t in ts])  # noqa: E731
        return cls(
            rotations=f32([e.pose for e in estimates]),
            expression=f32([e.expression for e in estimates]),
            gaze=f32([e.gaze for e in estimates]),
            translation=f32([e.translation for e in estimates]),
            K=K_crop.to(torch.float32),
            T_cam_world=f32([e.camera.T_cam_world for e in estimates]),
        )


def pose_anchors(
    model: LCAModel,
    support: Tensor,  # [M, U, 3] shaped rest positions of the anchors' triangle corners (model.shaped_rest)
    rest_poses: Tensor,  # [M, J, 4, 4] shaped rest bone frames
    rotations: Tensor,  # [M, J, 3] axis-angle or [M, J, 3, 3]
    expression: Tensor,  # [M, E]
    gaze: Tensor,  # [M, 2]
    translation: Tensor,  # [M, 3]
) -> tuple[Tensor, Tensor]:
    """Posed anchors [M, A, 3] and their unit normals [M, A, 3]: the kinematics and skinning of `drive_gaussians`."""
    M, J = rotations.shape[0], model.num_joints
    dt = support.dtype
    R_local = rotations.to(dt)
    if R_local.shape == (M, J, 3):
        R_local = axis_angle_to_matrix(R_local)
    if R_local.shape != (M, J, 3, 3):
        raise ValueError(f"rotations: expected [{M}, {J}, 3] or [{M}, {J}, 3, 3], got {tuple(rotations.shape)}")
    R_local = apply_gaze(R_local, gaze.to(dt), model.eye_joints)  # as drive_gaussians
    U = support.shape[1]
    support = support + (expression.to(dt) @ model.support_expr).view(M, U, 3)  # the body's blendshapes
    chain = rest_chain(rest_poses, model.parents, model.ref_orients)
    T_world_bone, _ = pose_chain(R_local, chain, model.parents, model.root_position + translation.to(dt))
    posed, linear = skin_points(support, model.support_weights, T_world_bone)  # [M, U, 3], [M, U, 3, 3]
    w = model.anchor_bary[..., None]  # [A, 3, 1]
    points = (posed[:, model.anchor_corners] * w).sum(-2)  # [M, A, 3] the posed surface at the anchor
    frame = (linear[:, model.anchor_corners] * w[..., None]).sum(-3)  # [M, A, 3, 3]
    normals = F.normalize((frame @ model.anchor_normals[:, :, None])[..., 0], dim=-1)
    return points, normals


def project_anchors(
    points: Tensor,  # [..., A, 3] world positions
    normals: Tensor,  # [..., A, 3] unit outward normals
    K: Tensor,  # [..., 3, 3] crop intrinsics
    T_cam_world: Tensor,  # [..., 4, 4]
    size: tuple[int, int],  # (H, W) of the crop
) -> tuple[Tensor, Tensor]:
    """-> uv [..., A, 2] in grid_sample's [-1, 1] (align_corners=False) and weight [..., A] in [0, 1].

    The weight is the cosine between the anchor's normal and its direction to the camera: 0 for anchors facing
    away, outside the crop or behind the camera. (Self-occlusion by a facing surface in front is not tested.)
    """
    H, W = size
    R, t = T_cam_world[..., :3, :3], T_cam_world[..., :3, 3]
    cam = points @ R.transpose(-1, -2) + t[..., None, :]  # [..., A, 3]
    z = cam[..., 2]
    pix = cam @ K.transpose(-1, -2)
    xy = pix[..., :2] / z.clamp_min(1e-6)[..., None]  # [..., A, 2] pixels
    uv = xy / constant((float(W), float(H)), xy.dtype, xy.device) * 2 - 1  # cached: no copy per call
    centre = -(R.transpose(-1, -2) @ t[..., None])[..., 0]  # [..., 3] camera position in the world
    view = F.normalize(centre[..., None, :] - points, dim=-1)
    cos = (normals * view).sum(-1)
    inside = (uv.abs() < 1).all(-1) & (z > 1e-3)
    weight = torch.where(inside, cos.clamp_min(0.0), torch.zeros_like(cos))
    return uv.clamp(-2.0, 2.0), weight


def reference_uv(
    model: LCAModel,
    support: Tensor,  # [B, U, 3] from model.shaped_rest
    rest_poses: Tensor,  # [B, J, 4, 4]
    views: ReferenceViews,  # [B, N]
    size: tuple[int, int],  # (H, W) of the body crops the views' K address
) -> tuple[Tensor, Tensor]:
    """Each identity's anchors posed as in each of its references and projected into its body crop
    -> ref_uv [B, N, A, 2] (grid_sample coordinates), ref_weight [B, N, A]."""
    B = support.shape[0]
    if len(views.batch_shape) != 2 or views.batch_shape[0] != B:
        raise ValueError(f"views: expected leading dims [B={B}, N], got {views.batch_shape}")
    N = views.batch_shape[1]
    v = views.to(device=support.device, dtype=support.dtype)
    rep = lambda x: x[:, None].expand(B, N, *x.shape[1:]).flatten(0, 1)  # noqa: E731  [B*N, ...]
    points, normals = pose_anchors(
        model,
        rep(support),
        rep(rest_poses),
        v.rotations.flatten(0, 1),
        v.expression.flatten(0, 1),
        v.gaze.flatten(0, 1),
        v.translation.flatten(0, 1),
    )  # [B*N, A, 3]
    K, T = v.K.flatten(0, 1), v.T_cam_world.flatten(0, 1)
    uv, weight = project_anchors(points, normals, K, T, size)
    weight = weight * visible_anchors(points, uv, T)
    if v.trust is not None:  # regions the fit misplaced in a view take nothing from it
        t = v.trust.flatten(0, 1).to(weight) @ model.anchor_weights.to(weight).T  # [M, A] the anchor's bones' trust
        weight = weight * ((t - 0.3) / 0.4).clamp(0.0, 1.0)  # none below 0.3 (views are pooled normalised)
    if v.mask is not None:  # colours only from the person: nothing of the background reaches the avatar
        m = v.mask.flatten(0, 1)[:, None].to(uv.dtype)  # [B*N, 1, Hm, Wm]
        inside = F.grid_sample(m, uv[:, :, None, :], mode="bilinear", padding_mode="zeros", align_corners=False)
        weight = weight * ((inside[:, 0, :, 0] - 0.3) / 0.4).clamp(0.0, 1.0)
    return uv.unflatten(0, (B, N)), weight.unflatten(0, (B, N))


OCCLUSION_CELLS = 48  # the depth test's grid: cells along each side of the crop
OCCLUSION_TOL = 0.10  # metres behind the nearest anchor of a cell that still count as the same surface


def visible_anchors(
    points: Tensor,  # [M, A, 3] world positions
    uv: Tensor,  # [M, A, 2] grid_sample coordinates of the anchors in their view
    T_cam_world: Tensor,  # [M, 4, 4]
) -> Tensor:
    """1 for anchors no nearer anchor hides in their view, else 0 [M, A]: a depth test of the anchors themselves
    on a coarse grid, so an arm in front of the torso keeps the torso from taking that photo's colours of the arm.
    Anchors are points: with few of them (small models) gaps between them let some hidden anchors through."""
    M, A = uv.shape[:2]
    G = OCCLUSION_CELLS
    R, t = T_cam_world[:, :3, :3], T_cam_world[:, :3, 3]
    z = (points @ R.transpose(-1, -2) + t[:, None, :])[..., 2]  # [M, A]
    cell = ((uv.detach() + 1) / 2 * G).floor().long()
    inside = (cell >= 0).all(-1) & (cell < G).all(-1) & (z > 1e-3)
    idx = (cell[..., 1].clamp(0, G - 1) * G + cell[..., 0].clamp(0, G - 1)).masked_fill(~inside, G * G)
    far = torch.finfo(z.dtype).max
    zbuf = z.new_full((M, G * G + 1), far).scatter_reduce(1, idx, z.detach().masked_fill(~inside, far), "amin")
    near = zbuf.gather(1, idx)
    return ((z.detach() <= near + OCCLUSION_TOL) | ~inside).to(points.dtype)


def sample_views(
    images: Tensor,  # [B, N, C, H, W] (crop colours or encoder feature maps)
    uv: Tensor,  # [B, N, A, 2] grid_sample coordinates
) -> Tensor:
    """Bilinear samples [B, N, A, C] of each view at its anchors (zeros outside the image)."""
    B, N = images.shape[:2]
    grid = uv.flatten(0, 1)[:, :, None, :].to(images.dtype)  # (B*N, A, 1, 2)
    out = F.grid_sample(images.flatten(0, 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[..., 0].transpose(1, 2).unflatten(0, (B, N))  # (B, N, A, C)


def pool_views(
    values: Tensor,  # [B, N, A, C]
    weight: Tensor,  # [B, N, A] >= 0
) -> tuple[Tensor, Tensor]:
    """Weighted mean over the views [B, A, C] (weights normalised per anchor) and a seen flag [B, A] in {0, 1};
    anchors no view sees get zeros. Independent of the order of the views."""
    weight = weight.to(values.dtype)
    total = weight.sum(1)  # (B, A)
    seen = (total > 1e-6).to(values.dtype)
    mean = (values * weight[..., None]).sum(1) / total.clamp_min(1e-6)[..., None]
    return mean * seen[..., None], seen


class PixelAppearance(nn.Module):
    """Pooled crop colour and encoder features -> an addition to the geometry tokens, and an albedo prior.

    The token projection starts at zero, so a model fine-tuned from a checkpoint without this path starts from
    that checkpoint's tokens; `albedo_gate` (initial value `albedo_prior`) scales the logit of the sampled colour
    that is added to the canonical albedo's logit (0: the albedo is the head's alone).
    """

    def __init__(self, feature_dim: int, width: int, albedo_prior: float) -> None:
        super().__init__()
        self.proj = nn.Linear(3 + feature_dim + 1, width)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.albedo_gate = nn.Parameter(torch.tensor(float(albedo_prior)))

    def forward(
        self,
        rgb: Tensor,  # [B, A, 3] pooled crop colour
        feats: Tensor,  # [B, A, De] pooled encoder features
        seen: Tensor,  # [B, A] 1 where some reference sees the anchor
    ) -> tuple[Tensor, Tensor]:
        """-> (token addition [B, A, D], albedo logit prior [B, A, 3])."""
        x = torch.cat([rgb, feats.to(rgb.dtype), seen[..., None]], dim=-1)
        logit = torch.logit(rgb.clamp(ALBEDO_EPS, 1 - ALBEDO_EPS))
        return self.proj(x), self.albedo_gate * seen[..., None] * logit


_warned_missing_views = False


def warn_missing_views() -> None:
    """Log once per process that a pixel-aligned model ran without reference views."""
    global _warned_missing_views
    if not _warned_missing_views:
        log.warning(
            "pixel-aligned model given no reference views (body estimates and crop cameras): its pixel-aligned "
            "appearance path is skipped, so colours come from attention alone; pass views= to get them"
        )
        _warned_missing_views = True
