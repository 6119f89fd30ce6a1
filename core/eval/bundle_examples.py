"""The bundled example inputs (assets/examples) from the held-out benchmark shards: the first identity of each.

`python -m core.eval.bundle_examples --bench data/benchmarks --out assets/examples`
`python -m core.eval.bundle_examples --bench DIR --only studio-test --index 2 --out DIR`: another identity, written as
`studio-test-2.safetensors` (the default avatar's identity, bench/default_avatar_refine.py)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from core.model.examples import ExampleInputs, save_example

log = logging.getLogger(__name__)


def examples_from_benchmarks(
    bench_root: str | Path,
    crop_size: int = 192,
    face_size: int = 96,
    *,
    index: int = 0,  # which identity of each benchmark (its order over the sorted shards)
    benchmarks: tuple[str, ...] | None = None,  # default: every held-out benchmark
) -> list[ExampleInputs]:
    """Identity `index` of each held-out benchmark as example inputs, named "<benchmark> #<index>"."""
    from core.data.benchmarks import BENCHMARKS, load_benchmark
    from core.train.evaluate import reference_crops, reference_views

    out = []
    for name in benchmarks or BENCHMARKS:
        if name not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {name!r}; benchmarks are {list(BENCHMARKS)}")
        shards = sorted((Path(bench_root) / name).glob("*.tar"))
        found, seen = None, 0
        for shard in shards:
            samples = load_benchmark(shard)
            if index < seen + len(samples):
                found = (samples[index - seen], shard)
                break
            seen += len(samples)
        if found is None:
            log.warning("%s under %s has %d identities, not #%d", name, bench_root, seen, index)
            continue
        sample, shard = found
        full, face = reference_crops(sample, crop_size, face_size)
        to8 = lambda x: (x * 255).round().clamp(0, 255).to(torch.uint8)  # noqa: E731
        shape = torch.as_tensor(sample.arrays["est_shape"]).float()
        views = reference_views(sample, crop_size)
        out.append(ExampleInputs(f"{name} #{index}", to8(full), to8(face), shape, f"{shard.name} (held out)", views))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bench", default="data/benchmarks")
    p.add_argument("--out", default="assets/examples")
    p.add_argument("--index", type=int, default=0, help="which identity of each benchmark (default: the first)")
    p.add_argument("--only", nargs="+", default=None, metavar="BENCHMARK", help="these benchmarks only")
    args = p.parse_args(argv)
    for ex in examples_from_benchmarks(args.bench, index=args.index, benchmarks=args.only and tuple(args.only)):
        stem = ex.name.split()[0] + (f"-{args.index}" if args.index else "")
        path = save_example(Path(args.out) / f"{stem}.safetensors", ex)
        log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(main())
