"""Parallel, restartable generation of the synthetic world into tar shards, plus its dataset card.

Shard `{kind}-{split}-{shard:05d}.tar` holds samples `shard * per_shard ... + per_shard - 1`; its content is
a pure function of (world seed, split, kind, index, config), so a resumed run skips complete shards and
writes the missing ones identically to an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.data.shards import Sample, write_shard
from core.data.synth import SynthConfig, make_studio_sample, make_wild_sample
from core.threads import available_cores

log = logging.getLogger(__name__)

MAKERS: dict[str, Callable[[int, str, int, SynthConfig], Sample]] = {
    "wild": make_wild_sample,
    "studio": make_studio_sample,
}


@dataclass(frozen=True)
class ShardJob:
    kind: str  # "wild" | "studio"
    split: str
    shard: int
    indices: tuple[int, ...]
    path: str


@dataclass(frozen=True)
class GenerationPlan:
    out: Path
    world_seed: int
    counts: dict[str, dict[str, int]]  # split -> kind -> number of samples
    per_shard: int
    config: SynthConfig
    jobs: list[ShardJob] = field(default_factory=list)


def plan_generation(
    out: Path, counts: dict[str, dict[str, int]], *, world_seed: int, per_shard: int, config: SynthConfig
) -> GenerationPlan:
    """Every shard the run should end up with."""
    if per_shard < 1:
        raise ValueError(f"per_shard must be >= 1, got {per_shard}")
    jobs = []
    for split, by_kind in counts.items():
        for kind, n in by_kind.items():
            if kind not in MAKERS:
                raise ValueError(f"unknown sample kind {kind!r}; use one of {sorted(MAKERS)}")
            for s, start in enumerate(range(0, n, per_shard)):
                idx = tuple(range(start, min(n, start + per_shard)))
                jobs.append(ShardJob(kind, split, s, idx, str(Path(out) / split / f"{kind}-{split}-{s:05d}.tar")))
    return GenerationPlan(Path(out), world_seed, counts, per_shard, config, jobs)


def _run_job(args: tuple[ShardJob, int, SynthConfig]) -> tuple[str, int, float]:
    job, world_seed, cfg = args
    t = time.time()
    torch_threads_per_worker()
    samples = [MAKERS[job.kind](world_seed, job.split, i, cfg) for i in job.indices]
    write_shard(Path(job.path), samples)
    return job.path, len(samples), time.time() - t


def torch_threads_per_worker() -> None:
    """One intra-op thread per worker process: the pool, not torch, spreads work over the cores."""
    import torch  # noqa: PLC0415

    if mp.current_process().name != "MainProcess":
        torch.set_num_threads(1)


def run_generation(plan: GenerationPlan, *, workers: int | None = None, progress: bool = True) -> dict:
    """Write every missing shard of `plan` with `workers` processes, then the dataset card. Returns the card."""
    workers = min(4, available_cores()) if workers is None else workers
    todo = [j for j in plan.jobs if not Path(j.path).is_file()]
    log.info(
        "%d shards planned, %d already complete, %d to write with %d worker(s)",
        len(plan.jobs),
        len(plan.jobs) - len(todo),
        len(todo),
        workers,
    )
    args = [(j, plan.world_seed, plan.config) for j in todo]
    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=sum(len(j.indices) for j in todo), unit="sample", desc="generating")
    if workers <= 1 or len(todo) <= 1:
        results = map(_run_job, args)
        for path, n, dt in results:
            log.debug("wrote %s (%d samples, %.1f s)", path, n, dt)
            if bar is not None:
                bar.update(n)
    else:
        # spawn: safe with torch threads; each worker builds its own body model once.
        with mp.get_context("spawn").Pool(workers) as pool:
            for path, n, dt in pool.imap_unordered(_run_job, args):
                log.debug("wrote %s (%d samples, %.1f s)", path, n, dt)
                if bar is not None:
                    bar.update(n)
    if bar is not None:
        bar.close()
    return write_card(plan)


def write_card(plan: GenerationPlan) -> dict:
    """The dataset card (card.json and README.md) beside the shards: counts, resolution, splits, seed."""
    shards = {}
    for j in plan.jobs:
        p = Path(j.path)
        if not p.is_file():
            raise RuntimeError(f"shard {p} is missing after generation; run the same command again to resume")
        shards[str(p.relative_to(plan.out))] = {
            "kind": j.kind,
            "split": j.split,
            "samples": len(j.indices),
            "bytes": p.stat().st_size,
        }
    card = {
        "name": "lca-synthetic-world",
        "format": "webdataset-style tar shards (see core/data/shards.py)",
        "world_seed": plan.world_seed,
        "counts": plan.counts,
        "samples_per_shard": plan.per_shard,
        "resolution": [plan.config.width, plan.config.height],
        "config": asdict(plan.config),
        "splits": {
            "train": "pre-/post-training identities",
            "val": "validation identities (disjoint seeds)",
            "wild-test": "held-out wild benchmark identities",
            "studio-test": "held-out studio benchmark identities",
        },
        "identities_overlap": False,
        "shards": shards,
    }
    plan.out.mkdir(parents=True, exist_ok=True)
    tmp = plan.out / "card.json.tmp"
    tmp.write_text(json.dumps(card, indent=2))
    os.replace(tmp, plan.out / "card.json")
    lines = [
        "# Synthetic world of people",
        "",
        f"World seed {plan.world_seed}; {plan.config.width}x{plan.config.height} px; {plan.per_shard} samples per shard.",
        "",
        "| split | kind | samples |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {s} | {k} | {n} |" for s, d in plan.counts.items() for k, n in d.items()]
    if plan.config.closeup_size:
        n = plan.config.closeup_size
        lines += ["", f"Every frame also has a {n}x{n} px head close-up (its own camera zoomed onto the head)."]
    lines += [
        "",
        "Wild samples are monocular clips with noisy body estimates (`est_*`) and ground truth (`gt_*`);",
        "studio samples are multi-view captures with exact parameters and a lighting sweep.",
        "",
    ]
    (plan.out / "README.md").write_text("\n".join(lines))
    return card
