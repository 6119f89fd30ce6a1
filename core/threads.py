"""Thread counts the program chooses for itself (torch / OpenMP intra-op threads, data workers).

Left to their defaults, torch and OpenMP take every core and spin while they wait for each other: on a machine
whose cores are busy with other work one step can take 20x longer with two threads than with one. So every
command line entry calls `configure_threads()` before torch is imported: it counts the cores this process may
use, subtracts the ones already busy (the load average), shares them between the processes torchrun started on
this host, and lets waiting threads sleep (`OMP_WAIT_POLICY=PASSIVE`). `LCA_THREADS` or `OMP_NUM_THREADS` set by
the user win.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

THREADS_ENV = "LCA_THREADS"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def busy_cores() -> float:
    """Cores already busy with other work: the 1-minute load average (0 where the platform has none)."""
    try:
        return max(0.0, os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def choose_threads(cores: int, busy: float = 0.0, processes: int = 1) -> int:
    """Intra-op threads for one of `processes` processes on `cores` cores of which about `busy` are taken."""
    free = cores - int(busy + 0.5)
    return max(1, min(cores, free) // max(1, processes))


def configure_threads() -> int:
    """Choose and apply the intra-op thread count; returns it. Call before importing torch where possible."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)  # torchrun: processes sharing this host
    threads, why = None, ""
    for env in (THREADS_ENV, "OMP_NUM_THREADS"):
        if os.environ.get(env):
            threads, why = _int(os.environ[env]), f"${env}"
            if threads is None:
                log.warning("ignoring $%s=%r: not a whole number of threads", env, os.environ[env])
            break
    if threads is None:
        cores, busy = available_cores(), busy_cores()
        threads = choose_threads(cores, busy, processes)
        why = f"{cores} cores, load {busy:.1f}, {processes} process(es) on this host"
    threads = max(1, threads)
    for env in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(env, str(threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads sleep instead of spinning on busy cores
    if "torch" in sys.modules:  # already imported: the environment came too late for its thread pool
        import torch

        torch.set_num_threads(threads)
    log.debug("using %d thread(s) (%s)", threads, why)
    return threads


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def loader_workers(requested: int) -> int:
    """Data-loader / generator worker processes: at most the cores left beside the main process."""
    return max(0, min(requested, available_cores() - 1))
