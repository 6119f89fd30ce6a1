"""Run metrics: one JSON object per line (what the studio's training panel follows) plus TensorBoard if present."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from core.io import atomic_write
from core.train.runs import METRICS_FILE

log = logging.getLogger(__name__)


class MetricsLog:
    """Appends `{"step", "time", **values}` lines to `metrics.jsonl`; mirrors scalars to TensorBoard when installed."""

    def __init__(self, run_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True):
        self.path = Path(run_dir) / METRICS_FILE
        self.enabled = enabled
        self._tb = None
        self._tb_dir = Path(run_dir) / "tb"
        if enabled and tensorboard:
            self._tb = self._open_tensorboard()
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def _open_tensorboard(self, purge_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("tensorboard is not installed; metrics go to %s only", self.path)
            return None
        return SummaryWriter(log_dir=str(self._tb_dir), purge_step=purge_step)

    def truncate_after(self, step: int) -> None:
        """On resume from a checkpoint taken after `step` steps, drop the lines written after it, so the curve
        continues without a fork. "train" and "skip" lines carry the 0-based index of their step (the checkpoint
        covers indices below `step`; a run killed before its next checkpoint logged some at or past it); other
        kinds ("eval", "paused") carry the number of steps done."""
        if self._tb is not None:
            # TensorBoard too: events the killed run logged at steps >= `step` are hidden, so the resumed curve
            # does not show those steps twice
            self._tb.close()
            self._tb = self._open_tensorboard(purge_step=step)
        if not self.enabled or not self.path.exists():
            return

        def before(r: dict) -> bool:
            s = r.get("step", 0)
            return isinstance(s, int) and (s < step if r.get("kind") in ("train", "skip") else s <= step)

        keep = [json.dumps(r) for r in read_metrics(self.path) if isinstance(r, dict) and before(r)]
        # a line cut by a hard kill is dropped; the rewrite is atomic so a second kill cannot lose the history
        atomic_write(self.path, lambda p: p.write_text("".join(ln + "\n" for ln in keep)))

    def write(self, step: int, kind: str = "train", **values: float) -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None) for k, v in values.items()}
        line = json.dumps({"step": int(step), "kind": kind, "time": time.time(), **clean})
        with open(self.path, "a") as f:
            f.write(line + "\n")
        if self._tb is not None:
            for k, v in clean.items():
                if v is not None:
                    self._tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[dict]:
    """All complete lines of a metrics.jsonl (a line being written while we read is skipped)."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    for ln in p.read_text().splitlines():
        try:
            out.append(json.loads(ln))
        except json.JSONDecodeError:
            continue
    return out
