"""Ground-truth identities: a canonical Gaussian avatar grown on the body (skin, face, eyes, hair, garments,
shoes, accessories), each Gaussian anchored to the rest surface and carrying skinning weights.

Anchors: a Gaussian sits at `bary`-weighted corners of triangle `tri` of the rest mesh plus a rest-frame
`offset`; so facial expressions (which move the rest mesh) carry it along before LBS poses it.
"""

from __future__ import annotations

import math

import numpy as np

from core.data.body_bridge import REGIONS, RestBody, WorldBody
from core.data.identity_face import FaceLayout, add_eyes, add_teeth
from core.data.identity_layers import (
    PART,
    Identity,
    _Builder,
    _frames_from_dirs,
    _frames_from_normals,
    _noise3,
    _pattern,
    _sample_surface,
)
from core.data.identity_spec import Garment, IdentitySpec
from core.data.seeds import rng_for


def build_identity(spec: IdentitySpec, body: WorldBody, *, detail: float = 1.0) -> Identity:
    """Grow the Gaussians of `spec` on `body`. `detail` scales the Gaussian count (1.0: about 25k)."""
    rng = rng_for("identity-build", spec.seed)
    rest = body.rest(spec.phenotype)
    B = _Builder(body, rest, rng)
    faces, v = B.faces, B.v
    region_v = body.regions.numpy()
    tri_region = region_v[faces[:, 0]]
    bone = body.weights.numpy().argmax(1)
    names = body.bone_names
    bone_name_t = np.array([names[b] for b in bone[faces[:, 0]]])
    yb = {
        n: float(rest.joints[body.bone_index[n], 1])
        for n in ("upperleg01.L", "lowerleg01.L", "foot.L", "spine03", "neck01")
    }
    eye_l, eye_r = (rest.joints[body.bone_index[n]].numpy() for n in ("eye.L", "eye.R"))
    head_c = rest.joints[body.bone_index["head"]].numpy()
    tri_y = v[faces].mean(1)[:, 1]
    tri_c = v[faces].mean(1)
    waist_y = yb["upperleg01.L"] + 0.1
    n_total = int(25000 * detail)

    # Which triangles each garment covers.
    is_ = lambda *r: np.isin(tri_region, [REGIONS.index(x) for x in r])  # noqa: E731
    upper_arm = np.char.startswith(bone_name_t, "upperarm") | np.char.startswith(bone_name_t, "shoulder")
    top_cover = (is_("torso") & (tri_y > waist_y - 0.06)) | upper_arm
    if spec.top.kind in ("shirt", "jacket"):
        top_cover |= is_("arms")
    if spec.top.kind == "dress":
        top_cover = is_("torso")
    bottom_cover = np.zeros(len(faces), bool)
    if spec.bottom is not None:
        hips = is_("torso") & (tri_y <= waist_y - 0.06)
        if spec.bottom.kind == "trousers":
            bottom_cover = hips | (is_("legs") & (tri_y > yb["foot.L"] + 0.05))
        elif spec.bottom.kind == "shorts":
            bottom_cover = hips | (is_("legs") & (tri_y > 0.5 * (yb["upperleg01.L"] + yb["lowerleg01.L"])))
        else:
            bottom_cover = hips
    top_cover &= ~bottom_cover
    shoe_cover = is_("feet") | (is_("legs") & (tri_y < yb["foot.L"] + 0.05))
    covered = top_cover | bottom_cover | shoe_cover

    face = FaceLayout.measure(body, rest, eye_l, eye_r, head_c)
    eyeball_tri = face.eyeball_v[faces].all(1)  # the body's eyeballs get eye Gaussians, not skin

    # Skin and face: thin discs on the uncovered surface; more samples on the face for detail.
    face_m = is_("face") & ~eyeball_tri
    skin_m = ~covered & ~face_m & ~eyeball_tri
    # Eyelids and lips get small, dense discs, so the lid margins and the lips' parting stay sharp; the inside
    # of the mouth (hidden behind the lips at rest) is dark.
    eyes_m = face_m & face.eye_zone(tri_c)
    mouth_m = face_m & face.mouth_zone(tri_c) & ~eyes_m
    inner_mouth = face.inner_mouth(v, faces, mouth_m)
    zones = (
        (skin_m, 0.34, "skin"),
        (face_m & ~eyes_m & ~mouth_m, 0.1, "face"),
        (mouth_m, 0.05, "face"),
        (eyes_m, 0.12, "eyelids"),
    )
    for mask, share, part in zones:
        tri, bary, area = _sample_surface(rng, v, faces, mask, int(n_total * share))
        p, n, w = B.anchor_point(tri, bary)
        r = np.full(len(p), math.sqrt(area) * 0.75)
        skin = np.array(spec.skin) * (1 + spec.skin_detail * _noise3(p, rng))[:, None]
        if part != "skin":
            rel = p - (eye_l + eye_r) / 2
            lips, seam = face.lips(p)
            brows = (np.abs(np.abs(rel[:, 0]) - 0.032) < 0.02) & (np.abs(rel[:, 1] - 0.028) < 0.006)
            skin[lips] = spec.lips
            skin[lips & seam] = np.array(spec.lips) * 0.45  # the line where the lips meet
            skin[brows] = np.array(spec.hair_colour) * 0.8 + skin[brows] * 0.2
            inside = inner_mouth[tri]
            depth = np.clip((face.seam_z - p[inside, 2]) / 0.02, 0, 1)[:, None]
            skin[inside] = np.array(spec.lips) * 0.35 * (1 - depth) + 0.04 * depth
        frames, r_v = _frames_from_normals(n, rng), r
        if part == "eyelids":
            # Wide along the lid, narrow across it near the margin where the lid meets the eyeball: a crisp
            # lid edge without holes in the lid.
            r = r * 1.2
            r_v = np.minimum(r, np.maximum(0.0003, 0.5 * face.eyeball_gap(p)))
            along = np.array([1.0, 0.0, 0.0]) - n[:, :1] * n
            along /= np.linalg.norm(along, axis=1, keepdims=True) + 1e-12
            frames = np.stack([along, np.cross(n, along), n], axis=2)
        B.add(
            tri=tri,
            bary=bary,
            offset=n * 0.001,
            weights=w,
            frames=frames,
            scales=np.stack([r, r_v, r * 0.15], 1),
            opacity=0.99,
            albedo=skin,
            part=PART["skin" if part == "skin" else "face"],
        )

    add_eyes(B, body, spec, face, rng, detail)
    add_teeth(B, body, face, rng, detail)

    # Garments: offset layers over the covered skin, with their patterns; shoes as thick layers.
    for g, mask, part in (
        (spec.top, top_cover, "upper_garment"),
        (spec.bottom, bottom_cover, "lower_garment"),
        (spec.shoes, shoe_cover, "shoes"),
    ):
        if g is None or not mask.any():
            continue
        tri, bary, area = _sample_surface(rng, v, faces, mask, int(n_total * (0.28 if part != "shoes" else 0.05)))
        p, n, w = B.anchor_point(tri, bary)
        r = math.sqrt(area) * 0.8
        alb = _pattern(g, p) * (1 + 0.05 * _noise3(p * 3, rng))[:, None]
        if part == "shoes":
            alb = np.where((p[:, 1] < 0.015)[:, None], np.array(g.colour2) * 0.4, alb)  # soles
        B.add(
            tri=tri,
            bary=bary,
            offset=n * g.thickness,
            weights=w,
            frames=_frames_from_normals(n, rng),
            scales=(r, r, r * 0.2),
            opacity=0.995,
            albedo=alb,
            part=PART[part],
        )

    skirt = spec.bottom.kind == "skirt" if spec.bottom is not None else False
    if skirt or spec.top.kind == "dress":
        g = spec.bottom if skirt else spec.top
        _add_skirt(B, body, rest, g, waist_y, yb, rng, int(n_total * 0.12), long=spec.top.kind == "dress")

    if spec.hair_style != "bald":
        _add_hair(B, body, spec, tri_region, tri_c, head_c, eye_l, eye_r, rng, n_total)
    if spec.beard:
        m = (
            is_("face")
            & (tri_c[:, 1] < (eye_l[1] - 0.06))
            & ~((np.abs(tri_c[:, 0]) < 0.026) & (tri_c[:, 1] > eye_l[1] - 0.09))
        )
        tri, bary, area = _sample_surface(rng, v, faces, m, int(n_total * 0.03))
        p, n, w = B.anchor_point(tri, bary)
        B.add(
            tri=tri,
            bary=bary,
            offset=n * rng.uniform(0.002, 0.008, (len(p), 1)),
            weights=w,
            frames=_frames_from_normals(n, rng),
            scales=(0.004, 0.003, 0.0015),
            opacity=0.9,
            albedo=np.array(spec.hair_colour) * rng.uniform(0.7, 1.1, (len(p), 1)),
            part=PART["hair"],
        )
    _add_accessories(B, body, spec, rest, eye_l, eye_r, head_c, yb, rng)
    return B.pack(spec)


def _add_skirt(
    B: _Builder,
    body: WorldBody,
    rest: RestBody,
    g: Garment,
    waist_y: float,
    yb: dict,
    rng: np.random.Generator,
    n: int,
    *,
    long: bool,
) -> None:
    """A flared cone from the waist: skinning blends the pelvis with *both* legs by side, and the hem sways."""
    v = B.v
    hem_y = yb["lowerleg01.L"] - (0.15 if long else -0.08)
    band = (v[:, 1] > waist_y - 0.03) & (v[:, 1] < waist_y + 0.03) & (body.regions.numpy() == REGIONS.index("torso"))
    centre = v[band].mean(0)
    r_waist = np.percentile(np.linalg.norm((v[band] - centre)[:, [0, 2]], axis=1), 90) + g.thickness
    trunk = np.isin(body.regions.numpy(), [REGIONS.index("torso"), REGIONS.index("legs")])
    hips = (v[:, 1] < waist_y) & (v[:, 1] > yb["upperleg01.L"] - 0.15) & trunk
    r_hip = np.percentile(np.linalg.norm((v[hips] - centre)[:, [0, 2]], axis=1), 95) + 0.015
    h = rng.uniform(0, 1, n) ** 0.8  # 0 at the waist, 1 at the hem
    theta = rng.uniform(0, 2 * math.pi, n)
    flare = rng.uniform(0.04, 0.12) + 0.04 * long
    radius = (
        np.maximum(r_waist + (r_hip - r_waist) * np.clip(h * 2.5, 0, 1), r_hip) * (h > 0.4)
        + (r_waist + (r_hip - r_waist) * np.clip(h * 2.5, 0, 1)) * (h <= 0.4)
        + flare * h**1.5
    )
    folds = 1 + 0.04 * np.sin(theta * rng.integers(7, 13))
    y = waist_y + (hem_y - waist_y) * h
    pts = np.stack([centre[0] + radius * folds * np.sin(theta), y, centre[2] + radius * folds * np.cos(theta)], 1)
    normal = np.stack([np.sin(theta), np.zeros(n), np.cos(theta)], 1)
    tri, bary, w_near = B.nearest_anchor(pts)
    J = body.num_bones
    w_pelvis = np.zeros((n, J))
    w_pelvis[:, body.bone_index["root"]] = 1
    left = 1 / (1 + np.exp(-pts[:, 0] / 0.04))
    w_legs = np.zeros((n, J))
    w_legs[:, body.bone_index["upperleg01.L"]] = left
    w_legs[:, body.bone_index["upperleg01.R"]] = 1 - left
    s = 0.45 * np.clip(h, 0, 1)  # legs own at most 45% at the hem: the skirt never follows one leg rigidly
    w = (1 - s)[:, None] * w_pelvis + s[:, None] * w_legs
    anchor = B.anchor_point(tri, bary)[0]
    dens = 2 * math.pi * (r_hip + flare) * (waist_y - hem_y) / n
    r = math.sqrt(dens) * 0.85
    B.add(
        tri=tri,
        bary=bary,
        offset=pts - anchor,
        weights=w,
        frames=_frames_from_normals(normal, rng),
        scales=(r, r, r * 0.2),
        opacity=0.995,
        albedo=_pattern(g, pts),
        part=PART["lower_garment"],
        sway=0.12 * h**2,
    )


def _add_hair(
    B: _Builder, body: WorldBody, spec: IdentitySpec, tri_region, tri_c, head_c, eye_l, eye_r, rng, n_total: int
) -> None:
    """Strands grown from the scalp: chains of elongated Gaussians; style sets length, gravity and curl."""
    style = spec.hair_style
    scalp = np.isin(tri_region, [REGIONS.index("scalp")])
    if style in ("short", "curly"):
        scalp &= tri_c[:, 1] > eye_l[1] - 0.01
    tri, bary, _ = _sample_surface(rng, B.v, B.faces, scalp, int(n_total * 0.02))
    root, n, w = B.anchor_point(tri, bary)
    length = {"short": 0.03, "curly": 0.07, "long": spec.hair_length, "ponytail": 0.1}[style]
    segs = {"short": 3, "curly": 6, "long": 10, "ponytail": 5}[style]
    tie = head_c + np.array([0.0, 0.03, -0.1])
    pts, dirs, sway, alb = [], [], [], []
    hair = np.array(spec.hair_colour)
    for i in range(len(root)):
        p = root[i] + n[i] * 0.004
        d = n[i].copy()
        tone = hair * rng.uniform(0.75, 1.2)
        seg = length * rng.uniform(0.7, 1.2) / segs
        phase = rng.uniform(0, 2 * math.pi)
        for s in range(segs):
            out = p - head_c
            out /= np.linalg.norm(out) + 1e-9
            if style == "long":
                d = d * 0.6 + np.array([0.0, -1.0, 0.0]) * 0.5 * min(1, s / 2) + out * 0.25
            elif style == "curly":
                d = (
                    d
                    + 0.9
                    * np.array([math.cos(phase + s * 1.6), 0.3 * math.sin(phase + s * 1.6), math.sin(phase + s * 1.6)])
                    + out * 0.6
                )
            elif style == "ponytail":
                d = (tie - p) * 3 + out * 0.2
            else:
                d = d * 0.3 + out * 0.7 + np.array([0.0, -0.3, 0.0])
            d /= np.linalg.norm(d) + 1e-9
            # Hair outside the head: push points that fell inside the skull back out.
            q = p + d * seg
            r_head = 0.1
            if np.linalg.norm(q - head_c) < r_head and style != "ponytail":
                q = head_c + (q - head_c) / (np.linalg.norm(q - head_c) + 1e-9) * r_head
            # Keep the face clear: strands that would hang in front of it part to the sides.
            in_front = q[2] > head_c[2] + 0.03 and eye_l[1] - 0.16 < q[1] < eye_l[1] + 0.035
            if in_front and abs(q[0] - head_c[0]) < 0.085:
                q = q.copy()
                q[0] = head_c[0] + (0.085 if q[0] >= head_c[0] else -0.085)
            pts.append((p + q) / 2)
            dirs.append(q - p)
            sway.append(0.02 * s / segs * (style == "long"))
            alb.append(tone * (0.85 + 0.15 * s / segs))
            p = q
    if style == "ponytail":
        k = int(n_total * 0.03)
        t = rng.uniform(0, 1, k)
        tail = tie + np.stack(
            [rng.normal(0, 0.015, k) * (1 + t), -spec.hair_length * t, -0.03 - 0.05 * t + rng.normal(0, 0.01, k)], 1
        )
        pts += list(tail)
        dirs += list(np.tile([0.0, -0.02, 0.0], (k, 1)) + rng.normal(0, 0.003, (k, 3)))
        sway += list(0.03 * t)
        alb += list(hair * rng.uniform(0.75, 1.2, (k, 1)))
    pts, dirs = np.array(pts), np.array(dirs)
    tri, bary, _ = B.nearest_anchor(pts)
    wh = np.zeros((len(pts), body.num_bones))
    wh[:, body.bone_index["head"]] = 1  # the whole hairdo follows the head
    seg_len = np.linalg.norm(dirs, axis=1)
    thick = 0.006 if style == "curly" else 0.004
    scales = np.stack([np.maximum(seg_len * 0.6, 0.003), np.full(len(pts), thick), np.full(len(pts), thick * 0.4)], 1)
    B.add(
        tri=tri,
        bary=bary,
        offset=pts - B.anchor_point(tri, bary)[0],
        weights=wh,
        frames=_frames_from_dirs(dirs, rng),
        scales=scales,
        opacity=0.95,
        albedo=np.array(alb),
        part=PART["hair"],
        sway=np.array(sway),
    )


def _ring(centre: np.ndarray, radius: float, axis_u: np.ndarray, axis_v: np.ndarray, k: int) -> np.ndarray:
    a = np.linspace(0, 2 * math.pi, k, endpoint=False)
    return centre + radius * (np.cos(a)[:, None] * axis_u + np.sin(a)[:, None] * axis_v)


def _add_accessories(
    B: _Builder, body: WorldBody, spec: IdentitySpec, rest: RestBody, eye_l, eye_r, head_c, yb, rng
) -> None:
    col = np.array(spec.accessory_colour)
    ex, ey, ez = np.eye(3)
    items: list[tuple[np.ndarray, str | None, float]] = []  # points, bone for rigid weights (None: nearest skin), size
    if "glasses" in spec.accessories:
        rims = [_ring(e + ez * 0.018, 0.019, ex, ey, 40) for e in (eye_l, eye_r)]
        bridge = np.linspace(eye_r, eye_l, 8) + ez * 0.02 + ey * 0.006
        temples = [
            np.linspace(e + ez * 0.018 + ex * s * 0.02, e - ez * 0.06 + ex * s * 0.045, 14)
            for e, s in ((eye_l, 1), (eye_r, -1))
        ]
        items.append((np.concatenate([*rims, bridge, *temples]), "head", 0.0016))
    if "cap" in spec.accessories:
        k = 900
        d = rng.normal(size=(k, 3))
        d[:, 1] = np.abs(d[:, 1]) + 0.15
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        dome = head_c + np.array([0, 0.035, -0.01]) + d * np.array([0.098, 0.11, 0.112])
        brim = (
            head_c
            + np.array([0, 0.04, 0.1])
            + np.stack([rng.uniform(-0.08, 0.08, 200), np.zeros(200), rng.uniform(0, 0.07, 200)], 1)
        )
        items.append((np.concatenate([dome, brim]), "head", 0.008))
    if "necklace" in spec.accessories:
        neck = rest.joints[body.bone_index["neck01"]].numpy()
        items.append((_ring(neck + np.array([0, -0.04, 0.0]), 0.065, ex, ez, 60) + ez * 0.01, None, 0.003))
    if "wristband" in spec.accessories:
        wr = rest.joints[body.bone_index["wrist.L"]].numpy()
        el = rest.joints[body.bone_index["lowerarm01.L"]].numpy()
        ax = (wr - el) / np.linalg.norm(wr - el)
        u = np.cross(ax, ez)
        u /= np.linalg.norm(u)
        items.append((_ring(wr - ax * 0.03, 0.03, u, np.cross(ax, u), 40), None, 0.004))
    for pts, bone, size in items:
        normal = pts - pts.mean(0)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
        # Rigid items hang on vertices no expression moves (glasses stay put when the person blinks).
        B.add_points(
            pts,
            normals=normal,
            size=size,
            thickness=0.5,
            albedo=col * rng.uniform(0.85, 1.1, (len(pts), 1)),
            part=PART["accessories"],
            bone=bone,
            among=None if bone is None else B.expression_still(),
        )
