"""Head close-ups for refinement (core.model.personalise): a square crop of a photo or video frame around its fitted
head, resized to the refinement's image size, with a zoomed camera of the same pose (the crop's intrinsics), so that
the face is refined at tens of pixels across instead of the 10-20 it covers in the letterboxed whole-body view."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from core.model.crops import BodyEstimate, posed_joints, project

HEAD_SIDE = 0.34  # metres the close-up's side covers at the head's depth (the head with its hair, a little neck)
MIN_HEAD_PX = 40  # a head narrower than this in the photo has no eyes or mouth to paint: no close-up
MIN_MASK_SHARE = 0.1  # a close-up less covered than this by the person mask shows no head of the person
MIN_TRUST = 0.3  # a head bone trusted less than this in a photo's fit gets no gradient from it (core.model.personalise)


@dataclass(frozen=True)
class HeadBox:
    """The square around a fitted head in a photo's pixels."""

    x0: int  # left column of the square (may be outside the photo)
    y0: int  # top row
    side: int  # pixels
    depth: float  # metres from the camera to the head centre


def head_centre(rig, est: BodyEstimate) -> torch.Tensor:
    """World position [3] of the middle of the head: half-way from the head bone to between the eyes (the head bone
    sits low in the skull, the eyes at its front), or the head bone where the rig has no eyes."""
    joints = posed_joints(rig, est)  # [J, 3]
    head = joints[rig.head_joint]
    if not rig.eye_joints:
        return head
    return 0.5 * (head + joints[list(rig.eye_joints)].mean(0))


def head_box(rig, est: BodyEstimate, *, head_side: float = HEAD_SIDE) -> HeadBox | None:
    """The head's square in the pixels of `est.camera` (None when the head is behind the camera)."""
    uv, depth = project(head_centre(rig, est)[None].float(), est.camera)  # [1, 2], [1]
    z = float(depth[0])
    if not z > 0:
        return None
    side = max(1, round(float(est.camera.K[1, 1]) * head_side / z))
    cx, cy = float(uv[0, 0]), float(uv[0, 1])
    return HeadBox(round(cx - side / 2), round(cy - side / 2), side, z)


def closeup_matrix(box: HeadBox, size: int) -> torch.Tensor:
    """[3, 3] map from photo pixels to close-up pixels (apply it to K for the close-up's camera)."""
    s = size / box.side
    return torch.tensor([[s, 0.0, -s * box.x0], [0.0, s, -s * box.y0], [0.0, 0.0, 1.0]])


def closeup_estimate(est: BodyEstimate, box: HeadBox, size: int) -> BodyEstimate:
    """The same body seen by a zoomed camera of the same pose: the close-up's intrinsics, `size` x `size` pixels."""
    cam = est.camera
    K = closeup_matrix(box, size) @ cam.K.float()
    return BodyEstimate(est.params, type(cam)(K, cam.T_cam_world, size, size))


def cut(img: np.ndarray, box: HeadBox, size: int, interpolation: int) -> np.ndarray:
    """The box of `img` [H, W, ...] (zeros outside the photo) resized to `size` x `size`."""
    H, W = img.shape[:2]
    out = np.zeros((box.side, box.side, *img.shape[2:]), img.dtype)
    ys, xs = max(0, box.y0), max(0, box.x0)
    ye, xe = min(H, box.y0 + box.side), min(W, box.x0 + box.side)
    if ye > ys and xe > xs:
        out[ys - box.y0 : ye - box.y0, xs - box.x0 : xe - box.x0] = img[ys:ye, xs:xe]
    return cv2.resize(out, (size, size), interpolation=interpolation)


def head_closeup(
    rgb: np.ndarray,
    mask: np.ndarray | None,
    est: BodyEstimate,
    rig,
    size: int,
    head_trust: float = 1.0,
    *,
    valid: np.ndarray | None = None,  # [H, W] bool: pixels that show the source (None: all of them)
):
    """(image [3, S, S] in [0, 1] with the person on black, mask [S, S], valid [S, S] bool, estimate) of the photo's
    head close-up (`rgb` [H, W, 3] uint8, `mask` [H, W] uint8 with 255 on the person, `est` in the photo's pixels),
    or a sentence saying why the photo has none. The close-up's valid pixels are those inside the photo and `valid`."""
    if head_trust < MIN_TRUST:
        return f"its body fit misplaced the head (trust {head_trust:.2f})"
    box = head_box(rig, est)
    if box is None:
        return "its fitted head is behind the camera"
    H, W = rgb.shape[:2]
    cx, cy = box.x0 + box.side / 2, box.y0 + box.side / 2
    if not (0 <= cx < W and 0 <= cy < H):
        return "its fitted head is outside the photo"
    if box.side < MIN_HEAD_PX:
        return f"its head is {box.side} px across (a close-up needs >= {MIN_HEAD_PX})"
    mask = np.full((H, W), 255, np.uint8) if mask is None else mask
    m = cut(mask.astype(np.float32) / 255.0, box, size, cv2.INTER_AREA)  # [S, S]
    if float(m.mean()) < MIN_MASK_SHARE:
        return f"its person mask covers {100 * float(m.mean()):.0f}% of the fitted head's square"
    image = cut(rgb * (mask[..., None] > 127), box, size, cv2.INTER_AREA)  # [S, S, 3] the person on black
    inside = np.ones((H, W), np.uint8) if valid is None else valid.astype(np.uint8)
    valid = cut(inside, box, size, cv2.INTER_NEAREST) > 0
    return (
        torch.from_numpy(image).permute(2, 0, 1).float() / 255.0,
        torch.from_numpy(m),
        torch.from_numpy(valid),
        closeup_estimate(est, box, size),
    )
