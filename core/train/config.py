"""Typed training configuration (one YAML file per run under configs/), strict like every config here."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from core.config import ConfigError, check_range, load_config

Stage = Literal["pretrain", "posttrain", "mixed", "studio-only"]

# Which kinds of samples each stage reads (the paper's Table 1 comparisons).
STAGE_KINDS: dict[str, tuple[str, ...]] = {
    "pretrain": ("wild",),
    "posttrain": ("studio",),
    "mixed": ("wild", "studio"),
    "studio-only": ("studio",),
}


MAX_CROP_PX = 2048  # side of the square crops the loader cuts (a 60,000-pixel crop asks for gigabytes per image)


@dataclass(frozen=True)
class DataConfig:
    root: str = "data/synth"  # folder of shards (from `python main.py prepare synth`)
    split: str = "train"
    num_refs: int = 8  # N reference images per identity
    num_targets: int = 2  # posed target frames per identity per step
    crop_size: int = 128  # square full-body crop the loader cuts (resized to the model's crop)
    face_size: int = 64
    render_size: int = 128  # targets are resized to this side for the loss renders
    # Side of the head close-up renders (`loss.face`, when the data carries close-ups: `prepare synth
    # --face-size N`); 0: render_size
    closeup_render_size: int = 0
    workers: int = 2
    # When `root` holds no shards, generate this many synthetic samples there first (0: fail instead).
    synth_wild: int = 0
    synth_studio: int = 0
    synth_resolution: int = 128
    synth_detail: float = 1.0  # Gaussian count factor of the generated identities
    synth_frames: int = 16  # frames per generated wild clip
    synth_cameras: int = 0  # cameras per generated studio capture (0: 8 to 32, drawn per capture)
    synth_poses: int = 3  # evenly lit poses per generated studio capture
    synth_lights: int = 2  # lighting-sweep frames per generated studio capture
    synth_closeup: int = 0  # side of the generated frames' head close-ups (0: none)
    synth_val: int = 4  # per kind, generated into `eval_split` when the run evaluates on a split it lacks
    # Wild clips supervised only with what a real video pipeline gives ("pipeline": tracker bodies, masks at the
    # ingestion's measured IoU, no part labels, lighting read off the frame) or with the generator's truth ("exact")
    wild_supervision: Literal["pipeline", "exact"] = "pipeline"
    # A folder written by `main.py prepare video` (real footage): its clips join the wild data of stages that read
    # wild clips (pre-training, mixed), supervised as real footage is (its own fits and masks, unknown lighting)
    real_root: str = ""

    def __post_init__(self) -> None:
        check_range("data.num_refs", self.num_refs, lo=1, hi=16)
        check_range("data.num_targets", self.num_targets, lo=1, hi=64)
        check_range("data.crop_size", self.crop_size, lo=16, hi=MAX_CROP_PX)
        check_range("data.face_size", self.face_size, lo=8, hi=MAX_CROP_PX)
        check_range("data.render_size", self.render_size, lo=16, hi=4096)
        if self.closeup_render_size:
            check_range("data.closeup_render_size", self.closeup_render_size, lo=16, hi=4096)
        check_range("data.workers", self.workers, lo=0, hi=256)
        check_range("data.synth_wild", self.synth_wild, lo=0)
        check_range("data.synth_studio", self.synth_studio, lo=0)
        check_range("data.synth_resolution", self.synth_resolution, lo=16, hi=4096)
        check_range("data.synth_detail", self.synth_detail, lo=0.0, hi=16.0, lo_open=True)
        check_range("data.synth_frames", self.synth_frames, lo=1, hi=10_000)
        check_range("data.synth_cameras", self.synth_cameras, lo=0, hi=1024)
        check_range("data.synth_poses", self.synth_poses, lo=1, hi=10_000)
        check_range("data.synth_lights", self.synth_lights, lo=0, hi=1024)
        check_range("data.synth_closeup", self.synth_closeup, lo=0, hi=4096)


@dataclass(frozen=True)
class LossConfig:
    l1: float = 1.0
    ssim: float = 0.2
    perceptual: float = 0.05  # features of a frozen copy of the model's own image encoder (always offline)
    mask: float = 0.1
    parts: float = 0.05
    # L1 of the canonical render (the canonical branch alone, skinned to the target frame without the pose head's
    # deltas or the deformer) against the target: the paper's canonical term (Eq. 12); 0 switches it off
    canonical: float = 0.0
    # The same photometric loss (l1, ssim, perceptual with the weights above) on the targets' head close-ups,
    # rendered from the same posed Gaussians; it applies only when the data carries close-ups (0 switches it off)
    face: float = 1.0
    acap: float = 1.0
    asap: float = 0.05
    arap: float = 0.1
    sparsity: float = 0.01

    def __post_init__(self) -> None:
        for k, v in self.__dict__.items():
            check_range(f"loss.{k}", v, lo=0.0)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup: int = 50
    # layer-wise learning-rate decay per block, BEiT/MAE convention: lr * gamma ** (top - depth), 1 = no decay
    # (paper: 0.65 for post-training); depths as core.train.optim.layer_depths documents
    llrd_gamma: float = 1.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999

    def __post_init__(self) -> None:
        check_range("optim.lr", self.lr, lo=0.0, lo_open=True)
        check_range("optim.llrd_gamma", self.llrd_gamma, lo=0.0, hi=1.0, lo_open=True)
        check_range("optim.ema_decay", self.ema_decay, lo=0.0, hi=1.0)
        check_range("optim.grad_clip", self.grad_clip, lo=0.0)


@dataclass(frozen=True)
class TrainConfig:
    name: str = "run"
    stage: Stage = "pretrain"
    model: str = "tiny"  # preset name or path of a model YAML
    init_from: str | None = None  # checkpoint to start from (post-training starts from a pre-trained one)
    freeze_encoder: bool = False
    steps: int = 100
    batch_size: int = 2  # identities per step per process
    # Identities per step over all processes (0: batch_size per process). Set, it fixes the optimisation whatever
    # the GPU count: each of G processes takes global_batch / G (which must divide), so a run resumed on another
    # number of GPUs continues the same training.
    global_batch: int = 0
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # bf16 autocast on GPU (ignored on CPU)
    # torch.compile of the identity model, the batched per-target path and the image losses (static shapes; GPU).
    # Compiling takes about 150 s at the first steps for 8 ms a step on one H200 (docs/PERFORMANCE.md): worth it
    # for long runs only. Falls back to eager with a warning when compiling fails.
    compile: bool = False
    # CUDA graphs of the batched step's three stages (identities, posed Gaussians, losses; gsplat between runs
    # eagerly), captured at the second step: each stage one launch forward and one backward instead of hundreds
    # (`core/train/step_graphs.py`): on one H200 56.7 identities/s against 28.6 eager (docs/PERFORMANCE.md). One
    # GPU process only; eager on a CPU, under DDP/FSDP, with `compile` and when a capture fails.
    graphs: bool = True
    per_target: bool = False  # the slow reference step: one posed target after another (for comparisons)
    fsdp: bool = False  # shard parameters, gradients and optimiser state over the processes (for `large`)
    out_dir: str = "runs"  # relative: under the user's data folder unless given on the command line (see below)
    log_every: int = 10
    ckpt_every: int = 100
    sample_every: int = 100
    # Every eval_every steps (0: never) the live weights render a fixed held-out batch (eval_batches batches of
    # data split eval_split, e.g. "val" from `prepare synth --val-wild N --val-studio N`; empty: the training
    # split, which measures fit, not generalisation) and person-only PSNR / SSIM / L1 (plus the whole-render
    # values and the loss) go to metrics.jsonl and TensorBoard as "eval" rows (what the training panel plots).
    # Its targets are posed, lit and masked as `main.py eval` does (generator body, lighting incl. the key light,
    # exact mask; wild clips too, whatever data.wild_supervision says), so the two measure the same renders.
    eval_every: int = 0
    eval_split: str = ""
    eval_batches: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        check_range("steps", self.steps, lo=1)
        check_range("batch_size", self.batch_size, lo=1, hi=4096)
        check_range("global_batch", self.global_batch, lo=0, hi=1 << 20)
        for k in ("log_every", "ckpt_every", "sample_every", "eval_batches"):
            check_range(k, getattr(self, k), lo=1)
        check_range("eval_every", self.eval_every, lo=0)
        if self.stage == "posttrain" and self.init_from is None:
            raise ConfigError("stage 'posttrain' needs init_from: the pre-trained checkpoint to start from")

    def per_rank_batch(self, world_size: int) -> int:
        """Identities per step on each of `world_size` processes."""
        if not self.global_batch:
            return self.batch_size
        if self.global_batch % world_size:
            raise ConfigError(
                f"global_batch {self.global_batch} does not divide over {world_size} processes; "
                f"use a multiple of {world_size}"
            )
        return self.global_batch // world_size

    @property
    def kinds(self) -> tuple[str, ...]:
        return STAGE_KINDS[self.stage]

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


# Folders a run writes to or reads its data from. A relative one that comes from the defaults or the config file
# lives under the user's data folder (core.paths: "runs" -> <data>/runs, "data/smoke" -> <data>/data/smoke), never
# in the current directory; one given as an override (`--set out_dir=...`, the training panel) stays as typed.
USER_FOLDERS = ("out_dir", "data.root", "data.real_root")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _given(overrides: dict | None, prefix: str = "") -> set[str]:
    """The dotted keys an override dict sets ({"data": {"root": x}} -> {"data.root"})."""
    out: set[str] = set()
    for key, value in (overrides or {}).items():
        name = f"{prefix}{key}"
        out |= _given(value, f"{name}.") if isinstance(value, dict) else {name}
    return out


def under_user_data(cfg: TrainConfig, given: set[str] = frozenset()) -> TrainConfig:
    """`cfg` with its relative folders (and `init_from`) placed as the config file means them (see USER_FOLDERS).

    `init_from` given relatively in a config file names an earlier run's checkpoint under the user's data folder
    (`runs/pretrain-base/last.safetensors`) or a file that ships with the repository (`assets/...`); the first
    that exists wins, else the data folder's path (so a missing one is reported where it is expected).
    """
    from core.paths import user_data_dir

    def placed(key: str, value: str) -> str:
        if not value or key in given or Path(value).is_absolute():
            return value
        return str(user_data_dir() / value)

    data = cfg.data
    data = replace(data, root=placed("data.root", data.root), real_root=placed("data.real_root", data.real_root))
    init_from = cfg.init_from
    if init_from and "init_from" not in given and not Path(init_from).is_absolute():
        mine, shipped = user_data_dir() / init_from, REPO_ROOT / init_from
        init_from = str(shipped if shipped.is_file() and not mine.is_file() else mine)
    return replace(cfg, out_dir=placed("out_dir", cfg.out_dir), data=data, init_from=init_from)


def load_train_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """The config file with `overrides` (nested, as from `--set`) on top; its folders placed by `under_user_data`."""
    return under_user_data(load_config(TrainConfig, path, overrides), _given(overrides))
