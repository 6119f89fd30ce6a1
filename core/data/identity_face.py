"""The face of a synthetic identity: where its eyes and mouth are on the body mesh, eyes on the body's own
eyeballs, and the upper teeth. `core.data.identity.build_identity` uses these for the face's skin layers
(eyelids, lips, the inside of the mouth) and adds the eyes and teeth."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.data.body_bridge import RestBody, WorldBody
from core.data.identity_layers import PART, _Builder
from core.data.identity_spec import IdentitySpec


@dataclass(frozen=True)
class FaceLayout:
    """Where the eyes and the mouth of one identity's rest face are, measured on the body mesh: the eyeballs
    (vertices skinned to the eye bones), their radius, and the seam where the lips meet (between the vertices
    `jawOpen` pulls down and those it leaves)."""

    eyeball_v: np.ndarray  # [V] vertices of both eyeballs
    eyes: dict[str, np.ndarray]  # bone name -> [V] vertices of that eyeball
    eye_centres: tuple[np.ndarray, np.ndarray]
    eye_radius: float
    iod: float  # interocular distance
    seam_y: float  # height and depth of the line where the lips meet
    seam_z: float
    half_width: float  # of the mouth

    @classmethod
    def measure(cls, body: WorldBody, rest: RestBody, eye_l, eye_r, head_c) -> FaceLayout:
        v = rest.vertices.numpy()
        bone = body.weights.numpy().argmax(1)
        eyes = {n: bone == body.bone_index[n] for n in ("eye.L", "eye.R")}
        radius = float(np.median(np.linalg.norm(v[eyes["eye.L"]] - eye_l, axis=1)))
        mid = (eye_l + eye_r) / 2
        iod = float(np.linalg.norm(eye_l - eye_r))
        jaw = body.expression_offsets[body.expression_names.index("jawOpen"), :, 1].numpy()
        rel = v - mid
        front = (np.abs(rel[:, 0]) < 0.15 * iod) & (rel[:, 1] < -0.6 * iod) & (rel[:, 1] > -1.9 * iod)
        front &= v[:, 2] > head_c[2] + 0.05
        upper = front & (jaw > -0.002)
        lower = front & (jaw < -0.006)
        if not upper.any() or not lower.any():
            raise ValueError("the body mesh has no mouth that jawOpen opens; cannot place the lips")
        seam_y = 0.5 * (v[upper, 1].min() + v[lower, 1].max())
        seam_z = float(v[front & (np.abs(v[:, 1] - seam_y) < 0.004), 2].max())
        return cls(
            eyeball_v=eyes["eye.L"] | eyes["eye.R"],
            eyes=eyes,
            eye_centres=(eye_l, eye_r),
            eye_radius=radius,
            iod=iod,
            seam_y=float(seam_y),
            seam_z=seam_z,
            half_width=0.42 * iod,  # mouth corners: the mouth is about 0.85 interocular distances wide
        )

    def eye_zone(self, p: np.ndarray) -> np.ndarray:
        """Rest points [P, 3] on the eyelids: in front of either eyeball, up to 8 mm off its surface."""
        out = np.zeros(len(p), bool)
        for centre in self.eye_centres:
            d = p - centre
            out |= (np.linalg.norm(d, axis=1) < self.eye_radius + 0.008) & (d[:, 2] > 0.3 * self.eye_radius)
        return out

    def eyeball_gap(self, p: np.ndarray) -> np.ndarray:
        """Distance [P] of rest points from the nearer eyeball's surface (small at the lid margins)."""
        return np.min([np.linalg.norm(p - c, axis=1) for c in self.eye_centres], axis=0) - self.eye_radius

    def mouth_zone(self, p: np.ndarray) -> np.ndarray:
        """Rest points [P, 3] around the lips and inside the mouth."""
        return (
            (np.abs(p[:, 0]) < self.half_width + 0.006)
            & (p[:, 1] > self.seam_y - 0.03)
            & (p[:, 1] < self.seam_y + 0.015)
            & (p[:, 2] > self.seam_z - 0.05)
        )

    def inner_mouth(self, v: np.ndarray, faces: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Triangle mask: the candidates that other surface hides from the front at rest (the inside of the
        mouth, behind the closed lips), as opposed to the chin and the lips themselves."""
        out = np.zeros(len(faces), bool)
        idx = np.flatnonzero(candidates)
        if not len(idx):
            return out
        c = v[faces[idx]].mean(1)
        near = v[(np.abs(v[:, 0]) < self.half_width + 0.01) & (np.abs(v[:, 1] - self.seam_y) < 0.035)]
        near = near[near[:, 2] > self.seam_z - 0.06]
        dx = np.abs(c[:, None, 0] - near[None, :, 0])
        dy = np.abs(c[:, None, 1] - near[None, :, 1])
        dz = near[None, :, 2] - c[:, None, 2]
        out[idx] = ((dx < 0.003) & (dy < 0.003) & (dz > 0.004)).any(1)
        return out

    def lips(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lips, seam line) masks of rest points: an upper and a lower lip tapering to the corners."""
        u = p[:, 0] / self.half_width
        taper = np.sqrt(np.clip(1 - u**2, 0, 1))
        dy = p[:, 1] - self.seam_y
        on_front = p[:, 2] > self.seam_z - 0.012
        lips = (
            on_front
            & (np.abs(u) < 1)
            & (dy < 0.15 * self.iod * taper + 0.002)
            & (dy > -0.18 * self.iod * taper - 0.002)
        )
        return lips, np.abs(dy) < 0.0015


def add_eyes(B: _Builder, body: WorldBody, spec: IdentitySpec, face: FaceLayout, rng, detail: float) -> None:
    """Eyes on the body's own eyeballs: sclera, a darker-rimmed iris and a pupil, skinned to the eye bones so
    gaze turns them; the eyelids (skin on the lid vertices that `eyeBlink` closes) sit in front of them."""
    k = int(220 * detail) + 40
    golden = math.pi * (3 - math.sqrt(5))  # an even spiral over the front hemisphere
    i = np.arange(k) + 0.5
    z = 1 - i / k
    r = np.sqrt(1 - z**2)
    d = np.stack([r * np.cos(golden * i), r * np.sin(golden * i), z], 1)
    d = d[np.argsort(-d[:, 2])]
    size = face.eye_radius * math.sqrt(3.0 / k)
    iris = np.array(spec.eyes)
    alb = np.where((d[:, 2] > 0.91)[:, None], iris, np.array([0.93, 0.9, 0.86]))
    alb[(d[:, 2] > 0.91) & (d[:, 2] < 0.93)] = iris * 0.55  # limbal ring
    alb[d[:, 2] > 0.984] = 0.03  # pupil
    for bname in ("eye.L", "eye.R"):
        centre = B.rest.joints[body.bone_index[bname]].numpy()
        B.add_points(
            centre + d * (face.eye_radius + 0.0003),
            normals=d,
            size=size,
            thickness=0.3,
            albedo=alb * rng.uniform(0.97, 1.03, (len(d), 1)),
            part=PART["face"],
            bone=bname,
            among=face.eyes[bname],
        )


def add_teeth(B: _Builder, body: WorldBody, face: FaceLayout, rng, detail: float) -> None:
    """The upper teeth, seen when the lips part: rigid with the skull, behind the upper lip (a closed mouth hides
    them)."""
    step = 0.0016 / math.sqrt(max(detail, 0.25))
    hw = face.half_width * 0.7
    xs = np.arange(-hw, hw + 1e-9, step)
    ys = np.arange(face.seam_y - 0.006, face.seam_y + 0.003 + 1e-9, step)
    gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
    gz = face.seam_z - 0.008 - 0.6 * gx**2 / face.half_width  # follows the curve of the dental arch
    pts = np.stack([gx, gy, gz], 1)
    d = ((pts[:, None, :] - B.v[None, ::2, :]) ** 2).sum(-1).argmin(1) * 2  # keep what lies inside the head
    pts = pts[((pts - B.v[d]) * B.vn[d]).sum(1) < -0.002]
    if not len(pts):
        return
    B.add_points(
        pts,
        normals=np.broadcast_to(np.array([0.0, 0.0, 1.0]), pts.shape),
        size=step * 0.8,
        thickness=0.375,
        albedo=np.array([0.86, 0.83, 0.76]) * rng.uniform(0.9, 1.05, (len(pts), 1)),
        part=PART["face"],
        bone="head",
        among=B.expression_still(),
    )
