"""Fixtures shared by several test files."""

import os
import tempfile
from pathlib import Path

import pytest


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--update-screenshots",
        action="store_true",
        help="GUI tests rewrite the reference screenshots in docs/screenshots/ (otherwise they save to a temp folder)",
    )


def pytest_configure(config) -> None:
    from reference_shots import SCRATCH_ENV, UPDATE_ENV

    if config.getoption("--update-screenshots"):
        os.environ[UPDATE_ENV] = "1"  # also for the child processes the GUI tests start
    elif not os.environ.get(SCRATCH_ENV):  # one temporary folder for the whole session and its child processes
        os.environ[SCRATCH_ENV] = tempfile.mkdtemp(prefix="lca-screenshots-")


@pytest.fixture(scope="session", autouse=True)
def user_folders(tmp_path_factory) -> None:
    """The studio's data and cache folders (core.paths) point into the session's temporary folder, also for the
    child processes tests start: a test run writes nothing under the user's home or the repository."""
    for env, name in (("LCA_DATA_DIR", "data"), ("LCA_CACHE_DIR", "cache")):
        os.environ.setdefault(env, str(tmp_path_factory.mktemp(name)))


@pytest.fixture(scope="session")
def shards(tmp_path_factory) -> Path:
    """A tiny synthetic data set (2 wild clips, 1 studio capture, 32 px), generated once per test session."""
    from core.data.generate import plan_generation, run_generation
    from core.data.synth import SynthConfig

    out = tmp_path_factory.mktemp("shards")
    cfg = SynthConfig(
        width=32, height=32, wild_frames=3, studio_poses=1, studio_cameras=(8, 8), studio_lights=0, detail=0.08
    )
    plan = plan_generation(out, {"train": {"wild": 2, "studio": 1}}, world_seed=0, per_shard=1, config=cfg)
    run_generation(plan, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def bench_root(tmp_path_factory) -> Path:
    """Held-out benchmark identities shared by the evaluation tests. They all ask for 32 px, detail 0.08
    (`SynthConfig(32, 32, detail=0.08)`) and `write_benchmark` keeps the shards it finds (bit-identical anyway),
    so each identity is rendered once per session instead of once per test (10-20 s each on a CPU)."""
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="session")
def real_footage(tmp_path_factory) -> Path:
    """What `prepare video` writes for a clip and a photo, made from a rendered clip (fitted body = truth): a 5-frame
    clip of 48 px (references at 0 and 0.3 s, scored frames at 1.5 and 2 s, frame 2 unused) and its first frame alone
    as a photo."""
    from dataclasses import replace

    from core.data.shards import write_shard
    from core.data.video_bench import frontal_clip

    folder = tmp_path_factory.mktemp("real")
    clip = frontal_clip(0, frames=5, size=48, detail=0.05)
    arrays = {k.replace("gt_", "est_"): v for k, v in clip.arrays.items()}
    meta = {**clip.meta, "kind": "video", "times_s": [0.0, 0.3, 0.6, 1.5, 2.0]}
    clip = replace(clip, key="video-clip", meta=meta, arrays=arrays)
    photo = replace(
        clip, key="video-photo", rgb=clip.rgb[:1], mask=clip.mask[:1], meta={**meta, "times_s": [0.0]},
        arrays={k: v if k == "est_shape" else v[:1] for k, v in arrays.items()},
    )  # fmt: skip
    write_shard(folder / "video" / "video-000000.tar", [clip, photo])
    return folder
