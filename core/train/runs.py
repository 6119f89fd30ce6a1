"""Training runs as folders: the names of a run folder's files (which `core.train.loop` writes), and listing them,
reading their status and metrics, launching, pausing and resuming them (what the studio's training panel shows).

 A run is a folder under a runs root holding `config.yaml`, `metrics.jsonl`, checkpoints
(`last.safetensors`, `stepNNNNNNN.safetensors`), `samples/*.png`, and, for runs launched from here, `log.txt`
(the child's stdout and stderr) and `pid`. Status comes from the folder and the pid file alone, so a studio that
was closed and reopened re-attaches to a run that is still going.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from core.paths import user_data_dir

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS_DIR = ROOT / "configs" / "train"
LOG_FILE = "log.txt"
PID_FILE = "pid"
# The run folder's files, written by core.train.loop / core.train.metrics and read here.
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
LAST = "last.safetensors"
_CHILDREN: dict[int, subprocess.Popen] = {}  # runs this process launched, kept so they can be reaped
CLI_QUIET_S = 120.0  # a run without a pid file counts as running while its metrics changed this recently
_STEP_FILE = re.compile(r"^step(\d+)\.safetensors$")


def step_file(step: int) -> str:
    """The name of the checkpoint kept at `step`."""
    return f"step{step:07d}.safetensors"


Status = Literal["running", "finished", "paused", "crashed", "stopped", "new"]


def train_configs(folder: Path = CONFIGS_DIR) -> list[Path]:
    """The training YAML files a run can start from, sorted by name."""
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def pid_alive(pid: int) -> bool:
    """True while a process with this id exists (our own finished children are reaped, not counted)."""
    if pid <= 0:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class MetricsFollower:
    """Reads `metrics.jsonl` incrementally: each `poll` parses only the bytes appended since the last one."""

    path: Path
    rows: list[dict] = field(default_factory=list)
    _offset: int = 0
    _inode: int | None = None

    def poll(self) -> list[dict]:
        """New complete rows since the last poll (a half-written last line waits for the next poll)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        size = st.st_size
        # A new file (a resume rewrites the rows past its checkpoint; a fresh start sets the old run aside) or a
        # shorter one: read it from the start.
        if st.st_ino != self._inode or size < self._offset:
            self.rows, self._offset, self._inode = [], 0, st.st_ino
        if size == self._offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read(size - self._offset)
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        new = []
        for line in chunk[:end].decode("utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):  # a line cut by a kill, or a crafted one
                log.warning("%s: skipped an unreadable metrics line: %.80s", self.path, line)
                continue
            if isinstance(row, dict) and "step" in row:
                new.append(row)
        self.rows.extend(new)
        return new

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """(steps, values) of one key over the "train" rows (rows without it are left out)."""
        xs, ys = [], []
        for r in self.rows:
            if r.get("kind", "train") == "train" and isinstance(r.get(key), (int, float)):
                xs.append(float(r["step"]))
                ys.append(float(r[key]))
        return xs, ys


@dataclass(frozen=True)
class RunInfo:
    """What the runs list shows about one run folder."""

    name: str
    path: Path
    status: Status
    step: int  # step of the newest checkpoint (0 without one)
    steps: int  # the config's total steps (0 when unknown)
    config: dict
    best_loss: float | None
    error: str  # the log's tail for crashed runs, else ""


class Run:
    """One run folder; cheap to create, every property reads the folder again."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.metrics = MetricsFollower(self.path / METRICS_FILE)

    # Folder contents -------------------------------------------------------------------------
    def config(self) -> dict:
        p = self.path / CONFIG_FILE
        if not p.is_file():
            return {}
        try:
            data = yaml.safe_load(p.read_text())
        except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as e:  # incl. huge ints, bad dates
            log.warning("%s is not a readable YAML config: %.200s", p, e)
            return {}
        return data if isinstance(data, dict) else {}

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, file) of every `stepNNNNNNN.safetensors`, by step."""
        out = []
        for p in self.path.glob("step*.safetensors"):
            m = _STEP_FILE.match(p.name)
            if m:
                out.append((int(m.group(1)), p))
        return sorted(out)

    def last_step(self) -> int:
        ckpts = self.checkpoints()
        return ckpts[-1][0] if ckpts else 0

    def nearest_checkpoint(self, step: float) -> Path | None:
        """The checkpoint whose step is closest to `step` (ties go to the earlier one); None without any."""
        ckpts = self.checkpoints()
        if not ckpts:
            return None
        return min(ckpts, key=lambda c: (abs(c[0] - step), c[0]))[1]

    def latest_sample(self) -> Path | None:
        samples = sorted((self.path / SAMPLES_DIR).glob("*.png"))
        return samples[-1] if samples else None

    def log_tail(self, lines: int = 20) -> str:
        p = self.path / LOG_FILE
        if not p.is_file():
            return ""
        with open(p, "rb") as f:
            f.seek(max(0, p.stat().st_size - 16384))
            text = f.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def pid(self) -> int | None:
        try:
            return int((self.path / PID_FILE).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    # Status ----------------------------------------------------------------------------------
    def is_running(self) -> bool:
        """Alive by its pid file; a run started from the command line (no pid file) while it keeps logging."""
        pid = self.pid()
        if pid is not None:
            return pid_alive(pid)
        metrics = self.path / METRICS_FILE
        if not metrics.exists():
            return False
        self.metrics.poll()
        last = self.metrics.rows[-1] if self.metrics.rows else {}
        steps = int(self.config().get("steps", 0) or 0)
        if last.get("kind") == "paused" or (steps and self.last_step() >= steps):
            return False
        quiet = max(CLI_QUIET_S, 3.0 * float(last.get("step_s") or 0.0))
        return time.time() - metrics.stat().st_mtime < quiet

    def status(self) -> Status:
        if self.is_running():
            return "running"
        steps = int(self.config().get("steps", 0) or 0)
        last = self.last_step()
        if steps and last >= steps:
            return "finished"
        self.metrics.poll()
        kinds = [r.get("kind") for r in self.metrics.rows]
        if kinds and kinds[-1] == "paused":
            return "paused"
        if (self.path / "stopped").exists():
            return "stopped"
        if self.pid() is None and not (self.path / LOG_FILE).exists():
            return "new" if not kinds else "stopped"  # a command-line run we did not start and that is gone
        return "crashed"

    def info(self) -> RunInfo:
        status = self.status()
        cfg = self.config()
        self.metrics.poll()
        losses = self.metrics.series("loss")[1]
        return RunInfo(
            name=self.name,
            path=self.path,
            status=status,
            step=self.last_step(),
            steps=int(cfg.get("steps", 0) or 0),
            config=cfg,
            best_loss=min(losses) if losses else None,
            error=self.log_tail() if status == "crashed" else "",
        )

    # Control ---------------------------------------------------------------------------------
    def pause(self) -> bool:
        """Ask the run to checkpoint at its next step and exit (SIGTERM); False when it is not running.

        While a launch is still generating its data (the chain's shell has not `exec`ed the trainer yet) the
        whole process group gets the signal: generation stops and a resume continues it.
        """
        pid = self.pid()
        if pid is not None and pid_alive(pid) and _is_shell(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                return False
            return True
        return self._signal(signal.SIGTERM)

    def stop(self) -> bool:
        """Stop the run now without a checkpoint (it can still resume from its last one)."""
        pid = self.pid()
        if pid is None or not pid_alive(pid):
            return False
        (self.path / "stopped").touch()
        try:
            os.killpg(pid, signal.SIGKILL)  # the run leads its own process group (data workers included)
        except ProcessLookupError:
            return False
        return True

    def _signal(self, sig: int) -> bool:
        pid = self.pid()
        if pid is None or not pid_alive(pid):
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True


def _is_shell(pid: int) -> bool:
    """True when `pid` is a launch chain's shell (Linux: read from /proc; elsewhere False)."""
    try:
        exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return exe.endswith(b"sh")


def list_runs(root: str | Path) -> list[Run]:
    """Every run folder under `root` (a folder with config.yaml, metrics.jsonl or a pid file), by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    marks = (CONFIG_FILE, METRICS_FILE, PID_FILE)
    return [Run(p) for p in sorted(root.iterdir()) if p.is_dir() and any((p / m).exists() for m in marks)]


def estimate_step_s(runs: list[Run], *, model: str, batch_size: int) -> tuple[float, str] | None:
    """Seconds per step for `model` at `batch_size`, from the newest finished or paused run of that model
    (its median logged step time, scaled linearly by batch size) and that run's name; None without one."""
    for run in sorted(runs, key=lambda r: r.path.stat().st_mtime, reverse=True):
        cfg = run.config()
        if cfg.get("model") != model:
            continue
        run.metrics.poll()
        times = sorted(t for t in run.metrics.series("step_s")[1][1:] if t > 0)  # the first step warms up
        if times:
            per = times[len(times) // 2] * batch_size / max(1, int(cfg.get("batch_size", 1) or 1))
            return per, run.name
    return None


@dataclass(frozen=True)
class SynthData:
    """Synthetic training data a launch generates first (`python main.py prepare synth`) when its folder is empty."""

    identities: int  # wild clips and as many studio captures
    frames: int  # frames per wild clip
    size: int = 64  # frame width and height in pixels
    detail: float = 0.3  # Gaussian count factor of each identity
    cameras: int = 8  # cameras per studio capture
    face_size: int = 0  # side of each frame's head close-up (0: none; the CPU-sized data the studio makes here)

    def folder(self, data_root: str | Path | None = None) -> Path:
        """Under `data_root`, else the user's data folder (never the repository)."""
        root = Path(data_root) if data_root is not None else user_data_dir("data")
        return root / f"synth-{self.identities}x{self.frames}-{self.size}px"

    def command(self, python: str, out: Path) -> list[str]:
        return [
            python, str(ROOT / "main.py"), "prepare", "synth", "--out", str(out), "--wild", str(self.identities),
            "--studio", str(self.identities), "--frames", str(self.frames), "--size", str(self.size),
            "--detail", str(self.detail), "--cameras", str(self.cameras), str(self.cameras), "--per-shard", "1",
            "--face-size", str(self.face_size),
        ]  # fmt: skip


def data_ready(folder: str | Path) -> bool:
    """True when `folder` holds finished shards (a generation leaves its card; a folder of shards counts too)."""
    folder = Path(folder)
    return folder.is_dir() and ((folder / "card.json").is_file() or any(folder.rglob("*.tar")))


def train_command(
    config: Path,
    sets: dict[str, object],
    *,
    python: str = sys.executable,
    nproc: int = 1,
    fresh: bool = False,
) -> list[str]:
    """`python main.py train CONFIG --set ...`, or under `torch.distributed.run` with `nproc` processes;
    `fresh` ignores a checkpoint already in the run folder."""
    if nproc < 1:
        raise ValueError(f"number of processes must be >= 1, got {nproc}")
    head = [python, str(ROOT / "main.py")]
    if nproc > 1:
        head = [
            python,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            str(ROOT / "main.py"),
        ]
    cmd = [*head, "train", str(config.resolve()), "--no-progress", *(["--fresh"] if fresh else []), "--set"]
    return cmd + [f"{k}={_yaml_scalar(v)}" for k, v in sets.items()]


def launch(
    config: str | Path,
    *,
    runs_root: str | Path,
    name: str,
    overrides: dict[str, object] | None = None,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
    nproc: int = 1,
    synth: SynthData | None = None,
) -> Run:
    """Start `python main.py train CONFIG` as its own process (own session: it outlives the studio).

    `overrides` are `--set` pairs (`{"steps": 20, "data.root": "data/x"}`); the run folder is
    `runs_root/name`; stdout and stderr go to its log.txt and the child's pid to its pid file. Launching the
    same name again resumes from the run's last checkpoint. `nproc > 1` runs `torch.distributed.run` with that
    many processes (DDP; gloo on CPUs, NCCL on GPUs). `synth` first generates that synthetic data set with
    `python main.py prepare synth` when its folder (the `data.root` override, else `synth.folder()`) holds no
    shards, then `exec`s the trainer in the same process, so the pid file stays right. Unless `env` or the
    studio's environment says otherwise, the child uses all cores but one (split between its processes) for its
    CPU threads, so the studio stays responsive (oversubscribed OpenMP threads slow a step down tenfold).
    """
    config = Path(config)
    if not config.is_file():
        raise FileNotFoundError(f"training config {config} does not exist; pick one of {train_configs()}")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ValueError(f"run name {name!r} must be letters, digits, '.', '_' or '-' (it names a folder)")
    run = Run(Path(runs_root) / name)
    if run.is_running():
        raise RuntimeError(f"run {name} is already running (pid {run.pid()}); pause or stop it first")
    sets: dict[str, object] = {"out_dir": str(Path(runs_root).resolve()), "name": name, **(overrides or {})}
    steps: list[list[str]] = []
    if synth is not None:
        folder = Path(str(sets.get("data.root") or synth.folder()))
        sets["data.root"] = str(folder.resolve())
        if not (folder / "card.json").is_file():  # none yet, or a generation that was cut short
            steps.append(synth.command(python, folder.resolve()))
    steps.append(train_command(config, sets, python=python, nproc=nproc))
    run.path.mkdir(parents=True, exist_ok=True)
    (run.path / "stopped").unlink(missing_ok=True)
    cmd = steps[0] if len(steps) == 1 else ["/bin/sh", "-c", chain_script(steps)]
    with open(run.path / LOG_FILE, "ab") as out:
        for step in steps:
            out.write(f"$ {shlex.join(step)}\n".encode())
        out.flush()
        child_env = {**os.environ, **(env or {})}
        child_env.setdefault("OMP_NUM_THREADS", str(max(1, ((os.cpu_count() or 2) - 1) // nproc)))
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=child_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    _CHILDREN[proc.pid] = proc
    (run.path / PID_FILE).write_text(str(proc.pid))
    log.info("launched run %s (pid %d): %s", name, proc.pid, " && ".join(shlex.join(c) for c in steps))
    return run


def chain_script(steps: list[list[str]]) -> str:
    """A shell line that runs each command in turn, stops at the first failure and `exec`s the last one."""
    *first, last = steps
    return "".join(f"{shlex.join(c)} || exit $?; " for c in first) + "exec " + shlex.join(last)


def _yaml_scalar(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return str(v)
