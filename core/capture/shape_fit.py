"""One body shape for all photos of a person: the phenotype shared by every photo, fitted jointly with each photo's
pose and camera placement to the tracker's 2D landmarks (reprojection) and the person masks (silhouette), starting
from each photo's own landmark fit (template shape). The shape is held near the template by a prior and bounded
(each phenotype value within `bound` of it), and every residual is robust, so one bad photo cannot distort it."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from core.body.lbs import axis_angle_to_matrix, skin_points
from core.capture.garment import GARMENT_REGIONS, garment_basis
from core.model.crops import BodyEstimate
from core.model.rig import BodyRig
from core.raster.types import Camera

# Bones whose rotation the joint fit may correct (a small rotation on top of the landmark fit's); the rest (fingers,
# toes, eyes) keep theirs: no landmark or outline constrains them.
POSED_BONES = ("root", "pelvis", "upperleg", "lowerleg", "foot", "spine", "clavicle", "shoulder", "upperarm",
               "lowerarm", "wrist", "neck", "head")  # fmt: skip
GARMENT_START = 0.05  # the allowance's free variables at the start: bound * tanh(0.05), 1/20 of each bound


@dataclass(frozen=True)
class ShapeFitConfig:
    """Knobs of the joint fit (weights are per photo; residuals are in units of the person's size)."""

    rounds: int = 5  # rounds of each stage (the outline correspondences are found anew for each L-BFGS run)
    pose_steps: int = 15  # L-BFGS iterations fitting poses and cameras (the first stage: template shape) ...
    steps: int = 15  # ... and fitting the shape (the second stage, in turn with the poses and cameras)
    bound: float = 0.3  # each phenotype value stays within template +- bound
    shape_prior: float = 0.1  # weight of the squared phenotype distance to the template
    pose_prior: float = 0.1  # weight of the squared rotation corrections (radians)
    landmarks: float = 1.0  # weight of the reprojection term
    silhouette: float = 1.0  # weight of the silhouette term (both directions)
    robust: float = 0.05  # residual (person sizes) where the robust loss turns from quadratic to logarithmic
    mask_points: int = 600  # points of the person's outline that pull the body out to it
    mask_side: int = 256  # the masks are compared with the person this many pixels tall (at most)
    garment: float = 1.0  # each region's clothing allowance stays within [0, garment x its GARMENT_REGIONS bound]
    # (0: no allowance)
    garment_prior: float = 0.01  # weight of the squared allowances in units of 5 cm
    temporal: float = 0.0  # weight of the squared change of the corrections (radians, metres) from one target to the
    # next: the frames of a clip, in time order (0: the targets are independent photos)


@dataclass(frozen=True)
class PhotoTarget:
    """What one photo holds the fit to, with the photo's own landmark fit as the start."""

    estimate: BodyEstimate  # the photo's landmark fit (template shape): pose, gaze, translation and camera
    landmarks: np.ndarray  # [33, 4] the tracker's pose landmarks, normalised to the photo (x, y, z, visibility)
    mask: np.ndarray | None  # [H, W] uint8 person mask (255 = person); None: no silhouette term
    person_px: float  # the person's size in pixels (residuals are measured against it)
    valid: np.ndarray | None = None  # [H, W] bool: the pixels that show the source (None: all); beyond them (a
    # letterbox's padding, a crop past the frame's edge) the body may lie anywhere, and their edge is no outline
    landmark_weights: tuple[tuple[int, float], ...] = ()  # (pose landmark, weight) in place of FIT_POINTS' weights


@dataclass(frozen=True)
class ShapeFit:
    """The shared shape and each photo's refitted body (same order as the targets)."""

    shape: Tensor  # [S] phenotype shared by all photos
    estimates: tuple[BodyEstimate, ...]  # N, with `shape`, corrected pose and camera
    before: dict[str, float]  # the objective's terms at the start (template shape, per-photo fits) ...
    after: dict[str, float]  # ... and at the end
    garment: Tensor | None = None  # [R] clothing allowance per GARMENT_REGIONS region (metres); None: none fitted


def landmark_ids() -> tuple[int, ...]:
    """The pose landmarks the reprojection term uses (those the per-photo camera solve uses)."""
    from core.data.video_fit import FIT_POINTS

    return tuple(sorted(FIT_POINTS))


def posed_landmarks(
    rig: BodyRig,
    W_world_bone: Tensor,  # [B, J, 4, 4] posed bone frames
    ref_orients: Tensor,  # [B or 1, J, 3, 3] the bones' reference axes (RestChain.U)
    ids: tuple[int, ...],  # [K] pose landmark indices: bone heads or face points
) -> Tensor:
    """World positions [B, K, 3] of pose landmarks `ids` of the posed body, as `core.tracking.body_landmarks.
    pose_points` places them (bone heads; face points as offsets in the head's world-aligned frame)."""
    from core.tracking.body_landmarks import FACE_OFFSETS, POSE_BONES

    names = list(rig.phenotype.bone_names) if rig.phenotype is not None else None
    if names is None:
        raise ValueError("posed_landmarks needs the body asset's rig (bone names); got a rig without them")
    heads = W_world_bone[..., :3, 3]  # [B, J, 3]
    head = names.index("head")
    G_head = W_world_bone[:, head, :3, :3] @ ref_orients[:, head].transpose(-1, -2)  # [B, 3, 3] world rotation
    out = []
    for i in ids:
        if i in POSE_BONES:
            out.append(heads[:, names.index(POSE_BONES[i])])
        elif i in FACE_OFFSETS:
            off = heads.new_tensor(FACE_OFFSETS[i])
            out.append(heads[:, head] + G_head @ off)
        else:
            raise ValueError(f"pose landmark {i} is neither a bone head nor a face point")
    return torch.stack(out, 1)


def project(X: Tensor, K: Tensor, T_cam_world: Tensor) -> Tensor:
    """World points [B, P, 3] -> pixels [B, P, 2] through per-photo cameras K [B, 3, 3], T_cam_world [B, 4, 4]."""
    Xc = X @ T_cam_world[:, :3, :3].transpose(-1, -2) + T_cam_world[:, None, :3, 3]
    z = Xc[..., 2:].clamp_min(1e-3)
    return (Xc[..., :2] / z) * torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None] + K[:, None, :2, 2]


def robust(r: Tensor, scale: float) -> Tensor:
    """Cauchy loss of residuals r in units of `scale`: (r / scale)^2 when small, logarithmic when large (one
    outlier cannot dominate)."""
    return torch.log1p((r / scale) ** 2)


@dataclass(frozen=True)
class _MaskTerm:
    """One photo's person mask prepared for the silhouette term (at a reduced size)."""

    scale: float  # mask pixels per photo pixel
    outside: Tensor  # [h, w] distance (mask pixels) from each pixel to the person mask (0 on it)
    outline: Tensor  # [M, 2] (x, y) pixels of the person's outline, where the photo does not cut it off
    person: float  # the person's size in mask pixels


def _mask_term(
    mask: np.ndarray, person_px: float, cfg: ShapeFitConfig, valid: np.ndarray | None = None
) -> _MaskTerm | None:
    """The person mask [H, W] at the fit's size (`valid` [H, W] bool: the pixels that show the source; None: all)."""
    s = min(1.0, cfg.mask_side / max(person_px, 1.0))
    H, W = mask.shape
    h, w = max(1, round(H * s)), max(1, round(W * s))
    small = (cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA) > 127).astype(np.uint8)
    keep = None
    if valid is not None:
        shown = cv2.resize(np.asarray(valid, np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        small = small * shown
        keep = cv2.dilate(1 - shown, np.ones((3, 3), np.uint8), iterations=2) == 0  # 2 px inside the shown part
    if small.sum() < 16:
        return None
    outside = cv2.distanceTransform(1 - small, cv2.DIST_L2, 3)  # 0 on the person
    if keep is not None:
        outside[~keep] = 0.0  # the body may lie beyond the source's pixels
    xy = _outline(small, cfg.mask_points, keep)
    return _MaskTerm(s, torch.from_numpy(outside), torch.from_numpy(xy), person_px * s)


def triangle_distances(
    q: Tensor,  # [M, 2] points
    tri: Tensor,  # [M, C, 3, 2] candidate triangles per point
) -> Tensor:
    """[M, C] distance of each point to each of its candidate triangles in 2D (0 inside)."""
    q = q[:, None, None]  # [M, 1, 1, 2]
    a, e = tri, tri.roll(-1, dims=2) - tri  # corners and edges (a -> b, b -> c, c -> a) [M, C, 3, 2]
    rel = q - a
    cross = e[..., 0] * rel[..., 1] - e[..., 1] * rel[..., 0]  # [M, C, 3]
    inside = (cross >= 0).all(-1) | (cross <= 0).all(-1)  # [M, C]
    t = ((rel * e).sum(-1) / (e * e).sum(-1).clamp_min(1e-12)).clamp(0, 1)  # [M, C, 3]
    edge = (rel - t[..., None] * e).norm(dim=-1).min(-1).values  # [M, C]
    return torch.where(inside, torch.zeros_like(edge), edge)


def vertex_faces(faces: Tensor, num_vertices: int) -> Tensor:
    """[V, D] indices of up to D triangles around each vertex (rows padded with their first triangle)."""
    order = faces.flatten().argsort(stable=True)
    owner = faces.flatten()[order]  # vertex of each (sorted) corner
    tri = order // 3
    count = torch.bincount(owner, minlength=num_vertices)
    D = int(count.max())
    start = torch.cumsum(count, 0) - count
    slot = torch.arange(len(owner)) - start[owner]
    out = torch.full((num_vertices, D), -1, dtype=torch.long)
    out[owner, slot] = tri
    first = out[:, :1].clamp_min(0)
    return torch.where(out < 0, first, out)


def _outline(mask: np.ndarray, count: int, keep: np.ndarray | None = None) -> np.ndarray:
    """[M, 2] (x, y) pixels of the outlines of a uint8 mask (holes too), not where the image's edge cuts it (nor
    outside `keep` [h, w] bool, when given), at most `count` of them spread evenly."""
    h, w = mask.shape
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.zeros((0, 2), np.float32)
    xy = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float32)
    xy = xy[(xy[:, 0] > 0) & (xy[:, 0] < w - 1) & (xy[:, 1] > 0) & (xy[:, 1] < h - 1)]
    if keep is not None:
        xy = xy[keep[xy[:, 1].astype(int), xy[:, 0].astype(int)]]
    return xy[np.linspace(0, len(xy) - 1, min(len(xy), count)).round().astype(int)] if len(xy) else xy


def _mask_pixels(uv: Tensor, term: _MaskTerm) -> Tensor:
    """Photo pixels [..., 2] -> pixels of the reduced mask (OpenCV's convention: pixel centres at integers)."""
    return (uv + 0.5) * term.scale - 0.5


@dataclass(frozen=True)
class _Match:
    """Which parts of the mesh meet the two outlines (fixed for one round of the fit, so its objective is smooth)."""

    vertices: Tensor  # [U] the mesh vertices the outlines involve (only these are posed while the match holds)
    corners: Tensor  # [M, C, 3] candidate triangles of each point of the person's outline (indices into vertices)
    edge: Tensor  # [M'] the vertex at each point of the body's projected outline (an index into vertices)


def _match(uv: Tensor, term: _MaskTerm, faces: Tensor, vfaces: Tensor) -> _Match:
    """Correspondences at the projected vertices uv [V, 2] (photo pixels): the triangles around the 3 vertices
    nearest each point of the person's outline, and the vertex at each point of the body's outline (the body's
    silhouette drawn as its vertices, closed: they lie a pixel or two apart at the mask's size)."""
    from scipy.spatial import cKDTree

    p = _mask_pixels(uv.detach(), term).double().numpy()
    h, w = term.outside.shape
    tree = cKDTree(p)
    near = tree.query(term.outline.double().numpy(), k=3)[1] if len(term.outline) else np.zeros((0, 3), int)
    ij = np.round(p).astype(np.int64)
    ok = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
    body = np.zeros((h, w), np.uint8)
    body[ij[ok, 1], ij[ok, 0]] = 1
    body = cv2.morphologyEx(body, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    edge = _outline(body, max(len(term.outline), 100))
    edge_v = torch.from_numpy(tree.query(edge.astype(np.float64))[1] if len(edge) else np.zeros(0, int)).long()
    corners = faces[vfaces[torch.from_numpy(near).long()].flatten(1)]  # [M, 3 D, 3] vertex ids
    if len(corners):  # keep the 4 triangles nearest each point (the objective's cost is in these distances)
        d = triangle_distances(term.outline.double(), torch.from_numpy(p)[corners])  # [M, 3 D]
        corners = corners.gather(1, d.argsort(1)[:, :4, None].expand(-1, -1, 3))  # [M, 4, 3]
    used, inverse = torch.unique(torch.cat([corners.flatten(), edge_v]), return_inverse=True)
    n = corners.numel()
    return _Match(used, inverse[:n].reshape(corners.shape), inverse[n:])


def _silhouette_loss(
    uv: Tensor,  # [U, 2] the match's vertices, posed and projected (photo pixels)
    term: _MaskTerm,
    match: _Match,
    cfg: ShapeFitConfig,
) -> Tensor:
    """The two outlines pulled onto each other: each point of the person's outline that the projected mesh does not
    cover pulls the nearest of its matched triangles out to it, and each vertex on the body's outline that lies off
    the person is pulled onto it (the mask's distance transform). Both are means over outline points, so a body too
    large costs as much as one too small; both are 0 where body and mask agree. The photo's edges are not outlines
    (the photo may cut the person off)."""
    p = _mask_pixels(uv, term)
    h, w = term.outside.shape
    loss = p.new_zeros(())
    if len(match.corners):
        d = triangle_distances(term.outline.to(uv), p[match.corners]).min(-1).values  # [M]
        loss = loss + robust(d / term.person, cfg.robust).mean()
    if len(match.edge):
        q = p[match.edge]  # [M', 2]
        grid = torch.stack([(q[:, 0] + 0.5) / w * 2 - 1, (q[:, 1] + 0.5) / h * 2 - 1], -1)[None, None]
        off = F.grid_sample(term.outside[None, None].to(uv), grid, align_corners=False, padding_mode="border")
        loss = loss + robust(off[0, 0, 0] / term.person, cfg.robust).mean()
    return loss


def shaped_rest(rig: BodyRig, shape: Tensor) -> tuple[Tensor, Tensor]:
    """Rest vertices [1, V, 3] and bone frames [1, J, 4, 4] of phenotype `shape` [S], differentiable: the body's
    bone axes are re-fitted by `core.body.lbs.polar_rotation`, whose gradient is defined where an SVD's is not."""
    return rig.rest(shape[None])


class _Problem:
    """The joint fit's fixed data (per photo: start pose, camera, landmarks, mask) and its objective."""

    def __init__(self, rig: BodyRig, targets: list[PhotoTarget], cfg: ShapeFitConfig) -> None:
        from core.data.video_fit import FIT_POINTS

        f32 = torch.float32
        self.rig, self.cfg, self.ids = rig, cfg, landmark_ids()
        ests = [t.estimate for t in targets]
        names = list(rig.phenotype.bone_names) if rig.phenotype is not None else []
        self.movable = [j for j, n in enumerate(names) if n.startswith(POSED_BONES)]
        aa = torch.stack([e.params.rotations[0].to(f32) for e in ests])  # [N, J, 3] or [N, J, 3, 3]
        self.R0 = aa if aa.dim() == 4 else axis_angle_to_matrix(aa)  # [N, J, 3, 3]
        self.gaze = torch.stack([e.params.gaze[0].to(f32) for e in ests])  # [N, 2]
        self.trans = torch.stack([e.params.translation[0].to(f32) for e in ests])  # [N, 3]
        self.K = torch.stack([e.camera.K.to(f32) for e in ests])  # [N, 3, 3]
        self.T0 = torch.stack([e.camera.T_cam_world.to(f32) for e in ests])  # [N, 4, 4]
        obs, wts = [], []
        for t in targets:
            weight = dict(t.landmark_weights)
            W, H = t.estimate.camera.width, t.estimate.camera.height
            lm = np.asarray(t.landmarks, np.float64)
            inside = (lm[:, 0] > -0.02) & (lm[:, 0] < 1.02) & (lm[:, 1] > -0.02) & (lm[:, 1] < 1.02)
            seen = (np.nan_to_num(lm[:, 3]) >= 0.5) & inside
            obs.append(lm[list(self.ids), :2] * np.array([W, H]))
            wts.append(np.array([weight.get(i, FIT_POINTS[i]) * seen[i] for i in self.ids]))
        self.obs = torch.tensor(np.stack(obs), dtype=f32)  # [N, K, 2]
        self.w = torch.tensor(np.stack(wts), dtype=f32)  # [N, K]
        self.person = torch.tensor([max(t.person_px, 1.0) for t in targets], dtype=f32)  # [N]
        self.masks = [None if t.mask is None else _mask_term(t.mask, t.person_px, cfg, t.valid) for t in targets]
        self.vfaces = vertex_faces(rig.faces, rig.vertices.shape[0])
        self.template = rig.default_shape.to(f32)  # [S]
        self.garment_basis = garment_basis(rig).to(f32) if cfg.garment > 0 else None  # [V, 3, R]
        self.garment_bound = cfg.garment * torch.tensor([b for _, b in GARMENT_REGIONS.values()])  # [R] metres

    def shape(self, z: Tensor) -> Tensor:
        """[S] phenotype of the free variables z [S]: within `bound` of the template."""
        return self.template + self.cfg.bound * torch.tanh(z)

    def garment(self, g: Tensor) -> Tensor:
        """[R] clothing allowance (metres) of the free variables g [R]: within [0, each region's bound]. Its slope
        at 0 is the bound's (a sigmoid, flat near 0, let the phenotype take the clothes before the allowance could:
        on a synthetic template body with a mask 2% of its size wider, weight and muscle went to their bounds)."""
        return self.garment_bound * torch.tanh(g.abs())

    def posed(
        self, z: Tensor, dpose: Tensor, dcam: Tensor, g: Tensor, rest: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """-> (rest vertices [V, 3] with the clothing allowance, skinning [N, J, 4, 4], landmark pixels [N, K, 2],
        rotations [N, J, 3, 3], cameras T_cam_world [N, 4, 4]) for shape variables z, rotation and camera
        corrections, and allowance variables g (`rest`: the shape's `shaped_rest`, when already known)."""
        rig = self.rig
        verts, rest_poses = shaped_rest(rig, self.shape(z)) if rest is None else rest
        if self.garment_basis is not None:
            verts = verts + self.garment_basis @ self.garment(g)  # [1, V, 3]
        chain = rig.chain(rest_poses.to(self.R0))
        R = self.R0.clone()
        R[:, self.movable] = axis_angle_to_matrix(dpose) @ self.R0[:, self.movable]
        T, W = rig.pose(rig.bone_rotations(R, self.gaze), chain, self.trans)
        cams = self.T0.clone()
        cams[:, :3, 3] = self.T0[:, :3, 3] + dcam
        uv = project(posed_landmarks(rig, W, chain.U, self.ids), self.K, cams)
        return verts[0].to(self.R0), T, uv, R, cams

    def vertices_uv(self, verts: Tensor, T: Tensor, cams: Tensor, i: int, which: Tensor | None = None) -> Tensor:
        """[U, 2] pixels of mesh vertices `which` [U] (None: all) posed in photo i."""
        which = torch.arange(verts.shape[0]) if which is None else which
        posed = skin_points(verts[which], self.rig.weights[which].to(verts), T[i : i + 1])[0]
        return project(posed, self.K[i : i + 1], cams[i : i + 1])[0]

    def match(self, z: Tensor, dpose: Tensor, dcam: Tensor, g: Tensor) -> list[_Match | None]:
        """The outline correspondences of every photo at the current variables."""
        with torch.no_grad():
            verts, T, _, _, cams = self.posed(z, dpose, dcam, g)
            return [
                None if m is None else _match(self.vertices_uv(verts, T, cams, i), m, self.rig.faces, self.vfaces)
                for i, m in enumerate(self.masks)
            ]

    def terms(
        self, z: Tensor, dpose: Tensor, dcam: Tensor, g: Tensor, matches: list[_Match | None], rest=None
    ) -> dict[str, Tensor]:
        """The objective's terms (means over photos; residuals in robust units of `cfg.robust` person sizes)."""
        cfg, N = self.cfg, self.R0.shape[0]
        verts, T, uv, _, cams = self.posed(z, dpose, dcam, g, rest)
        res = (uv - self.obs).norm(dim=-1) / self.person[:, None]  # [N, K]
        lm = (robust(res, cfg.robust) * self.w).sum(1) / self.w.sum(1).clamp_min(1e-6)  # [N]
        sil = torch.zeros(N)
        if any(m is not None for m in self.masks):
            sil = torch.stack([
                sil[i] if m is None else
                _silhouette_loss(self.vertices_uv(verts, T, cams, i, matches[i].vertices), m, matches[i], cfg)
                for i, m in enumerate(self.masks)
            ])  # fmt: skip
        out = {
            "landmarks": cfg.landmarks * lm.mean(),
            "silhouette": cfg.silhouette * sil.mean(),
            "shape_prior": cfg.shape_prior * ((self.shape(z) - self.template) ** 2).sum(),
            "pose_prior": cfg.pose_prior * (dpose**2).sum() / N,
            "garment_prior": cfg.garment_prior * ((self.garment(g) / 0.05) ** 2).sum(),
        }
        if cfg.temporal > 0 and N > 1:  # consecutive frames' corrections alike (radians and metres)
            step = (dpose[1:] - dpose[:-1]).square().sum((1, 2)) + (dcam[1:] - dcam[:-1]).square().sum(1)  # [N - 1]
            out["temporal"] = cfg.temporal * step.mean()
        return out


def fit_shared_shape(rig: BodyRig, targets: list[PhotoTarget], cfg: ShapeFitConfig | None = None) -> ShapeFit:
    """The phenotype shared by all `targets` and each photo's pose and camera, fitted jointly (module docstring):
    first the poses and cameras alone (`pose_steps`), then all together. A rig without a shape model gives the
    estimates back as they are."""
    from core.tracking.body_skeleton import matrix_to_rotvec

    cfg = cfg or ShapeFitConfig()
    if not targets:
        raise ValueError("fit_shared_shape: no photo to fit; give at least one photo with a landmark fit")
    ests = [t.estimate for t in targets]
    if rig.num_shape == 0 or rig.phenotype is None:
        return ShapeFit(rig.default_shape, tuple(ests), {}, {})
    prob = _Problem(rig, targets, cfg)
    N = len(targets)
    z = torch.zeros(rig.num_shape, requires_grad=True)  # shape = template + bound * tanh(z)
    dpose = torch.zeros(N, len(prob.movable), 3, requires_grad=True)  # rotation corrections (axis-angle)
    dcam = torch.zeros(N, 3, requires_grad=True)  # camera translation corrections (metres)
    g = torch.full((len(GARMENT_REGIONS),), GARMENT_START, requires_grad=True)  # allowance bound * tanh(|g|)
    with torch.no_grad():  # the photos' own fits: template shape, no allowance
        bare = torch.zeros_like(g)
        before = {k: float(v) for k, v in prob.terms(z, dpose, dcam, bare, prob.match(z, dpose, dcam, bare)).items()}

    def minimise(params: list[Tensor], iters: int) -> None:
        """L-BFGS on the outline correspondences of its start (a smooth objective). Second-order steps because
        the shape's directions are badly scaled against each other (height and age mostly scale the body, which
        the camera's distance undoes), where first-order steps wander."""
        matches = prob.match(z, dpose, dcam, g)
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=iters, history_size=20, tolerance_grad=1e-9,
                                tolerance_change=1e-12, line_search_fn="strong_wolfe")  # fmt: skip
        free = lambda t: t if any(t is q for q in params) else t.detach()  # noqa: E731
        rest = None
        if not any(z is q for q in params):  # the shape is held: its rest body once, without a gradient
            with torch.no_grad():
                rest = shaped_rest(rig, prob.shape(z))

        def closure() -> Tensor:
            opt.zero_grad()
            loss = sum(prob.terms(free(z), free(dpose), free(dcam), free(g), matches, rest).values())
            loss.backward()
            return loss

        opt.step(closure)

    for _ in range(cfg.rounds):  # the poses settle first, on the template's shape
        minimise([dpose, dcam], cfg.pose_steps)
    for _ in range(cfg.rounds):  # then shape and poses in turn (together, the camera's and poses' variables, of far
        minimise([z, g] if cfg.garment > 0 else [z], cfg.steps)  # larger curvature, take all of L-BFGS's steps
        # and the shape hardly moves; the clothing allowance goes with the shape: both are the person's)
        minimise([dpose, dcam], cfg.pose_steps)
    with torch.no_grad():
        after = {k: float(v) for k, v in prob.terms(z, dpose, dcam, g, prob.match(z, dpose, dcam, g)).items()}
        shape = prob.shape(z)
        garment = prob.garment(g) if cfg.garment > 0 else None
        _, _, _, R, cams = prob.posed(z, dpose, dcam, g)
    if not (all(np.isfinite(list(after.values()))) and torch.isfinite(shape).all() and torch.isfinite(cams).all()):
        raise FloatingPointError("the joint body-shape fit diverged (non-finite values)")
    out = []
    for i, e in enumerate(ests):
        rot = torch.as_tensor(matrix_to_rotvec(R[i].double().numpy()), dtype=e.params.rotations.dtype)
        params = e.params.with_(shape=shape[None].to(e.params.shape), rotations=rot[None])
        cam = Camera(e.camera.K, cams[i].to(e.camera.T_cam_world), e.camera.width, e.camera.height)
        out.append(BodyEstimate(params, cam))
    return ShapeFit(shape.detach().clone(), tuple(out), before, after, garment)


def landmarks_uv(rig: BodyRig, est: BodyEstimate) -> np.ndarray:
    """[33, 2] pixels of the estimate's body landmarks that the fit uses (NaN for the others): its shape, pose and
    camera, placed as `posed_landmarks` places them."""
    from core.tracking.body_landmarks import NUM_POSE

    ids = landmark_ids()
    p = est.params
    with torch.no_grad():
        _, rest_poses = rig.rest(p.shape.to(rig.vertices) if rig.num_shape else None)
        chain = rig.chain(rest_poses.to(rig.vertices))
        rot = rig.bone_rotations(p.rotations.to(rig.vertices), p.gaze.to(rig.vertices))
        _, Wb = rig.pose(rot, chain, p.translation.to(rig.vertices))
        X = posed_landmarks(rig, Wb, chain.U, ids)
        cam = est.camera
        uv = project(X, cam.K.to(X)[None], cam.T_cam_world.to(X)[None])[0]
    out = np.full((NUM_POSE, 2), np.nan)
    out[list(ids)] = uv.double().numpy()
    return out
