"""Host cost of one training step: the aten operations it dispatches per phase (a stand-in for CUDA kernel
launches) and the host time per step, on the CPU at tiny sizes -> JSON.

    python bench/train_ops.py configs/train/pretrain-base.yaml --out bench/results/train_ops-cpu.json

The model is the config's (its real widths and depths) with fewer anchors and small crops, and the data tiny
synthetic clips, so a step takes a fraction of a second on a CPU: how many operations the host dispatches does
not depend on those sizes. Each dispatched operation is counted once (a `TorchDispatchMode` below autograd: what
reaches the kernels), split into forward (model, drive, losses), backward, optimiser (gradient clipping, AdamW,
EMA) and the rasteriser (counted apart: on CUDA gsplat replaces the torch reference rendered here); views and
other metadata-only operations (no kernel on a GPU) are counted apart. The optimiser runs as it does on CUDA
(fused AdamW, foreach clipping) where the CPU build has those paths; `--amp` adds the bf16 autocast a GPU step
runs under (its casts are launches too).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import yaml  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from core.data.loader import to_float_images  # noqa: E402
from core.env import processor_name  # noqa: E402
from core.io import write_json  # noqa: E402
from core.train.cli import parse_overrides  # noqa: E402
from core.train.config import load_train_config  # noqa: E402
from core.train.loop import _batches, build_optimizer, build_step, ensure_data  # noqa: E402
from core.train.parallel import ParamEMA, grad_norm_clip  # noqa: E402

# Operations that only make a new view or read metadata: no kernel launch on a GPU.
VIEW_OPS = {
    "view", "_unsafe_view", "reshape", "expand", "permute", "transpose", "t", "unsqueeze", "squeeze", "slice",
    "select", "as_strided", "alias", "detach", "unflatten", "flatten", "split", "split_with_sizes", "chunk",
    "unbind", "narrow", "diagonal", "view_as", "expand_as", "_reshape_alias", "unsafe_split",
    "_to_copy_noop", "is_same_size", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "empty_like",
    "empty", "empty_strided", "new_empty", "new_empty_strided", "set_", "resize_", "_has_compatible_shallow_copy_type",
    "lift_fresh_scalar",
}  # fmt: skip
# Operations that wait for the device (a host synchronisation on CUDA): reading a value on the host, outputs whose
# shape depends on the data, and tensors made from host data (`torch.tensor`, `new_tensor`: a blocking copy).
SYNC_OPS = {
    "_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "equal", "is_nonzero", "item",
    "lift_fresh", "lift_fresh_copy", "_linalg_svd", "_linalg_check_errors", "_linalg_eigh",
}  # fmt: skip

TINY_DATA = {
    "data.synth_wild": 4,
    "data.synth_studio": 0,
    "data.synth_resolution": 48,
    "data.synth_detail": 0.1,
    "data.synth_frames": 12,
    "data.crop_size": 48,
    "data.face_size": 32,
    "data.render_size": 32,
    "data.workers": 0,
}


class OpCounter(TorchDispatchMode):
    """Counts the aten operations dispatched while `phase` names where they come from."""

    def __init__(self) -> None:
        super().__init__()
        self.phase = "other"
        self.counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        out = func(*args, **(kwargs or {}))
        if name.startswith("lift_fresh") and out.dim() == 0:  # a Python number: a scalar argument on a GPU, no copy
            name = "lift_fresh_scalar"
        self.counts[self.phase][name] += 1
        return out

    @contextlib.contextmanager
    def at(self, phase: str):
        old, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = old

    def summary(self, steps: int) -> dict:
        out = {}
        for phase, c in sorted(self.counts.items()):
            compute = {k: v for k, v in c.items() if k not in VIEW_OPS}
            out[phase] = {
                "ops": sum(compute.values()) / steps,
                "views": sum(v for k, v in c.items() if k in VIEW_OPS) / steps,
                "syncs": sum(v for k, v in c.items() if k in SYNC_OPS) / steps,
                "top": {k: v / steps for k, v in collections.Counter(compute).most_common(15)},
            }
        return out


def tiny_model_yaml(name: str, anchors: int, folder: Path, width: int | None = None) -> Path:
    """The model preset `name` with `anchors` anchors and small crops (patch-sized), written to `folder`; with
    `width`, its encoder, transformer and heads that narrow (the same operations, almost no arithmetic)."""
    from core.model.config import CONFIG_DIR

    data = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
    p = data.get("encoder", {}).get("patch_size", 8)
    data.setdefault("encoder", {}).update(body_crop=[3 * p, 2 * p], face_crop=[2 * p, 2 * p])
    data.setdefault("tokens", {})["num_anchors"] = anchors
    if width:
        for part in ("encoder", "transformer", "heads"):
            data.setdefault(part, {})["hidden" if part == "heads" else "width"] = width
    path = folder / f"{name}-tiny-crops.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--anchors", type=int, default=64)
    ap.add_argument(
        "--width",
        type=int,
        default=None,
        help="narrow the encoder, transformer and heads to this width (default: the preset's): the host times "
        "then measure the dispatch of the operations rather than the CPU's arithmetic",
    )
    ap.add_argument("--steps", type=int, default=10, help="timed steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--count", type=int, default=2, help="steps counted under the dispatch mode")
    ap.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "lca-train-ops-data"))
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--amp",
        action="store_true",
        help="bf16 autocast where the config puts it on a GPU (the step's autocast regions run on the CPU's "
        "autocast): counts the casts to and from bf16 that a GPU step launches",
    )
    ap.add_argument(
        "--raster",
        choices=("stub", "torch"),
        default="stub",
        help="stub: a few differentiable operations stand in for the rasteriser (gsplat's place on CUDA), so the "
        "host times are the rest of the step; torch: the torch reference (its operations counted apart)",
    )
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="lca-train-ops-"))
    base = load_train_config(args.config)
    sets = {**TINY_DATA, "data.root": args.data, "device": "cpu", "out_dir": str(tmp)}
    sets["model"] = str(tiny_model_yaml(base.model, args.anchors, tmp, args.width))
    items = [f"{k}={v}" for k, v in sets.items()] + list(args.set)
    cfg = load_train_config(args.config, parse_overrides(items))
    dev = torch.device("cpu")
    root = ensure_data(cfg, _OneProcess())
    torch.manual_seed(cfg.seed)
    model, step = build_step(cfg, dev)
    if args.amp and cfg.amp:  # the GPU's autocast regions, on the CPU's autocast
        step._autocast = lambda device: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        drive = step._fast["drive"]
        step._fast["drive"] = lambda *a, amp=False, **k: drive(*a, amp=True, **k)
    opt = build_optimizer(cfg, model)
    if not any(g.get("fused") for g in opt.param_groups):  # as on CUDA (one fused kernel per group)
        keep = ("params", "lr", "weight_decay", "lr_scale", "name")
        groups = [{k: g[k] for k in keep} for g in opt.param_groups]
        opt = torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=opt.defaults["betas"], fused=True)
    ema = ParamEMA(model, cfg.optim.ema_decay)
    trainable = [p for p in model.parameters() if p.requires_grad]
    batches = _batches(cfg, root, 0, 0)
    fixed = [to_float_images(next(batches)[2], dev) for _ in range(2)]
    counter: OpCounter | None = None
    times: dict[str, list[float]] = collections.defaultdict(list)

    import core.train.step as step_module

    raster = step_module.rasterize

    def counted_raster(*a, **k):
        with counter.at("rasteriser") if counter is not None else contextlib.nullcontext():
            return (stub_raster if args.raster == "stub" else raster)(*a, **k)

    step_module.rasterize = counted_raster

    def phase(name: str):
        return counter.at(name) if counter is not None else contextlib.nullcontext()

    def one_step(i: int) -> None:
        batch = fixed[i % len(fixed)]
        c0 = time.process_time()
        t0 = time.perf_counter()
        with phase("forward"):
            out = step(batch)
        t1 = time.perf_counter()
        with phase("backward"):
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
        t2 = time.perf_counter()
        with phase("optimiser"):
            grad_norm_clip(trainable, cfg.optim.grad_clip)
            opt.step()
            ema.update()
        t3 = time.perf_counter()
        c3 = time.process_time()
        spans = (t1 - t0, t2 - t1, t3 - t2, t3 - t0, c3 - c0)
        for k, v in zip(("forward", "backward", "optimiser", "step", "step_cpu"), spans, strict=True):
            times[k].append(v * 1e3)

    for i in range(args.warmup):
        one_step(i)
    times.clear()
    for i in range(args.steps):
        one_step(i)
    med = {k: statistics.median(v) for k, v in times.items()}
    counter = OpCounter()
    with counter:
        for i in range(args.count):
            one_step(i)
    ops = counter.summary(args.count)
    kernels = {k: v["ops"] for k, v in ops.items()}
    result = {
        "machine": processor_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
        "config": args.config,
        "model": base.model,
        "anchors": args.anchors,
        "width": args.width,
        "amp": bool(args.amp and cfg.amp),
        "batch": [cfg.batch_size, cfg.data.num_refs, cfg.data.num_targets],
        "ops_per_step": kernels,
        "ops_per_step_without_rasteriser": sum(v for k, v in kernels.items() if k != "rasteriser"),
        "syncs_per_step": {k: v["syncs"] for k, v in ops.items()},
        "host_ms_median": med,  # wall clock per phase; step_cpu: this process's CPU time per step
        "phases": ops,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)
    return 0


def stub_raster(gaussians, camera, *, background=(0.0, 0.0, 0.0), features=None, **_):
    """Outputs shaped like `rasterize`'s for a batch of sets, from a few operations that touch every input."""
    from core.raster.rasterize import RasterOutput

    B, C, H, W = gaussians.means.shape[0], camera.K.shape[-3], int(camera.height), int(camera.width)
    w = torch.sigmoid(gaussians.opacity_logits)[..., None]  # [B, G, 1]
    geo = (gaussians.means.sum(-1, keepdim=True) + gaussians.quats.sum(-1, keepdim=True)) * 1e-3
    geo = geo + gaussians.log_scales.sum(-1, keepdim=True) * 1e-3
    rgb = ((gaussians.sh[..., 0, :] + geo) * w).mean(1)  # [B, 3]
    feats = None if features is None else (features * w).mean(1)[:, None, None, None].expand(B, C, H, W, -1)
    color = rgb[:, None, None, None].expand(B, C, H, W, 3) + camera.K.sum() * 0
    alpha = w.mean(1)[:, None, None, None].expand(B, C, H, W, 1)
    return RasterOutput(color=color, alpha=alpha, depth=alpha, features=feats)


class _OneProcess:
    is_main = True


if __name__ == "__main__":
    raise SystemExit(main())
