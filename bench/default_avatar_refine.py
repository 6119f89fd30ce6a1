"""The shipped default avatar (assets/default_avatar.safetensors): the bundled example identity's feed-forward avatar,
refined per subject on its own synthetic capture, as the paper personalises an avatar.

The shipped avatar's identity is the bundled example assets/examples/studio-test-2.safetensors, benchmark identity
`studio-test #2` (curly hair off the face: eyes, brows and lips in view; `python -m core.eval.bundle_examples --only
studio-test --index 2`); its ground truth regenerates from (world seed, split, index) (`core.data.benchmarks`). Its
capture here is rendered from that ground truth with exact cameras and bodies: full-body views around the person and
head close-ups (a camera with a longer focal length aimed at the head), in the rest pose with a neutral face, with
the jaw open, with the eyes shut, and in one motion pose with a smile. Targets are the person on black under a flat
white light (colour = albedo), as `core.model.personalise` renders, with the person masks (coverage is fitted too);
some views (body and face) are held out and scored person-only (PSNR inside the true person mask) before and after.
Gaussians that lie mostly off the person masks over the fitted views are then made transparent (`--prune`). Writes
the avatar (half precision) and a JSON.

The shipped file is three stages: two on one GPU (about 50 s each on an NVIDIA H200), the last on a CPU (about 8 minutes
on a shared 2-core machine, mostly rendering the capture); bench/results/default_avatar_{refine,refine_face,prune}.json:
python bench/default_avatar_refine.py --example assets/examples/studio-test-2.safetensors --steps 3000 --size 384 \
    --face-span 0.6 --prune 0 --out stage1.safetensors --json bench/results/default_avatar_refine.json
python bench/default_avatar_refine.py --example assets/examples/studio-test-2.safetensors --views face \
    --init stage1.safetensors --steps 3000 --size 384 --prune 0 --out stage2.safetensors \
    --json bench/results/default_avatar_refine_face.json
python bench/default_avatar_refine.py --example assets/examples/studio-test-2.safetensors --init stage2.safetensors \
    --steps 0 --size 160 --face-span 0.6 --out assets/default_avatar.safetensors \
    --json bench/results/default_avatar_prune.json
python bench/default_avatar_refine.py --steps 4 --size 48 --out /tmp/a.safetensors --json /tmp/a.json  # quick
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from core.body.records import BodyParams  # noqa: E402
from core.raster.types import Camera  # noqa: E402

log = logging.getLogger("bench.default_avatar_refine")
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "assets" / "examples" / "studio-test-2.safetensors"  # the default avatar's identity

# (name, expression coefficients, motion or None: the rest pose). Face-moving expressions are shown in the rest pose.
POSES: tuple[tuple[str, dict[str, float], str | None], ...] = (
    ("neutral", {}, None),
    ("jaw open", {"jawOpen": 1.0}, None),
    ("eyes shut", {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, None),
    ("walk, smile", {"mouthSmileLeft": 0.8, "mouthSmileRight": 0.8, "cheekSquintLeft": 0.3, "cheekSquintRight": 0.3},
     "walk"),
)  # fmt: skip
# Per pose: azimuths (degrees, 0 = in front) of the body views, fitted on and held out, and (azimuth, elevation) of
# the head close-ups (elevation: the camera's rise per metre of distance). The studio's face view is level and
# frontal, and this identity's long hair hangs over its face from above and from the side, so most close-ups are
# level and near the front.
BODY_FIT = ((0, 45, 90, 135, 180, 225, 270, 315), (0, 60), (0, -60), (20, 110, 200, 290))
BODY_HELD = ((160,), (), (), (65,))
FACE_FIT = (
    ((0, 0.0), (-15, 0.0), (15, 0.0), (-35, 0.0), (35, 0.0), (-70, 0.0), (70, 0.0), (0, 0.2), (0, -0.1)),
    ((0, 0.0), (-20, 0.0), (20, 0.0), (0, 0.15)),
    ((0, 0.0), (-20, 0.0), (20, 0.0), (0, 0.15)),
    ((0, 0.0), (-30, 0.0)),
)
FACE_HELD = (((8, 0.0), (-25, 0.1)), ((10, 0.0),), ((-10, 0.0),), ())
FACE_SPAN_M = 0.36  # the head close-up's picture spans this much (metres) at the head: head and hair fill it
FACE_DISTANCE_M = 1.2
# A second stage (`--views face`, from the first stage's avatar): tighter level close-ups of the face itself (eyes to
# chin), more of them with the jaw open and the eyes shut, and a few body views that keep the body as it is.
FACE_VIEWS = {
    "poses": POSES,
    "body_fit": ((0, 90, 180, 270), (), (), (20,)),
    "body_held": ((160,), (), (), (65,)),
    "face_fit": (
        ((0, 0.0), (-10, 0.0), (10, 0.0), (-20, 0.0), (20, 0.0), (0, 0.1)),
        ((0, 0.0), (-10, 0.0), (10, 0.0), (-20, 0.0), (0, -0.05)),
        ((0, 0.0), (-10, 0.0), (10, 0.0), (20, 0.0)),
        ((0, 0.0),),
    ),
    "face_held": (((5, 0.0),), ((5, 0.0),), ((-5, 0.0),), ()),
    "face_span": 0.24,
    "face_drop": 0.03,
}


@dataclass
class Capture:
    """The views of one identity: person on black [N, 3, S, S], person masks [N, S, S], exact body estimates."""

    images: Tensor
    masks: Tensor
    estimates: list  # [N] core.model.crops.BodyEstimate
    names: list[str]  # "<pose> body|face <azimuth>"
    face: Tensor  # [N] bool: a head close-up
    held_out: Tensor  # [N] bool: scored only

    def subset(self, keep: Tensor) -> Capture:
        idx = torch.nonzero(keep).flatten().tolist()
        return Capture(
            self.images[idx], self.masks[idx], [self.estimates[i] for i in idx], [self.names[i] for i in idx],
            self.face[idx], self.held_out[idx],
        )  # fmt: skip


def example_identity(path: Path) -> tuple[str, int]:
    """(benchmark, index) of a bundled example, from its name ("studio-test #0")."""
    from core.model.examples import load_example

    m = re.fullmatch(r"(\S+) #(\d+)", load_example(path).name)
    if m is None:
        raise ValueError(f"{path.name}: its name does not say which benchmark identity it is")
    return m.group(1), int(m.group(2))


def _look_at(azimuth_deg: float, elevation: float, target: np.ndarray, distance: float) -> np.ndarray:
    from core.data.cameras import look_at_matrix

    a = math.radians(azimuth_deg)
    eye = target + distance * np.array([math.sin(a), elevation, math.cos(a)])  # orbit_views' cameras at elevation 0.1
    return look_at_matrix(eye, target)


def build_capture(
    benchmark: str,
    index: int,
    *,
    size: int = 128,
    world_seed: int = 0,
    detail: float = 1.0,
    shape: Tensor | None = None,  # [S] the identity's estimated body shape, carried in the estimates
    poses=POSES,
    body_fit=BODY_FIT,
    face_fit=FACE_FIT,
    body_held=BODY_HELD,
    face_held=FACE_HELD,
    face_span: float = FACE_SPAN_M,
    face_drop: float = 0.0,  # the close-ups aim this far (metres) below the eyes
) -> Capture:
    """Render the identity's capture from its regenerated ground truth (see the module docstring)."""
    from core.data.benchmarks import LOOSE_BENCHMARK, loose_identity
    from core.data.body_bridge import world_body
    from core.data.cameras import intrinsics, orbit_views
    from core.data.identity import build_identity
    from core.data.identity_spec import draw_identity_spec
    from core.data.motion import generate_motion
    from core.data.render import lit_gaussians, pose_identity, render_views
    from core.data.seeds import identity_seed, rng_for
    from core.model.crops import BodyEstimate
    from core.raster.lighting import uniform_lighting

    if benchmark == LOOSE_BENCHMARK:
        index = loose_identity(world_seed, index)
    body = world_body()
    spec = draw_identity_spec(identity_seed(world_seed, benchmark, index))
    identity = build_identity(spec, body, detail=detail)
    shape = (torch.zeros(0) if shape is None else shape.float())[None]  # [1, S] the estimates' (drive ignores it)
    rng = rng_for("default-avatar-capture", spec.seed)
    J, names = body.num_bones, body.expression_names
    rots, exprs = [], []
    for _, expr, motion in poses:
        r = np.zeros((J, 3))
        if motion is not None:
            clip, _, _ = generate_motion(rng, body.bone_names, 8, motion=motion)
            r = clip[4]
        rots.append(r)
        exprs.append(np.array([float(expr.get(n, 0.0)) for n in names]))
    P = len(poses)
    rot_t = torch.as_tensor(np.stack(rots), dtype=torch.float32)
    expr_t = torch.as_tensor(np.stack(exprs), dtype=torch.float32)
    posed = pose_identity(identity, body, rot_t, torch.zeros(P, 3), expr_t, torch.zeros(P, 2))
    height = float(identity.rest.vertices[:, 1].max())
    K_body, T_front = orbit_views(1, size, size, body_height=height)  # full body in frame, as the benchmarks' views
    centre = np.array([0.0, 0.5 * height, 0.0])
    body_dist = float(np.linalg.inv(T_front[0])[2, 3])  # the front camera's distance along z
    K_face = intrinsics(size * FACE_DISTANCE_M / face_span, size, size)
    eyes = [body.bone_index["eye.L"], body.bone_index["eye.R"]]
    light = uniform_lighting(1.0)
    images, masks, ests, labels, is_face, held = [], [], [], [], [], []
    for p, (pname, _, _) in enumerate(poses):
        head = posed.body.joints[p, eyes].mean(0).double().numpy() - np.array([0.0, face_drop, 0.0])
        views = []  # (T, K, label, face, held)
        for azs, held_flag in ((body_fit[p], False), (body_held[p], True)):
            views += [
                (_look_at(a, 0.1, centre, body_dist), K_body[0], f"{pname} body {a}", False, held_flag) for a in azs
            ]
        for azs, held_flag in ((face_fit[p], False), (face_held[p], True)):
            for a, e in azs:
                label = f"{pname} face {a}" + (f" up {e:g}" if e else "")
                views.append((_look_at(a, e, head, FACE_DISTANCE_M), K_face, label, True, held_flag))
        if not views:
            continue
        lit = lit_gaussians(identity, posed, p, light)
        Ks = np.stack([v[1] for v in views])
        Ts = np.stack([v[0] for v in views])
        cams = Camera(torch.as_tensor(Ks, dtype=torch.float32), torch.as_tensor(Ts, dtype=torch.float32), size, size)
        col, alpha, _ = render_views(lit, cams, with_parts=False)
        for v, (T, K, label, face, held_flag) in enumerate(views):
            images.append(torch.as_tensor(col[v]).permute(2, 0, 1).clamp(0, 1))
            masks.append(torch.as_tensor(alpha[v]))
            params = BodyParams(
                shape=shape, rotations=rot_t[p : p + 1], expression=expr_t[p : p + 1],
                gaze=torch.zeros(1, 2), translation=torch.zeros(1, 3),
            )  # fmt: skip
            cam = Camera(torch.as_tensor(K, dtype=torch.float32), torch.as_tensor(T, dtype=torch.float32), size, size)
            ests.append(BodyEstimate(params, cam))
            labels.append(label)
            is_face.append(face)
            held.append(held_flag)
    return Capture(
        torch.stack(images).float(), torch.stack(masks).float(), ests, labels,
        torch.tensor(is_face), torch.tensor(held),
    )  # fmt: skip


def score(avatar, capture: Capture) -> dict:
    """Person-only PSNR (dB, inside the true person mask) per view and its means over body and face views."""
    from core.model.personalise import render_through
    from core.train.losses import psnr

    pred = torch.stack([render_through(avatar, est)[0].cpu() for est in capture.estimates])  # [N, S, S, 3]
    target = capture.images.permute(0, 2, 3, 1)
    per = psnr(pred, target, (capture.masks > 0.5).float()[..., None]).tolist()
    face, body = capture.face.tolist(), [not f for f in capture.face.tolist()]
    mean = lambda sel: float(np.mean([v for v, s in zip(per, sel, strict=True) if s])) if any(sel) else None  # noqa: E731
    return {"person_psnr": mean(body), "face_psnr": mean(face), "per_view": dict(zip(capture.names, per, strict=True))}


def capture_sheet(capture: Capture, path: Path, columns: int = 10) -> Path:
    """Every view of `capture` in a grid (PNG), for a look at what the avatar is refined on."""
    from core.io import save_image_bgr

    n, _, S, _ = capture.images.shape
    rows = -(-n // columns)
    grid = np.zeros((rows * S, columns * S, 3), np.uint8)
    for i, img in enumerate(capture.images):
        r, c = divmod(i, columns)
        grid[r * S : (r + 1) * S, c * S : (c + 1) * S] = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return save_image_bgr(path, grid[..., ::-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--example", type=Path, default=EXAMPLE, help="the bundled example whose identity is refined")
    ap.add_argument("--model", type=Path, default=ROOT / "assets" / "default_model.safetensors")
    ap.add_argument("--steps", type=int, default=450, help="refinement steps (0: only prune the --init avatar)")
    ap.add_argument(
        "--prune",
        type=float,
        default=0.8,
        help="make Gaussians mostly off the person transparent "
        "(their off-person share over the fitted views above this; 0: keep all)",
    )
    ap.add_argument("--size", type=int, default=128, help="side of every view (body views and close-ups), pixels")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--acap-weight", type=float, default=10.0)
    ap.add_argument("--silhouette-weight", type=float, default=0.5, help="fit coverage to the masks (0: colour only)")
    ap.add_argument("--face-weight", type=int, default=2, help="each close-up is fitted this many times per pass")
    ap.add_argument("--views", choices=["capture", "face"], default="capture", help="the view set (face: FACE_VIEWS)")
    ap.add_argument("--face-span", type=float, default=None, help="metres the close-ups span (default: the view set's)")
    ap.add_argument("--init", type=Path, default=None, help="refine this avatar file (default: the example's decode)")
    ap.add_argument("--detail", type=float, default=1.0, help="Gaussian count factor of the ground truth")
    ap.add_argument("--out", type=Path, default=ROOT / "assets" / "default_avatar.safetensors")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "default_avatar_refine.json")
    ap.add_argument("--sheet", type=Path, default=None, help="also write every view in a grid (PNG)")
    ap.add_argument("--full-precision", action="store_true", help="save float32 (default: half precision)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="where to refine")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from tqdm import tqdm

    from core.env import device_name
    from core.io import write_json
    from core.model.avatar import Avatar
    from core.model.examples import decode_example
    from core.model.personalise import off_person_share, personalise, prune_off_person
    from core.train.export import model_from_checkpoint

    t_all, cpu0 = time.perf_counter(), time.process_time()
    benchmark, index = example_identity(args.example)
    model, _ = model_from_checkpoint(str(args.model), args.device)
    model = model.float().eval()
    feed_forward, ex = decode_example(model, args.example)
    start = feed_forward if args.init is None else Avatar.load(args.init, device=args.device)
    log.info("%s is benchmark identity %s #%d; rendering its capture at %d px", args.example.name, benchmark, index,
             args.size)  # fmt: skip
    t0 = time.perf_counter()
    views = dict(FACE_VIEWS) if args.views == "face" else {}
    if args.face_span is not None:
        views["face_span"] = args.face_span
    capture = build_capture(benchmark, index, size=args.size, detail=args.detail, shape=ex.shape, **views)
    t_capture = time.perf_counter() - t0
    if args.sheet is not None:
        capture_sheet(capture, args.sheet)
    fit, held = capture.subset(~capture.held_out), capture.subset(capture.held_out)
    log.info("%d views fitted (%d close-ups), %d held out (%d close-ups) in %.0f s", len(fit.names),
             int(fit.face.sum()), len(held.names), int(held.face.sum()), t_capture)  # fmt: skip
    before = score(start, held)
    ff = before if args.init is None else score(feed_forward, held)
    order = [i for i in range(len(fit.names)) for _ in range(args.face_weight if fit.face[i] else 1)]
    order = [order[i] for i in torch.randperm(len(order), generator=torch.Generator().manual_seed(0)).tolist()]
    images = (fit.images * (fit.masks[:, None] > 0.5))[order]  # the person cut out by its mask, on black
    bar = tqdm(total=args.steps, desc="refining", unit="step", dynamic_ncols=True)

    def progress(step: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")

    t0 = time.perf_counter()
    refined, losses = start, [math.nan]
    if args.steps > 0:
        refined, losses = personalise(
            start, images, [fit.estimates[i] for i in order], steps=args.steps, lr=args.lr,
            acap_weight=args.acap_weight, progress=progress, log_every=0,
            masks=fit.masks[order] if args.silhouette_weight > 0 else None, silhouette_weight=args.silhouette_weight,
        )  # fmt: skip
    bar.close()
    t_refine = time.perf_counter() - t0
    pruned, unpruned = 0, None
    if args.prune > 0:
        unpruned = score(refined, held)
        refined, pruned = prune_off_person(
            refined, off_person_share(refined, fit.estimates, fit.masks), threshold=args.prune
        )
        log.info("pruned %d Gaussians off the person (share > %g): held out body %.2f -> %.2f dB", pruned, args.prune,
                 unpruned["person_psnr"] or 0, score(refined, held)["person_psnr"] or 0)  # fmt: skip
    after = score(refined, held)
    every_4th = fit.subset(torch.arange(len(fit.names)) % 4 == 0)
    fit_before, fit_after = score(start, every_4th), score(refined, every_4th)
    description = (
        f"{ex.name}: the bundled example identity decoded by the shipped model, then refined on its synthetic "
        f"capture ({len(fit.names)} views: body and head close-ups, jaw open, eyes shut), {args.steps} steps"
    )
    if args.init is not None:
        first = (Avatar.read_description(args.init) or args.init.name).rstrip(".")
        closer = "closer views of the face" if args.views == "face" else "views"
        description = f"{first}, then {args.steps} steps on {len(fit.names)} {closer}"
        if args.steps == 0:
            description = first
    if pruned:
        description += f"; {pruned} Gaussians off the person pruned"
    path = refined.save(args.out, half=not args.full_precision, description=description)
    size_mb = os.path.getsize(path) / 1e6
    result = {
        "bench": "default_avatar_refine", "device": device_name(), "example": args.example.name,
        "identity": f"{benchmark} #{index}", "description": description, "steps": args.steps, "size": args.size,
        "lr": args.lr, "acap_weight": args.acap_weight, "silhouette_weight": args.silhouette_weight,
        "face_weight": args.face_weight,
        "views_fitted": fit.names, "views_held_out": held.names,
        "views": args.views, "face_span": args.face_span, "init": None if args.init is None else str(args.init),
        "held_out": {"feed_forward": ff, "before": before, "after": after, "after_refine_before_prune": unpruned},
        "prune_threshold": args.prune, "pruned": pruned,
        "fitted_every_4th": {"before": fit_before, "after": fit_after},
        "loss_first": losses[0], "loss_last": losses[-1],
        "seconds": {"capture": t_capture, "refine": t_refine, "total": time.perf_counter() - t_all},
        "cpu_seconds": time.process_time() - cpu0, "torch_threads": torch.get_num_threads(),
        "file": str(args.out), "file_mb": size_mb, "half_precision": not args.full_precision,
        "headline": "person-only PSNR (dB) inside the true person mask, flat white light, on black",
    }  # fmt: skip
    write_json(args.json, result)
    log.info("held out: body %.2f -> %.2f dB, face %.2f -> %.2f dB; %s %.1f MB", before["person_psnr"] or 0,
             after["person_psnr"] or 0, before["face_psnr"] or 0, after["face_psnr"] or 0, path, size_mb)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
