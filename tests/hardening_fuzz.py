"""Corruption harness for the loader hardening tests: bit flips and truncations of real files, each load timed.

Every case must end either in a successful load (the damage hit a byte the loader does not depend on) or in one
of the expected exception types, within `time_limit` seconds of CPU time (the process's own work, which a busy
machine does not inflate; an expansion bomb or a runaway loop burns it) and `wall_limit(time_limit)` of wall time
(a case that blocks). Each run's tally is written as JSON to the folder
named by LCA_RELIABILITY_DIR (default: <tmp>/lca_reliability), which `tests/hardening_report.py` turns into the
table of docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TIME_LIMIT_S = 5.0


def summary_dir() -> Path:
    d = Path(os.environ.get("LCA_RELIABILITY_DIR", Path(tempfile.gettempdir()) / "lca_reliability"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass
class Tally:
    """Outcomes of one (input kind, corruption kind) batch of cases."""

    input_kind: str
    corruption: str
    cases: int = 0
    loaded: int = 0
    refused: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # exception type -> count
    failures: list[str] = field(default_factory=list)  # unexpected exception types or time overruns
    max_seconds: float = 0.0
    section: str = "inputs"  # "inputs": a loader's table row; "faults": a fault or flood (loaded = survived)

    def record(self) -> None:
        """Write this tally as JSON for the report script (one file per batch)."""
        name = f"{self.input_kind}--{self.corruption}".replace("/", "_").replace(" ", "_")
        data = {k: v for k, v in self.__dict__.items()}
        (summary_dir() / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True))


def wall_limit(cpu_limit: float) -> float:
    """The wall-clock bound that goes with a CPU-time bound: generous, since a loaded machine (2 cores shared
    by parallel test runs) stretches wall time several-fold; it still catches a case that blocks forever."""
    return max(30.0, 10.0 * cpu_limit)


def run_case(
    tally: Tally,
    path: Path,
    load: Callable[[Path], object],
    expected: tuple[type[BaseException], ...],
    *,
    time_limit: float = TIME_LIMIT_S,
    what: str = "",
) -> BaseException | None:
    """Load `path` once, timing it; classify the outcome into `tally`. Returns the raised error, if any."""
    tally.cases += 1
    t0, c0 = time.perf_counter(), time.process_time()
    err: BaseException | None = None
    try:
        load(path)
    except expected as e:
        err = e
        tally.refused += 1
        tally.errors[type(e).__name__] = tally.errors.get(type(e).__name__, 0) + 1
    except Exception as e:  # noqa: BLE001 - any other type is a finding, reported by the test
        err = e
        tally.failures.append(f"{what}: unexpected {type(e).__name__}: {str(e)[:200]}")
    else:
        tally.loaded += 1
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    tally.max_seconds = max(tally.max_seconds, round(dt, 3))
    if cpu > time_limit:
        tally.failures.append(f"{what}: used {cpu:.1f} s of CPU (limit {time_limit} s)")
    elif dt > wall_limit(time_limit):
        tally.failures.append(f"{what}: took {dt:.1f} s of wall time (limit {wall_limit(time_limit):.0f} s)")
    if err is not None and expected and isinstance(err, expected) and len(str(err)) < 10:
        tally.failures.append(f"{what}: unhelpful message {str(err)!r}")
    return err


def flip_bits(data: bytes, rng: np.random.Generator, *, n: int, region: int | None = None) -> bytes:
    """`data` with `n` single-bit flips at random offsets (within the first `region` bytes when given)."""
    buf = bytearray(data)
    hi = len(buf) if region is None else max(1, min(region, len(buf)))
    for _ in range(n):
        i = int(rng.integers(hi))
        buf[i] ^= 1 << int(rng.integers(8))
    return bytes(buf)


def fuzz_file(
    original: Path,
    work: Path,
    load: Callable[[Path], object],
    expected: tuple[type[BaseException], ...],
    *,
    input_kind: str,
    seed: int,
    flips: int,
    truncations: int,
    header_bytes: int | None = None,
    payload_end: int | None = None,
) -> list[Tally]:
    """Bit-flip and truncate `original` (a file made by the project's own saver) and load every variant.

    Half of the flip cases aim at the first `header_bytes` bytes (the structure), the rest anywhere.
    Truncations cut before `payload_end` (default: the file size), so trailing padding is not counted.
    """
    rng = np.random.default_rng(seed)
    data = original.read_bytes()
    work.mkdir(parents=True, exist_ok=True)
    flip_t = Tally(input_kind, "bit flips (1-3 bits)")
    trunc_t = Tally(input_kind, "truncation")
    for i in range(flips):
        region = header_bytes if (header_bytes and i % 2 == 0) else None
        p = work / f"flip{i:03d}{original.suffix}"
        p.write_bytes(flip_bits(data, rng, n=int(rng.integers(1, 4)), region=region))
        run_case(flip_t, p, load, expected, what=f"{original.name} flip case {i}")
    for i in range(truncations):
        p = work / f"trunc{i:03d}{original.suffix}"
        p.write_bytes(data[: int(rng.integers(payload_end or len(data)))])
        run_case(trunc_t, p, load, expected, what=f"{original.name} truncation case {i}")
    done = [t for t in (flip_t, trunc_t) if t.cases]
    for t in done:
        t.record()
    return done


def assert_clean(tallies: list[Tally], *, truncation_must_fail: bool = True) -> None:
    """No case crashed, hung or gave an unhelpful error; truncated files are always refused."""
    problems = [f for t in tallies for f in t.failures]
    assert not problems, "\n".join(problems)
    for t in tallies:
        assert t.cases > 0
        if truncation_must_fail and t.corruption == "truncation":
            assert t.loaded == 0, f"{t.input_kind}: {t.loaded} truncated files loaded without an error"
