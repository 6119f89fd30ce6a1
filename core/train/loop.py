"""The training loop: the same code on 1 CPU process, 1 GPU or many GPUs under `torchrun`.

bf16 autocast on GPU, gradient clipping, a NaN/inf guard that skips the step on every rank, EMA weights,
atomic checkpoints with exact resume (model, optimiser, EMA, RNG, data position), JSONL + TensorBoard
metrics, sample renders as PNG and a progress bar with ETA.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.config import ConfigError, save_config, to_dict
from core.data.loader import GlobalBatches, LoaderConfig, ShardDataset, to_float_images
from core.data.shards import list_shards
from core.io import FileFormatError, atomic_write_bytes
from core.model.config import load_model_config
from core.model.model import LCAModel
from core.model.rig import rig_from_body_asset
from core.threads import loader_workers
from core.train.checkpoint import load_checkpoint, load_run_checkpoint, save_checkpoint
from core.train.config import DataConfig, TrainConfig
from core.train.distributed import (
    DistInfo,
    all_reduce_mean,
    any_rank,
    barrier,
    cleanup,
    init_distributed,
    max_over_ranks,
)
from core.train.losses import PerceptualLoss
from core.train.metrics import MetricsLog
from core.train.optim import lr_at, make_optimizer, set_lr
from core.train.parallel import (
    ParamEMA,
    full_model_state,
    full_optimizer_state,
    grad_norm_clip,
    load_full_optimizer_state,
    local_part,
    wrap,
)
from core.train.runs import CONFIG_FILE, LAST, METRICS_FILE, SAMPLES_DIR, step_file
from core.train.step import TrainStep

log = logging.getLogger(__name__)


def build_model(cfg: TrainConfig, device: torch.device) -> LCAModel:
    mcfg = load_model_config(cfg.model)
    model = LCAModel(mcfg, rig_from_body_asset()).to(device)
    if cfg.init_from:
        state = load_checkpoint(
            cfg.init_from, model=model, prefer_ema=True, map_location=device, allow_missing=model.new_layer_prefixes
        )
        log.info("initialised from %s (step %d)", cfg.init_from, state.step)
    if cfg.freeze_encoder:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
    return model


def build_step(cfg: TrainConfig, device: torch.device) -> tuple[LCAModel, TrainStep]:
    """The model and the module that computes a step's losses for `cfg`."""
    model = build_model(cfg, device)
    step_mod = TrainStep(
        model,
        cfg.loss,
        render_size=cfg.data.render_size,
        perceptual=PerceptualLoss(encoder_features(model)) if cfg.loss.perceptual > 0 else None,
        amp=cfg.amp,
        per_target=cfg.per_target,
        compile=cfg.compile,
        graphs=cfg.graphs,
        closeup_size=cfg.data.closeup_render_size,
    )
    return model, step_mod


def build_optimizer(cfg: TrainConfig, model: LCAModel) -> torch.optim.Optimizer:
    """AdamW with layer-wise learning-rate decay; built after `wrap` (FSDP replaces the parameters)."""
    return make_optimizer(model, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, gamma=cfg.optim.llrd_gamma)


def encoder_features(model: LCAModel):
    """A frozen copy of the model's image encoder as the perceptual feature network (always available offline)."""
    enc = copy.deepcopy(model.encoder).eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    size = tuple(model.cfg.encoder.body_crop)

    def features(x: torch.Tensor) -> list[torch.Tensor]:  # x [B, 3, H, W]
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return enc.features(x) if hasattr(enc, "features") else [enc(x)]

    return features


def ensure_data(cfg: TrainConfig, dist: DistInfo) -> Path:
    """The shard folder; generated first when it is empty and the config asks for synthetic data."""
    root = Path(cfg.data.root)
    if root.is_dir() and list_shards(root):
        return root
    d = cfg.data
    if d.synth_wild + d.synth_studio == 0:
        raise FileNotFoundError(
            f"no shards under {root}; run `python main.py prepare synth --out {root}` or set data.synth_wild/synth_studio"
        )
    if dist.is_main:
        from core.data.generate import plan_generation, run_generation, write_card

        counts = {d.split: {"wild": d.synth_wild, "studio": d.synth_studio}}
        if cfg.eval_every and cfg.eval_split and cfg.eval_split != d.split:  # the held-out curve's identities
            counts[cfg.eval_split] = {"wild": d.synth_val, "studio": d.synth_val}
        plan = plan_generation(
            root,
            counts,
            world_seed=cfg.seed,
            per_shard=4,
            config=synth_config(d),
        )
        run_generation(plan, workers=max(1, d.workers))
        write_card(plan)
    barrier()
    return root


def synth_config(d: DataConfig):
    """The generator settings of a config's `data.synth_*` fields."""
    from core.data.synth import SynthConfig

    cameras = (d.synth_cameras, d.synth_cameras) if d.synth_cameras else SynthConfig.studio_cameras
    return SynthConfig(
        width=d.synth_resolution,
        height=d.synth_resolution,
        detail=d.synth_detail,
        wild_frames=d.synth_frames,
        studio_cameras=cameras,
        studio_poses=d.synth_poses,
        studio_lights=d.synth_lights,
        closeup_size=d.synth_closeup,
    )


def _batches(
    cfg: TrainConfig, root: Path, start: int, epoch: int, dist: DistInfo | None = None, closeups: bool | None = None
) -> Iterator[tuple[int, int, dict]]:
    """(epoch, examples of the epoch used up with this batch, this rank's batch) forever, starting `start`
    examples into `epoch` (exact resume, also on another number of processes). Every rank walks the same example
    stream and decodes only its own part of each global batch (see `GlobalBatches`); the loader's workers live
    for the whole run. Batches carry the targets' head close-ups when the data has them and `closeups` (default:
    when the face loss is on)."""
    d = cfg.data
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    kind = cfg.kinds[0] if len(cfg.kinds) == 1 else None
    lcfg = LoaderConfig(
        num_refs=d.num_refs,
        num_targets=d.num_targets,
        crop_size=d.crop_size,
        face_size=d.face_size,
        wild_supervision=d.wild_supervision,
    )
    extra = (d.real_root,) if d.real_root and "wild" in cfg.kinds else ()
    ds = ShardDataset(root, split=d.split, kind=kind, cfg=lcfg, seed=cfg.seed, extra_roots=extra)
    if cfg.loss.face > 0 if closeups is None else closeups:
        ds.cfg = replace(lcfg, closeup_size=ds.data_closeup_size())
    per_rank = cfg.per_rank_batch(world)
    loader = DataLoader(
        GlobalBatches(ds, per_rank, rank=rank, world=world, start=start, epoch=epoch, epochs=None),
        batch_size=None,
        num_workers=loader_workers(d.workers),
        pin_memory=torch.cuda.is_available(),
    )
    first = epoch
    for e, g, batch in loader:
        if batch is None:
            raise ConfigError(
                f"the shards under {root} yield no full batch of {per_rank * world} examples of kind {kind} "
                f"in split {d.split}; generate more samples or lower the batch size"
            )
        yield e, (start if e == first else 0) + (g + 1) * per_rank * world, batch


def eval_batches(cfg: TrainConfig, root: Path) -> list[dict]:
    """The fixed batches the periodic evaluation renders (the first `eval_batches` of `eval_split`, unshuffled
    by the loader's epoch-0 order, so every evaluation of a run sees the same identities and frames).

    Every target is scored as `core.train.evaluate` scores a benchmark target: posed by the generator's body,
    shaded under the generator's lighting (environment and key light, no lighting code) and measured inside its
    exact person mask. Wild clips are read with `wild_supervision: exact` here whatever training uses: under
    "pipeline" a wild target is lit by the code the model reads off that very target frame, a view of the answer
    that no benchmark target gives, and its mask and body are the degraded ones."""
    split = cfg.eval_split or cfg.data.split
    data = replace(cfg.data, split=split, workers=0, real_root="", wild_supervision="exact")  # footage trains only
    held = replace(cfg, data=data)
    try:
        batches = _batches(held, root, 0, 0, closeups=True)
        return [next(batches)[2] for _ in range(cfg.eval_batches)]
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"{e}; the held-out curve (eval_split={split}) needs identities of that split: "
            f"python main.py prepare synth --val-wild 8 --val-studio 8 ... --out {root}"
        ) from e


@torch.no_grad()
def evaluate_batches(step_mod: TrainStep, batches: list[dict], device: torch.device) -> dict[str, float]:
    """Mean person-only PSNR (dB), SSIM and L1 of the step module's target renders over `batches` ("psnr",
    "ssim", "l1": inside each target's person mask, the headline as in `core.train.evaluate`), the same over the
    whole render ("frame_psnr", ...; person over black), the mean loss ("loss") and, when the batches carry head
    close-ups, the person-only PSNR of those ("face_psnr")."""
    from core.train.closeups import face_psnr
    from core.train.evaluate import image_metrics

    was_training = step_mod.training
    step_mod.eval()
    values: dict[str, list[torch.Tensor]] = {}
    try:
        for batch in batches:
            out = step_mod(to_float_images(batch, device))
            pred, target = out.pred.float().clamp(0, 1), out.target.float()
            mask = (out.mask.float() > 0.5).float() if out.mask is not None else torch.ones_like(pred[..., :1])
            for k, v in image_metrics(pred, target, mask).items():
                values.setdefault(k.removeprefix("person_"), []).append(v)
            values.setdefault("loss", []).append(out.loss.detach().float().reshape(1))
            if out.face_pred is not None and bool((out.face_valid > 0.5).any()):
                values.setdefault("face_psnr", []).append(
                    face_psnr(out.face_pred, out.face_target, out.face_mask, out.face_valid)
                )
    finally:
        step_mod.train(was_training)
    return {k: float(torch.cat(v).mean()) for k, v in values.items()}


def save_samples(path: Path, pred: torch.Tensor, target: torch.Tensor, n: int = 4) -> None:
    """Rows of (render | target) for the first `n` targets, as one PNG."""
    import cv2

    rows = [
        np.concatenate([pred[i].float().cpu().numpy(), target[i].float().cpu().numpy()], 1)
        for i in range(min(n, len(pred)))
    ]
    img = (np.clip(np.concatenate(rows, 0), 0, 1) * 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if ok:
        atomic_write_bytes(path, png.tobytes())


PREVIOUS = "previous"


def set_aside_previous_run(run_dir: Path) -> Path | None:
    """A run started over in a folder that holds an earlier run: move that run's files (metrics, TensorBoard
    events, samples, checkpoints) into `previous/<time>/` so the new curves start clean and nothing is lost.
    Returns the folder they went to, or None when there was nothing to move."""
    if not run_dir.is_dir():
        return None
    entries = [p for p in run_dir.iterdir() if _written_by_training(p.name)]
    if not any(p.name != CONFIG_FILE for p in entries):
        return None
    dest = run_dir / PREVIOUS / time.strftime("%Y%m%d-%H%M%S")
    while dest.exists():
        dest = dest.with_name(dest.name + "+")
    dest.mkdir(parents=True)
    for p in entries:
        p.rename(dest / p.name)
    log.info("started over: the earlier run's files are in %s", dest)
    return dest


def _written_by_training(name: str) -> bool:
    """The files `train` writes into its run folder (the studio's launcher adds its log and pid file, which stay)."""
    return (
        name in (METRICS_FILE, "tb", SAMPLES_DIR, CONFIG_FILE)
        or name.endswith(".safetensors")
        or (name.startswith("rank") and name.endswith(".json"))
    )


class TrainResult(dict):
    """The last logged metrics of this process (a dict) and how the run ended."""

    def __init__(self, metrics: dict, *, status: str, step: int, steps: int, run_dir: Path, seconds: float) -> None:
        super().__init__(metrics)
        self.status = status  # "finished" | "stopped" (checkpointed, resumable) | "complete" (nothing left to do)
        self.step, self.steps, self.run_dir, self.seconds = step, steps, run_dir, seconds

    def summary(self) -> str:
        """One line for the end of a run that says how it ended, where it stands and what to do next."""
        at = f"{self.run_dir} at step {self.step}/{self.steps}"
        loss = f", last loss {self['loss']:.4f}" if "loss" in self else ""
        if self.status == "stopped":
            return f"stopped {at} after {self.seconds:.0f} s{loss}; run the same command to resume"
        if self.status == "complete":
            return f"{at}: the run was already complete; nothing to do (--fresh starts it over)"
        return f"finished {at} in {self.seconds:.0f} s{loss}; weights in {self.run_dir / LAST}"


def train(cfg: TrainConfig, *, resume: bool = True, progress: bool = True) -> TrainResult:
    """Run (or resume) training; returns the final metrics of this process and how the run ended."""
    t_begin = time.time()
    dist = init_distributed(cfg.device)
    per_rank = cfg.per_rank_batch(dist.world_size)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank (FSDP shards them as they are)
    run_dir = cfg.run_dir
    last = run_dir / LAST
    resuming = resume and last.exists()
    if dist.is_main:
        if not resuming:
            set_aside_previous_run(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / CONFIG_FILE)
    root = ensure_data(cfg, dist)
    model, step_mod = build_step(cfg, dist.device)

    start, epoch, consumed = 0, 0, 0
    ckpt = None
    if resuming:
        ckpt = load_run_checkpoint(last, model=model, map_location=dist.device)
        start = ckpt.step
        extra = ckpt.meta["extra"]
        epoch = extra.get("epoch", 0)
        consumed = extra.get("examples", (extra.get("batch", -1) + 1) * per_rank * dist.world_size)
        saved_world = extra.get("world_size", dist.world_size)
        if saved_world != dist.world_size:
            log.info("resuming a run saved on %d processes on %d", saved_world, dist.world_size)
    else:
        torch.manual_seed(cfg.seed + dist.rank)

    wrapped = wrap(step_mod, model, dist, fsdp=cfg.fsdp)
    opt = build_optimizer(cfg, model)
    ema = ParamEMA(model, cfg.optim.ema_decay)
    metrics = MetricsLog(run_dir, enabled=dist.is_main)
    if ckpt is not None:
        try:
            if ckpt.optimizer is not None:
                load_full_optimizer_state(step_mod, opt, ckpt.optimizer, ckpt.optimizer_names)
            if ckpt.ema:
                ema.load_state_dict(ckpt.ema)
        except (FileFormatError, KeyError, ValueError, RuntimeError) as e:
            raise FileFormatError(f"{last}: {e}; resume with --fresh to start the run over") from e
        if not ckpt.ema:
            log.warning("%s has no EMA weights; EMA restarts from the model weights", last)
        metrics.truncate_after(start)
        log.info("resumed %s at step %d", run_dir, start)
        del ckpt

    batches = _batches(cfg, root, consumed, epoch, dist)
    bar = tqdm(
        total=cfg.steps, initial=start, desc=cfg.name, disable=not (progress and dist.is_main), dynamic_ncols=True
    )
    # Under FSDP every rank takes part in the evaluation's forward passes (the weights are sharded).
    sharded = dist.enabled and cfg.fsdp
    periodic_eval = cfg.eval_every > 0 and (dist.is_main or sharded)
    held_out = eval_batches(cfg, root) if periodic_eval else []
    skipped, t_last, final = 0, time.time(), {}
    cur_epoch, cur_consumed = epoch, consumed
    trainable = [p for p in model.parameters() if p.requires_grad]
    stop = _StopRequest()
    stopped_at = None
    for step in range(start, cfg.steps):
        if any_rank(stop.requested, dist.device):
            # Pause: checkpoint where we are, then leave; `train` on the same config resumes from here.
            _save(cfg, run_dir, step_mod, opt, ema, step, cur_epoch, cur_consumed, dist)
            metrics.write(step, kind="paused")
            log.info("stop requested: checkpointed at step %d", step)
            stopped_at = step
            break
        t0 = time.time()
        cur_epoch, cur_consumed, batch = next(batches)
        batch = to_float_images(batch, dist.device)
        t_data = time.time() - t0
        lr = lr_at(step, base_lr=cfg.optim.lr, warmup=cfg.optim.warmup, total=cfg.steps)
        set_lr(opt, lr)
        out = wrapped(batch)
        t_fwd = time.time() - t0 - t_data  # the host's share: nothing waits for the forward pass
        t1 = time.time()
        opt.zero_grad(set_to_none=True)
        out.loss.backward()  # also after a non-finite loss (its gradients are dropped below), so the step waits once
        grad_norm = grad_norm_clip(trainable, cfg.optim.grad_clip or math.inf)
        # one wait for the device per step: the loss and the gradients checked together
        bad = not torch.isfinite(out.loss.detach().float() + grad_norm.float()).item()
        t_bwd = time.time() - t1  # the backward pass and the rest of the forward pass the device still ran
        if any_rank(bad, dist.device):
            skipped += 1
            opt.zero_grad(set_to_none=True)
            log.warning("step %d: non-finite loss or gradients; step skipped (%d so far)", step, skipped)
            metrics.write(step, kind="skip", skipped=skipped)
        else:
            opt.step()
            ema.update()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            loss = all_reduce_mean(out.loss.detach().float()).item()
            terms = {k: all_reduce_mean(v.float()).item() for k, v in out.terms.items()}
            dt = time.time() - t_last
            t_last = time.time()
            final = {
                "loss": loss,
                **terms,
                "lr": lr,
                "data_s": t_data,
                "forward_s": t_fwd,
                "backward_s": t_bwd,
                "step_s": dt / (1 if step == start else cfg.log_every),
                "samples": per_rank * dist.world_size,
            }
            if torch.cuda.is_available():
                final["gpu_mem_gb"] = max_over_ranks(
                    torch.cuda.max_memory_allocated() / 2**30, dist.device
                )  # worst GPU
            metrics.write(step, **final)
            bar.set_postfix(loss=f"{loss:.4f}")
        if dist.is_main and (step % cfg.sample_every == 0 or step == cfg.steps - 1):
            save_samples(run_dir / SAMPLES_DIR / f"step{step:07d}.png", out.pred, out.target)
            if out.face_pred is not None:  # the head close-ups beside them (a folder of their own)
                save_samples(run_dir / SAMPLES_DIR / "face" / f"step{step:07d}.png", out.face_pred, out.face_target)
        done = step + 1
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            _save(cfg, run_dir, step_mod, opt, ema, done, cur_epoch, cur_consumed, dist)
        if held_out and (done % cfg.eval_every == 0 or done == cfg.steps):
            metrics.write(done, kind="eval", **evaluate_batches(step_mod, held_out, dist.device))
        bar.update(1)
    stop.restore()
    bar.close()
    metrics.close()
    if dist.enabled:  # each rank records a checksum of the full weights: ranks that drifted apart are a bug
        local = sum(local_part(p).detach().double().abs().sum() for p in model.parameters())
        checksum = (
            float(all_reduce_mean(torch.as_tensor(local, device=dist.device)) * dist.world_size)
            if sharded
            else float(local)
        )
        (run_dir / f"rank{dist.rank}.json").write_text(json.dumps({"step": cfg.steps, "param_abs_sum": checksum}))
    barrier()
    cleanup()
    status = "stopped" if stopped_at is not None else ("complete" if start >= cfg.steps else "finished")
    step_reached = stopped_at if stopped_at is not None else max(start, cfg.steps)
    return TrainResult(
        final, status=status, step=step_reached, steps=cfg.steps, run_dir=run_dir, seconds=time.time() - t_begin
    )


class _StopRequest:
    """SIGTERM / SIGINT ask the loop to checkpoint and stop at the next step boundary (pause from the studio)."""

    def __init__(self) -> None:
        self.requested = False
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:  # a second signal: stop now
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _save(cfg, run_dir, step_mod, opt, ema, step, epoch, consumed, dist: DistInfo) -> None:
    """Gather full weights, optimiser and EMA state (collectives under FSDP: every rank calls) and write them
    from rank 0, so the run resumes on any number of processes."""
    model_sd = full_model_state(step_mod)
    opt_sd, names = full_optimizer_state(step_mod, opt)
    ema_sd = ema.state_dict()
    if not dist.is_main:
        return
    config = {"train": to_dict(cfg), "model": to_dict(step_mod.model.cfg)}
    extra = {"epoch": epoch, "examples": consumed, "world_size": dist.world_size}
    # The step file first, then `last`: each write is atomic, and a kill between the two leaves `last` at the
    # previous checkpoint, so the resumed run redoes these steps and writes this step file again. (`last` first
    # would resume past a step file that a kill kept from being written: lost for good.)
    save_checkpoint(run_dir / step_file(step), model=model_sd, step=step, config=config, ema=ema_sd, extra=extra)
    save_checkpoint(
        run_dir / LAST,
        model=model_sd,
        step=step,
        config=config,
        optimizer=opt_sd,
        optimizer_names=names,
        ema=ema_sd,
        extra=extra,
    )
