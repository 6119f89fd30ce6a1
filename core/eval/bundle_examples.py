"""The bundled example inputs (assets/examples) from the held-out benchmark shards: the first identity of each.

`python -m core.eval.bundle_examples --bench data/benchmarks --out assets/examples`
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from core.model.examples import ExampleInputs, save_example

log = logging.getLogger(__name__)


def examples_from_benchmarks(bench_root: str | Path, crop_size: int = 192, face_size: int = 96) -> list[ExampleInputs]:
    """The first identity of each held-out benchmark as example inputs."""
    from core.data.benchmarks import BENCHMARKS, load_benchmark
    from core.train.evaluate import reference_crops, reference_views

    out = []
    for name in BENCHMARKS:
        shards = sorted((Path(bench_root) / name).glob("*.tar"))
        if not shards:
            log.warning("no %s shards under %s", name, bench_root)
            continue
        sample = load_benchmark(shards[0])[0]
        full, face = reference_crops(sample, crop_size, face_size)
        to8 = lambda x: (x * 255).round().clamp(0, 255).to(torch.uint8)  # noqa: E731
        shape = torch.as_tensor(sample.arrays["est_shape"]).float()
        views = reference_views(sample, crop_size)
        out.append(ExampleInputs(f"{name} #0", to8(full), to8(face), shape, f"{shards[0].name} (held out)", views))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bench", default="data/benchmarks")
    p.add_argument("--out", default="assets/examples")
    args = p.parse_args(argv)
    for ex in examples_from_benchmarks(args.bench):
        path = save_example(Path(args.out) / f"{ex.name.split()[0]}.safetensors", ex)
        log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(main())
