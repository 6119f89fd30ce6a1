"""Held-out benchmark sets: `wild-test` and `studio-test` identities, each with 8 reference images and targets
at novel views and novel poses. Fixed by (world seed, split, index), so they regenerate bit-identically.

A benchmark sample is a clip with C = 1 whose frames play roles (`arrays["role"]`): 0 reference,
1 novel view (reference pose, orbit camera), 2 novel pose (unseen pose and expression, orbit camera).
Generated with `SynthConfig.closeup_size` N, the scored views also have their head close-ups (`core.data.closeups`;
the references carry blank ones, never rendered, so that every frame has one).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from core.data.backgrounds import studio_background
from core.data.body_bridge import world_body
from core.data.cameras import orbit_views, to_camera
from core.data.closeups import closeup_intrinsics, render_closeups, to_uint8
from core.data.identity import build_identity
from core.data.identity_spec import draw_identity_spec
from core.data.lighting import studio_lighting
from core.data.motion import expression_vector, generate_motion
from core.data.render import lit_gaussians, pose_identity, render_views
from core.data.seeds import identity_seed, rng_for
from core.data.shards import Sample, iter_shard, write_shard
from core.data.synth import SynthConfig, make_studio_sample, make_wild_sample

ROLE_REF, ROLE_NOVEL_VIEW, ROLE_NOVEL_POSE = 0, 1, 2
BENCHMARKS: tuple[str, ...] = ("wild-test", "studio-test")
# Loose garments (skirts and dresses; the world has no long coats: its jackets sit close to the body): studio
# references of identities of their own split that wear one, for the loose-garment deformer's evaluation.
LOOSE_BENCHMARK = "loose-test"
ALL_BENCHMARKS: tuple[str, ...] = (*BENCHMARKS, LOOSE_BENCHMARK)


def wears_loose_garment(spec) -> bool:
    """A skirt or a dress (an IdentitySpec)."""
    return spec.top.kind == "dress" or (spec.bottom is not None and spec.bottom.kind == "skirt")


def loose_identity(world_seed: int, index: int) -> int:
    """The identity index (in split `loose-test`) of the `index`-th identity of that split who wears a loose
    garment: the split's identities are drawn in order and the others skipped."""
    found, j = -1, -1
    while found < index:
        j += 1
        if wears_loose_garment(draw_identity_spec(identity_seed(world_seed, LOOSE_BENCHMARK, j))):
            found += 1
    return j


def _references(name: str, world_seed: int, index: int, cfg: SynthConfig, num_refs: int) -> Sample:
    """The 8 reference images as a C = 1 clip (wild: clip frames; studio: the first pose seen by 8 cameras)."""
    if name == "wild-test":
        return make_wild_sample(world_seed, name, index, replace(cfg, wild_frames=num_refs))
    s = make_studio_sample(
        world_seed, name, index, replace(cfg, studio_poses=1, studio_lights=0, studio_cameras=(num_refs, num_refs))
    )
    a = {k: (v[0][:, None] if v.ndim >= 2 and v.shape[:2] == (1, num_refs) else v) for k, v in s.arrays.items()}
    for k in [k for k in a if k.startswith(("gt_", "est_", "env_", "key_")) and not k.endswith("shape")]:
        a[k] = np.repeat(a[k], num_refs, 0)
    return Sample(
        s.key, s.meta, a, s.rgb[0][:, None], s.mask[0][:, None], None if s.parts is None else s.parts[0][:, None]
    )


def make_benchmark_sample(
    name: str,
    world_seed: int,
    index: int,
    cfg: SynthConfig,
    *,
    num_refs: int = 8,
    num_views: int = 4,
    num_poses: int = 2,
) -> Sample:
    """References plus `num_views` novel views of the reference pose and `num_views` views of each of `num_poses`
    novel poses, rendered clean (studio light, grey backdrop) with exact parameters."""
    if name not in ALL_BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; use one of {ALL_BENCHMARKS}")
    if name == LOOSE_BENCHMARK:
        index = loose_identity(world_seed, index)
    ref = _references(name, world_seed, index, replace(cfg, closeup_size=0), num_refs)
    body = world_body()
    spec = draw_identity_spec(identity_seed(world_seed, name, index))
    identity = build_identity(spec, body, detail=cfg.detail)
    rng = rng_for("benchmark-targets", spec.seed)
    a = ref.arrays
    poses = [a["gt_pose"][0]]
    exprs = [a["gt_expression"][0]]
    for _ in range(num_poses):
        r, _, _ = generate_motion(rng, body.bone_names, 8, motion=str(rng.choice(["walk", "wave", "reach", "dance"])))
        poses.append(r[int(rng.integers(8))])
        exprs.append(
            expression_vector(
                body.expression_names, str(rng.choice(["smile", "surprise", "pucker"])), rng.uniform(0.3, 1.0)
            )
        )
    P = len(poses)
    posed = pose_identity(
        identity,
        body,
        torch.as_tensor(np.stack(poses), dtype=torch.float32),
        torch.zeros(P, 3),
        torch.as_tensor(np.stack(exprs), dtype=torch.float32),
        torch.zeros(P, 2),
    )
    K, T = orbit_views(num_views, cfg.width, cfg.height, body_height=float(identity.rest.vertices[:, 1].max()))
    K, T = K.copy(), T.copy()
    offset = rng.uniform(0, 2 * np.pi / num_views)  # targets never sit exactly on a reference camera
    c, s = np.cos(offset), np.sin(offset)
    yaw = np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1.0]])
    T = T @ yaw
    bg = studio_background(cfg.height, cfg.width)
    light = studio_lighting()
    head_idx = np.nonzero(np.isin(body.regions.numpy(), [0, 1, 2]))[0]
    from core.data.synth import _head_boxes  # noqa: PLC0415  (shared helper)

    verts = posed.body.vertices.float().numpy()
    boxes = np.stack([_head_boxes(np.repeat(verts[p : p + 1], num_views, 0), head_idx, K, T) for p in range(P)])
    N = cfg.closeup_size
    Kc = closeup_intrinsics(boxes, np.repeat(K[None], P, 0), N) if N else None  # [P, V, 3, 3]
    rgb, mask, parts, roles, Ks, Ts, pose_rows, expr_rows = [], [], [], [], [], [], [], []
    close_rgb, close_mask = [], []
    for p in range(P):
        lit = lit_gaussians(identity, posed, p, light)
        col, alpha, lab = render_views(lit, to_camera(K, T, cfg.width, cfg.height))
        rgb.append(np.round((col + (1 - alpha[..., None]) * bg) * 255).clip(0, 255).astype(np.uint8))
        mask.append(np.round(alpha * 255).astype(np.uint8))
        parts.append(lab)
        if N:
            col, alpha = render_closeups(lit, K, Kc[p], T, N, bg)
            close_rgb.append(to_uint8(col))
            close_mask.append(to_uint8(alpha))
        roles += [ROLE_NOVEL_VIEW if p == 0 else ROLE_NOVEL_POSE] * num_views
        Ks.append(K)
        Ts.append(T)
        pose_rows += [poses[p]] * num_views
        expr_rows += [exprs[p]] * num_views
    n_t = P * num_views
    boxes = boxes.reshape(n_t, 4)
    arrays = dict(a)
    arrays["K"] = np.concatenate([a["K"], np.concatenate(Ks)[:, None].astype(np.float32)])
    arrays["T_cam_world"] = np.concatenate([a["T_cam_world"], np.concatenate(Ts)[:, None].astype(np.float32)])
    arrays["head_box"] = np.concatenate([a["head_box"], boxes[:, None]])
    for pre in ("gt_", "est_"):
        tgt_pose = np.stack(pose_rows).astype(np.float32)
        arrays[f"{pre}pose"] = np.concatenate([a[f"{pre}pose"], tgt_pose])
        arrays[f"{pre}expression"] = np.concatenate([a[f"{pre}expression"], np.stack(expr_rows).astype(np.float32)])
        arrays[f"{pre}translation"] = np.concatenate([a[f"{pre}translation"], np.zeros((n_t, 3), np.float32)])
        arrays[f"{pre}gaze"] = np.concatenate([a[f"{pre}gaze"], np.zeros((n_t, 2), np.float32)])
    for k in ("env_sh", "key_dir", "key_rgb"):
        v = {"env_sh": light.env_sh, "key_dir": light.key_dir, "key_rgb": light.key_rgb}[k]
        arrays[k] = np.concatenate([a[k], np.repeat(v[None], n_t, 0).astype(np.float32)])
    arrays["role"] = np.array([ROLE_REF] * num_refs + roles, np.int8)
    meta = dict(ref.meta, kind="benchmark", benchmark=name, num_refs=num_refs)
    out = Sample(
        key=f"bench-{name}-{index:06d}",
        meta=meta,
        arrays=arrays,
        rgb=np.concatenate([ref.rgb, np.concatenate(rgb)[:, None]]),
        mask=np.concatenate([ref.mask, np.concatenate(mask)[:, None]]),
        parts=np.concatenate([ref.parts, np.concatenate(parts)[:, None]]) if ref.parts is not None else None,
    )
    if N:  # blank close-ups for the references (never scored), then the scored views'
        blank = np.zeros((num_refs, 1, N, N), np.uint8)
        arrays["closeup_K"] = np.concatenate([closeup_intrinsics(a["head_box"], a["K"], N), Kc.reshape(n_t, 1, 3, 3)])
        out.closeup_rgb = np.concatenate([np.repeat(blank[..., None], 3, -1), np.concatenate(close_rgb)[:, None]])
        out.closeup_mask = np.concatenate([blank, np.concatenate(close_mask)[:, None]])
    return out


def write_benchmark(
    out: Path,
    name: str,
    count: int,
    cfg: SynthConfig,
    *,
    world_seed: int = 0,
    progress: bool = False,
    workers: int = 1,
) -> list[Path]:
    """One shard per identity under `out/name/`; existing shards are kept (they are bit-identical anyway).
    `progress`: a progress bar (with time left) over the identities still to generate; `workers` > 1 spreads
    the identities over that many processes (one torch thread each)."""
    paths = [Path(out) / name / f"{name}-{i:05d}.tar" for i in range(count)]
    todo = [(str(paths[i]), name, world_seed, i, cfg) for i, p in enumerate(paths) if not p.is_file()]
    if todo:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(
            total=len(todo), desc=f"generating {name}", unit="identity", disable=not progress, dynamic_ncols=True
        )
        if workers <= 1 or len(todo) <= 1:
            for job in todo:
                _write_one(job)
                bar.update(1)
        else:
            import multiprocessing as mp  # noqa: PLC0415

            with mp.get_context("spawn").Pool(min(workers, len(todo))) as pool:  # spawn: safe with torch threads
                for _ in pool.imap_unordered(_write_one, todo):
                    bar.update(1)
        bar.close()
    return paths


def _write_one(job: tuple[str, str, int, int, SynthConfig]) -> None:
    """One benchmark identity into its shard (run in a worker process or in-line)."""
    from core.data.generate import torch_threads_per_worker  # noqa: PLC0415

    torch_threads_per_worker()
    path, name, world_seed, i, cfg = job
    write_shard(Path(path), [make_benchmark_sample(name, world_seed, i, cfg)])


def load_benchmark(path: Path) -> list[Sample]:
    """All benchmark samples of one shard."""
    return list(iter_shard(path))
