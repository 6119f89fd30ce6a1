"""Training data from shards: per sample, N reference images (full-body and face crops) and target frames
with masks, part labels, cameras and body parameters. Streams shards; splits them over ranks and workers;
deterministic given (seed, epoch)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from core.data.seeds import rng_for
from core.data.shards import LazySample, Sample, SampleRef, index_shard, list_shards

log = logging.getLogger(__name__)


# Mask IoU of `prepare video` (selfie segmentation + GrabCut) against the truth on rendered clips
# (bench/results/ingest_video.json, "frontal" summary): what a real pipeline's person masks are worth.
MEASURED_MASK_IOU = 0.84
# Shard name prefixes of each kind of sample: ingested real footage (`prepare video`) is wild data.
KIND_PREFIXES: dict[str, tuple[str, ...]] = {"wild": ("wild-", "video-"), "studio": ("studio-",), "video": ("video-",)}


@dataclass(frozen=True)
class LoaderConfig:
    num_refs: int = 8  # N reference images per sample
    num_targets: int = 4  # target frames per sample
    crop_size: int = 256  # full-body crop side (px)
    face_size: int = 128  # face crop side (px)
    body_source: str = "est"  # which body parameters references carry: "est" (tracker-like) or "gt"
    shuffle_buffer: int = 8
    # How wild clips supervise their targets. "pipeline": only with what ingesting a real video gives: the
    # tracker's body estimate (est_*), person masks degraded to the ingestion's measured IoU, no part labels and
    # no lighting (the model reads a per-frame lighting code off the frame). "exact": the generator's truth
    # (gt_* bodies, exact masks, part labels and lighting), as studio captures are supervised.
    wild_supervision: str = "pipeline"
    wild_mask_iou: float = MEASURED_MASK_IOU
    # Side of the targets' head close-ups in each example (0: none): `tgt_closeup_*`, resized from the shard's own
    # size. They supervise only where the target's body is exact (studio captures, wild clips under "exact"):
    # a real video has no close-up, and a tracker's body error grows eightfold at close-up scale. Targets without
    # one (those, older shards, real footage) carry zeros and `tgt_closeup_valid` 0, so batches keep one set of keys.
    closeup_size: int = 0


def degrade_mask(mask: np.ndarray, rng: np.random.Generator, iou: float) -> np.ndarray:
    """A uint8 person mask [H, W] warped by a smooth random displacement field whose amplitude is searched so
    that its IoU with the input is about `iou` (the boundary errors of a segmentation network: parts of the
    person missed, background taken for person)."""
    m = mask > 127
    area = int(m.sum())
    if area == 0 or iou >= 1.0:
        return mask
    H, W = mask.shape
    field = rng.normal(size=(2, 5, 5)).astype(np.float32)
    flow = np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_CUBIC) for f in field])  # [2, H, W]
    flow /= max(float(np.abs(flow).max()), 1e-6)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    src = mask.astype(np.float32)

    def warped(amp: float) -> np.ndarray:
        return cv2.remap(src, xs + amp * flow[0], ys + amp * flow[1], cv2.INTER_LINEAR, borderValue=0)

    def iou_of(out: np.ndarray) -> float:
        w = out > 127
        return float((w & m).sum()) / max(1, int((w | m).sum()))

    lo, hi = 0.0, float(np.sqrt(area))  # displacement in pixels: up to the person's size
    best = mask
    for _ in range(12):  # bisection on the amplitude: the IoU falls as it grows
        amp = 0.5 * (lo + hi)
        out = warped(amp)
        best = out
        if iou_of(out) > iou:
            lo = amp
        else:
            hi = amp
    return np.round(best).clip(0, 255).astype(np.uint8)


def square_box(x0: float, y0: float, x1: float, y1: float, pad: float) -> tuple[float, float, float]:
    """Centre and side of the padded square around a box."""
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0) * (1 + pad)
    return cx, cy, max(side, 4.0)


def crop_matrix(cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """The 3x3 matrix that maps original pixels to pixels of the square crop `crop` cuts (apply it to K)."""
    s = size / side
    return np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy], [0, 0, 1.0]])


def crop(img: np.ndarray, cx: float, cy: float, side: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Square crop [size, size, C] centred at (cx, cy) with out-of-image pixels set to 0, and the 3x3 matrix that
    maps original pixels to crop pixels (apply it to K to get the crop's intrinsics)."""
    s = size / side
    A = crop_matrix(cx, cy, side, size)
    out = cv2.warpAffine(
        img,
        A[:2],
        (size, size),
        flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return out, A


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask > 127)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def make_example(
    sample: Sample | LazySample, rng: np.random.Generator, cfg: LoaderConfig
) -> dict[str, torch.Tensor | str]:
    """One training example: references and targets drawn from `sample`'s images. Images and masks stay uint8
    (a quarter of the bytes to move); `to_float_images` scales them to [0, 1] on the training device."""
    F, C = sample.num_frames, sample.num_cameras
    views = [(f, c) for f in range(F) for c in range(C)]
    order = rng.permutation(len(views))
    refs = [views[i] for i in order[: cfg.num_refs]]
    rest = [views[i] for i in order[cfg.num_refs :]] or refs
    refs = refs + [refs[int(rng.integers(len(refs)))] for _ in range(cfg.num_refs - len(refs))]  # short clips repeat
    tgts = [rest[int(i)] for i in rng.choice(len(rest), cfg.num_targets, replace=len(rest) < cfg.num_targets)]
    a = sample.arrays
    src = cfg.body_source if f"{cfg.body_source}_pose" in a else "est"
    kind = sample.meta.get("kind")
    # what a real pipeline has: wild clips under "pipeline" supervision, and real footage always
    pipeline = kind == "video" or (kind == "wild" and cfg.wild_supervision == "pipeline")
    masks: dict[tuple[int, int], np.ndarray] = {}

    def mask_at(f: int, c: int) -> np.ndarray:
        if (f, c) not in masks:
            m = sample.mask_at(f, c)
            masks[f, c] = degrade_mask(m, rng, cfg.wild_mask_iou) if pipeline and kind == "wild" else m
        return masks[f, c]

    full, face, Kf, Kc = [], [], [], []
    for f, c in refs:
        img = sample.rgb_at(f, c)
        box = mask_box(mask_at(f, c)) or (0, 0, img.shape[1], img.shape[0])
        im, A = crop(img, *square_box(*box, pad=0.1), cfg.crop_size)
        full.append(im)
        Kf.append(A @ a["K"][f, c])
        hb = a["head_box"][f, c]
        im, A = crop(img, *square_box(*hb, pad=0.35), cfg.face_size)
        face.append(im)
        Kc.append(A @ a["K"][f, c])

    def t(x, dt=torch.float32):
        return torch.as_tensor(np.ascontiguousarray(np.stack(x) if isinstance(x, list) else x), dtype=dt)  # noqa: E731

    ref_f = np.array([f for f, _ in refs])
    tgt_f = np.array([f for f, _ in tgts])
    tgt_c = np.array([c for _, c in tgts])
    gt = "gt" if "gt_pose" in a and not pipeline else "est"
    lit = "env_sh" in a and not pipeline
    key = lit and "key_dir" in a and "key_rgb" in a
    out: dict[str, torch.Tensor | str] = {
        "key": sample.key,
        "ref_full": t(full, torch.uint8).permute(0, 3, 1, 2),  # [N, 3, S, S] uint8
        "ref_face": t(face, torch.uint8).permute(0, 3, 1, 2),  # [N, 3, Sf, Sf] uint8
        "ref_K_full": t(Kf),  # [N, 3, 3]
        "ref_K_face": t(Kc),  # [N, 3, 3]
        "ref_T_cam_world": t(a["T_cam_world"][ref_f, [c for _, c in refs]]),  # [N, 4, 4]
        "ref_pose": t(a[f"{src}_pose"][ref_f]),  # [N, J, 3]
        "ref_translation": t(a[f"{src}_translation"][ref_f]),  # [N, 3]
        "ref_expression": t(a[f"{src}_expression"][ref_f]),  # [N, E]
        "shape": t(a[f"{src}_shape"]),  # [S]
        "tgt_rgb": t([sample.rgb_at(f, c) for f, c in tgts], torch.uint8).permute(0, 3, 1, 2),  # [T, 3, H, W] uint8
        "tgt_mask": t([mask_at(f, c) for f, c in tgts], torch.uint8)[:, None],  # [T, 1, H, W] uint8
        "tgt_K": t(a["K"][tgt_f, tgt_c]),  # [T, 3, 3]
        "tgt_T_cam_world": t(a["T_cam_world"][tgt_f, tgt_c]),  # [T, 4, 4]
        "tgt_pose": t(a[f"{gt}_pose"][tgt_f]),  # [T, J, 3]
        "tgt_translation": t(a[f"{gt}_translation"][tgt_f]),  # [T, 3]
        "tgt_expression": t(a[f"{gt}_expression"][tgt_f]),  # [T, E]
        "tgt_gaze": t(a[f"{gt}_gaze"][tgt_f]),  # [T, 2]
        "tgt_env_sh": t(a["env_sh"][tgt_f]) if lit else torch.zeros(len(tgts), 9, 3),  # [T, 9, 3]
        # the key light the frame was rendered under (zeros: none), lit as `core.train.evaluate` lights a target
        "tgt_key_dir": t(a["key_dir"][tgt_f]) if key else torch.zeros(len(tgts), 3),  # [T, 3]
        "tgt_key_rgb": t(a["key_rgb"][tgt_f]) if key else torch.zeros(len(tgts), 3),  # [T, 3]
        "tgt_lit": torch.full((len(tgts),), float(lit)),  # [T] 1: lighting known (env_sh); 0: read off the frame
    }
    if cfg.closeup_size > 0:
        out.update(closeup_targets(sample, tgts, cfg.closeup_size, usable=not pipeline))
    if sample.parts_at(*tgts[0]) is not None and not pipeline:
        out["tgt_parts"] = t([sample.parts_at(f, c) for f, c in tgts], torch.int64)  # [T, H, W], 255 = background
    else:  # no labels (255 everywhere), so that a batch mixing kinds keeps one set of keys
        H, W = out["tgt_rgb"].shape[-2:]
        out["tgt_parts"] = torch.full((len(tgts), H, W), 255, dtype=torch.int64)
    return out


def closeup_targets(
    sample: Sample | LazySample, tgts: list[tuple[int, int]], size: int, *, usable: bool = True
) -> dict[str, torch.Tensor]:
    """The head close-ups of the target views `tgts` (frame, camera) at `size` px: colour [T, 3, S, S] and mask
    [T, 1, S, S] uint8, intrinsics [T, 3, 3] and validity [T] (0: none, zeros instead; see
    `LoaderConfig.closeup_size`)."""
    T = len(tgts)
    rgb = np.zeros((T, size, size, 3), np.uint8)
    mask = np.zeros((T, size, size), np.uint8)
    a = sample.arrays
    H, W = (sample.height, sample.width) if isinstance(sample, LazySample) else sample.rgb.shape[2:4]
    K = np.stack([a["K"][f, c] for f, c in tgts]).astype(np.float32)  # stand-ins: a valid camera, never scored
    K[:, :2] *= size / max(H, W)
    valid = np.zeros(T, np.float32)
    n = sample.closeup_size
    if usable and n > 0 and "closeup_K" in a:
        for i, (f, c) in enumerate(tgts):
            im, m, Kc = sample.closeup_rgb_at(f, c), sample.closeup_mask_at(f, c), a["closeup_K"][f, c]
            if n != size:  # the intrinsics scale with the image (pixel centres at +0.5)
                interp = cv2.INTER_AREA if size < n else cv2.INTER_LINEAR
                im, m = (cv2.resize(x, (size, size), interpolation=interp) for x in (im, m))
                Kc = np.diag([size / n, size / n, 1.0]) @ Kc
            rgb[i], mask[i], K[i], valid[i] = im, m, Kc, 1.0
    return {
        "tgt_closeup_rgb": torch.as_tensor(rgb).permute(0, 3, 1, 2),  # [T, 3, S, S] uint8
        "tgt_closeup_mask": torch.as_tensor(mask)[:, None],  # [T, 1, S, S] uint8
        "tgt_closeup_K": torch.as_tensor(K, dtype=torch.float32),  # [T, 3, 3]
        "tgt_closeup_valid": torch.as_tensor(valid),  # [T]
    }


class ShardDataset(IterableDataset):
    """Streams examples from the shards under `root` (optionally only `split`/`kind`), sharded over distributed
    ranks and DataLoader workers; the same (seed, epoch) gives the same examples in the same order per worker."""

    def __init__(
        self,
        root: str | Path,
        *,
        split: str | None = None,
        kind: str | None = None,
        cfg: LoaderConfig | None = None,
        seed: int = 0,
        shuffle: bool = True,
        extra_roots: tuple[str | Path, ...] = (),
    ) -> None:
        """`extra_roots`: more folders whose shards all join (whatever their split), e.g. real footage that
        `prepare video` ingested; `kind` "wild" takes ingested footage ("video-" shards) as well."""
        self.cfg = cfg or LoaderConfig()
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        shards = list_shards(Path(root))
        if split is not None:
            shards = [s for s in shards if s.parent.name == split]
        for extra in extra_roots:
            if not Path(extra).is_dir():
                raise FileNotFoundError(
                    f"{extra} is not a folder; ingest footage: python main.py prepare video FILE --out {extra}"
                )
            shards += [s for s in list_shards(Path(extra)) if s not in shards]
        if kind is not None:
            shards = [s for s in shards if s.name.startswith(KIND_PREFIXES.get(kind, (f"{kind}-",)))]
        if not shards:
            raise FileNotFoundError(
                f"no shards under {root} for split={split} kind={kind}; generate them with `python main.py prepare synth`"
            )
        self.shards = shards

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def data_closeup_size(self) -> int:
        """Side of the head close-ups the data carries (0: none), from the first sample of each kind's first
        shard: enough to set `LoaderConfig.closeup_size` (samples without close-ups still load)."""
        first: dict[str, Path] = {}
        for path in self.shards:
            first.setdefault(path.name.split("-")[0], path)
        sizes = [refs[0].load().closeup_size for refs in map(index_shard, first.values()) if refs]
        return max(sizes, default=0)

    def _my_shards(self) -> list[Path]:
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.epoch_order()[rank * nw + wid :: world * nw]

    def epoch_order(self) -> list[Path]:
        if not self.shuffle:
            return list(self.shards)
        return [self.shards[i] for i in rng_for("shard-order", self.seed, self.epoch).permutation(len(self.shards))]

    def stream(self, shards: list[Path]) -> Iterator[SampleRef]:
        """The samples of `shards` through the shuffle buffer, as references: walking the stream reads only the
        shards' tar headers; `example` reads a sample's bytes."""
        buf: list[SampleRef] = []
        rng = rng_for("loader", self.seed, self.epoch, *[p.name for p in shards[:1]])
        for path in shards:
            for ref in index_shard(path):
                buf.append(ref)
                if len(buf) >= (self.cfg.shuffle_buffer if self.shuffle else 1):
                    yield buf.pop(int(rng.integers(len(buf))) if self.shuffle else 0)
        while buf:
            yield buf.pop(int(rng.integers(len(buf))) if self.shuffle else 0)

    def example(self, ref: SampleRef) -> dict:
        return make_example(ref.load(), rng_for("example", self.seed, self.epoch, ref.key), self.cfg)

    def __iter__(self) -> Iterator[dict]:
        for s in self.stream(self._my_shards()):
            yield self.example(s)


class GlobalBatches(IterableDataset):
    """This rank's part of each global batch, in the same order for any number of ranks and loader workers.

    One epoch is one stream of examples (shuffled shard order, then the shuffle buffer; it depends on the seed
    and the epoch only). Global batch g is examples [start + g*B*W, start + (g+1)*B*W) of that stream for B
    examples per rank and W ranks; rank r reads and decodes only the r-th B of them (walking the stream reads
    just the shards' tar headers). So W ranks with B each see exactly the batches one process with B*W sees,
    and a run resumed at example `start` continues the same stream on another number of ranks.

    Epochs follow one another inside the iterator (`epochs=None`: forever), so loader workers live for the whole
    run instead of restarting each pass. The global batches of all epochs are numbered in one sequence and
    worker w builds those with number % workers == w (a DataLoader takes batches from its workers in turn, so
    they arrive in order). Yields (epoch, g, batch); an incomplete last global batch of an epoch is dropped. An
    epoch that holds no full batch at all yields (epoch, -1, None) once and ends the iteration."""

    def __init__(
        self,
        ds: ShardDataset,
        per_rank: int,
        *,
        rank: int = 0,
        world: int = 1,
        start: int = 0,
        epoch: int = 0,
        epochs: int | None = 1,
    ):
        if not 0 <= rank < world or per_rank < 1 or start < 0 or epoch < 0:
            raise ValueError(f"bad split: rank {rank} of {world}, {per_rank} per rank, start {start}, epoch {epoch}")
        self.ds, self.per_rank, self.rank, self.world = ds, per_rank, rank, world
        self.start, self.epoch, self.epochs = start, epoch, epochs

    def __iter__(self) -> Iterator[tuple[int, int, dict | None]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        size = self.per_rank * self.world
        lo, hi = self.rank * self.per_rank, (self.rank + 1) * self.per_rank
        epoch, start, numbered, done = self.epoch, self.start, 0, 0
        while self.epochs is None or done < self.epochs:
            self.ds.set_epoch(epoch)
            full, mine = 0, []
            for k, s in enumerate(self.ds.stream(self.ds.epoch_order())):
                if k < start:
                    continue
                g, pos = divmod(k - start, size)
                ours = (numbered + g) % nw == wid
                if ours and lo <= pos < hi:
                    mine.append(self.ds.example(s))
                if pos == size - 1:
                    full = g + 1
                    if ours:
                        yield epoch, g, collate(mine)
                        mine = []
            if full == 0 and start == 0:  # the data cannot fill one batch: say so once, then stop
                if wid == 0:
                    yield epoch, -1, None
                return
            numbered, epoch, start, done = numbered + full, epoch + 1, 0, done + 1


def collate(examples: list[dict]) -> dict:
    """Stack examples into a batch (keys become a list)."""
    out: dict = {}
    for k in examples[0]:
        vals = [e[k] for e in examples]
        out[k] = vals if isinstance(vals[0], str) else torch.stack(vals)
    return out


IMAGE_KEYS: tuple[str, ...] = ("ref_full", "ref_face", "tgt_rgb", "tgt_mask", "tgt_closeup_rgb", "tgt_closeup_mask")


def to_float_images(batch: dict, device: torch.device | str | None = None) -> dict:
    """Move a batch to `device`, turning its uint8 images and masks into float in [0, 1] there."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True) if device is not None else v
            if k in IMAGE_KEYS:  # 8-bit images divide straight into float32: one launch, not a cast and a divide
                v = v / 255.0 if v.dtype == torch.uint8 else v.float() / 255.0
            out[k] = v
        else:
            out[k] = v
    return out
