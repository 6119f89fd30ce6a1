"""Studio start-up times: seconds from the process's start to its first drawn window and to the default avatar's
first picture, on a first start (an empty cache folder: anchors sampled, example decoded) and a later one.

Run under a display (xvfb-run -a -s "-screen 0 1280x800x24" python bench/startup.py); prints one JSON object
with the machine's load average before and after. The studio logs both moments itself ("studio window shown",
"studio showed"), so these are the times a user sees, not the bench's; `cpu_s` is the whole process's CPU
time (user + sys, every thread; on a shared machine the part of the wall time that is this program's own work).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_start(env: dict[str, str], shot: Path) -> dict[str, float]:
    cmd = [sys.executable, "main.py", "studio", "--fresh", "--frames", "1", "--screenshot", str(shot)]
    t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    if res.returncode != 0:
        raise SystemExit(f"the studio failed:\n{out[-3000:]}")
    window = re.search(r"studio window shown ([\d.]+) s", out)
    avatar = re.search(r"studio showed .* ([\d.]+) s after start", out)
    return {
        "window_s": float(window.group(1)) if window else float("nan"),
        "avatar_s": float(avatar.group(1)) if avatar else float("nan"),
        "process_s": round(time.perf_counter() - t0, 1),
        "cpu_s": round(_cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - _cpu(cpu0), 1),  # user + sys, all threads
    }


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--later", type=int, default=2, help="later starts measured after the first")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lca-startup-") as tmp:
        env = {**os.environ, "LCA_CACHE_DIR": f"{tmp}/cache", "LCA_DATA_DIR": f"{tmp}/data",
               "LCA_STUDIO_HOME": f"{tmp}/home"}  # fmt: skip
        load_before = os.getloadavg()
        first = one_start(env, Path(tmp) / "first.png")
        later = [one_start(env, Path(tmp) / f"later{i}.png") for i in range(args.later)]
        load_after = os.getloadavg()
    print(json.dumps({"cores": os.cpu_count(), "load_before": load_before, "load_after": load_after,
                      "first_start": first, "later_starts": later}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
