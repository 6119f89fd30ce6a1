"""Face tracking accuracy on real faces labelled by eye: the project's face mesh tracker and FaceRetargeter read
every labelled frame of bench/labels/face_labels_real.json (clips and stills shipped inside PyPI packages, see
bench/face_real_data.py), and each channel's reading is scored against the label.

    python bench/face_real.py [--out bench/results/face_real.json] [--plot docs/face_real_tracking.png]

Scores per channel: MAE against the label (0 / 0.5 / 1), the mean reading at each label level (a bias shows as a
reading far from its level), and an on/off decision: a blink is on when the label says shut (1; half-closed or
lowered lids are not a blink) and read as on at >= 0.5; jaw, smile, frown and brows are on at label >= 0.5 and
read as on at >= 0.25. "default" is the retargeter as it starts (no calibration); "calibrated" takes the clip's
labelled neutral frame as the person's neutral (`FaceRetargeter.set_neutral`), only for the clips that have one.
Beside the scores: every eyeBlink reading of the frames labelled lowered or half-closed (0.5) and shut (1), with
the picture's under-lid measure (core/tracking/eye_image.py), and the time that measure takes per frame.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.face_real_data import SOURCES, Source, available_sources, read_frames  # noqa: E402
from core.io import write_json  # noqa: E402
from core.tracking.types import Landmarks  # noqa: E402

log = logging.getLogger("bench.face_real")
ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "bench" / "labels" / "face_labels_real.json"
DEFAULT_OUT = ROOT / "bench" / "results" / "face_real.json"

# Scored channel -> the retargeter channels whose mean is its reading.
READ_AS: dict[str, tuple[str, ...]] = {
    "jawOpen": ("jawOpen",),
    "eyeBlink": ("eyeBlinkLeft", "eyeBlinkRight"),
    "mouthSmile": ("mouthSmileLeft", "mouthSmileRight"),
    "mouthFrown": ("mouthFrownLeft", "mouthFrownRight"),
    "browDown": ("browDownLeft", "browDownRight"),
    "browInnerUp": ("browInnerUp",),
}
BROW_CODES = {"u": (0.0, 1.0), "n": (0.0, 0.0), "d": (1.0, 0.0)}  # code -> (browDown, browInnerUp)
DECISION = {"eyeBlink": (1.0, 0.5)}  # channel -> (label at or above which it is on, reading at or above which it is)
DEFAULT_DECISION = (0.5, 0.25)


def load_labels(path: Path = LABELS) -> dict[str, dict[int, dict[str, float | None]]]:
    """{source: {frame: {channel: label or None}}} with the brow code split into browDown and browInnerUp."""
    raw = json.loads(path.read_text())
    codes = raw["codes"]
    out: dict[str, dict[int, dict[str, float | None]]] = {}
    for name, entry in raw["sources"].items():
        first, last, step = entry["frames"]
        frames = list(range(first, last + 1, step))
        per: dict[int, dict[str, float | None]] = {f: {} for f in frames}
        for channel in ("jawOpen", "eyeBlink", "mouthSmile", "mouthFrown", "brow"):
            text = entry[channel]
            if len(text) != len(frames):
                raise ValueError(f"{path}: {name}.{channel} has {len(text)} labels for {len(frames)} frames")
            for f, c in zip(frames, text, strict=True):
                if channel == "brow":
                    per[f]["browDown"], per[f]["browInnerUp"] = BROW_CODES[c]
                else:
                    per[f][channel] = codes[c]
        out[name] = per
    return out


def neutral_frames(path: Path = LABELS) -> dict[str, int | None]:
    """The labelled neutral frame of each source (None: the source has none)."""
    return {k: v.get("neutral_frame") for k, v in json.loads(path.read_text())["sources"].items()}


def reading(channels: dict[str, float], scored: str) -> float:
    """The retargeter's value for a scored channel (mean of its sides)."""
    names = READ_AS[scored]
    return float(np.mean([channels.get(f"expr.{n}", 0.0) for n in names]))


def track_source(src: Source, frames: set[int], neutral: int | None) -> tuple[dict, dict[int, Landmarks]]:
    """{"default" | "calibrated": {frame: retargeter channels or None (no face)}} over the labelled frames, and
    the landmarks of those frames."""
    from core.tracking.face import FaceRetargeter
    from core.tracking.landmarks import Tracker

    default, calibrated = FaceRetargeter(), FaceRetargeter()
    out: dict[str, dict[int, dict[str, float] | None]] = {"default": {}}
    landmarks = {}
    with Tracker(face=True, body=False, hands=False) as tracker:
        for i, rgb in read_frames(src):
            if i in frames:
                landmarks[i] = tracker.track(rgb, i)
    for i, lm in landmarks.items():
        out["default"][i] = default(lm) if lm.face is not None else None
    if neutral is not None and neutral in landmarks and calibrated.set_neutral(landmarks[neutral]):
        out["calibrated"] = {i: (calibrated(lm) if lm.face is not None else None) for i, lm in landmarks.items()}
    return out, landmarks


def score(pairs: list[tuple[float, float]], channel: str) -> dict[str, float | int | dict]:
    """MAE, mean reading per label level and the on/off agreement of (label, reading) pairs."""
    if not pairs:
        return {"frames": 0}
    lab, got = np.array(pairs).T
    on_label, on_read = DECISION.get(channel, DEFAULT_DECISION)
    truth, said = lab >= on_label, got >= on_read
    by_level = {f"{v:g}": round(float(got[lab == v].mean()), 3) for v in (0.0, 0.5, 1.0) if (lab == v).any()}
    return {
        "frames": int(len(lab)),
        "mae": round(float(np.abs(got - lab).mean()), 4),
        "mean_reading_by_label": by_level,
        "frames_by_label": {f"{v:g}": int((lab == v).sum()) for v in (0.0, 0.5, 1.0) if (lab == v).any()},
        "accuracy": round(float((truth == said).mean()), 4),
        "false_on_rate": round(float(said[~truth].mean()), 4) if (~truth).any() else None,
        "miss_rate": round(float((~said[truth]).mean()), 4) if truth.any() else None,
    }


def summarise(
    labels: dict[str, dict[int, dict[str, float | None]]],
    reads: dict[str, dict[int, dict[str, float] | None]],
) -> dict:
    """Scores per channel over all sources in `reads` ({source: {frame: channels}}), and per source."""
    pooled: dict[str, list[tuple[float, float]]] = {c: [] for c in READ_AS}
    per_source: dict[str, dict] = {}
    found = total = 0
    for name, frames in reads.items():
        mine: dict[str, list[tuple[float, float]]] = {c: [] for c in READ_AS}
        for f, ch in frames.items():
            total += 1
            if ch is None:
                continue
            found += 1
            for c in READ_AS:
                lab = labels[name][f].get(c)
                if lab is not None:
                    mine[c].append((lab, reading(ch, c)))
        for c in READ_AS:
            pooled[c] += mine[c]
        per_source[name] = {c: score(mine[c], c).get("mae") for c in READ_AS}
    return {
        "frames": total,
        "face_found": found,
        "channels": {c: score(pooled[c], c) for c in READ_AS},
        "mae_by_source": per_source,
    }


def plot(labels: dict, reads: dict[str, dict[int, dict[str, float] | None]], path: Path) -> Path:
    """Reading (line) against label (steps) over time, one column per clip, one row per scored channel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = [n for n in reads if len(reads[n]) > 1]
    rows = list(READ_AS)
    fig, axes = plt.subplots(len(rows), len(clips), figsize=(5.2 * len(clips), 1.45 * len(rows)), squeeze=False)
    for j, name in enumerate(clips):
        frames = sorted(reads[name])
        for i, c in enumerate(rows):
            ax = axes[i, j]
            lab = [labels[name][f].get(c) for f in frames]
            got = [reading(reads[name][f], c) if reads[name][f] is not None else np.nan for f in frames]
            ax.step(frames, [np.nan if v is None else v for v in lab], where="mid", color="k", lw=1.6, label="label")
            ax.plot(frames, got, color="tab:red", lw=1.0, label="tracker")
            ax.set_ylim(-0.05, 1.05)
            ax.set_yticks([0, 0.5, 1])
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel(c, fontsize=8)
            if i == 0:
                ax.set_title(name, fontsize=9)
            if i == len(rows) - 1:
                ax.set_xlabel("frame", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def eye_readings(
    labels: dict[str, dict[int, dict[str, float | None]]],
    reads: dict[str, dict[str, dict[int, dict[str, float] | None]]],
    landmarks: dict[str, dict[int, Landmarks]],
) -> dict[str, dict[str, dict[str, str]]]:
    """{source: {"0.5" | "1": {frame: "eyeBlink D (calibrated C), under-lid light R / L"}}} for the frames labelled
    lowered or half-closed, and shut (frames without a face left out); one line a frame in the results file."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for name, frames in reads["default"].items():
        for f in sorted(frames):
            level, ch = labels[name][f].get("eyeBlink"), frames[f]
            if level not in (0.5, 1.0) or ch is None:
                continue
            text = f"eyeBlink {reading(ch, 'eyeBlink'):.3f}"
            cal = reads["calibrated"].get(name, {}).get(f)
            if cal is not None:
                text += f" (calibrated {reading(cal, 'eyeBlink'):.3f})"
            light = landmarks[name][f].under_lid_light
            if light is not None:
                text += f", under-lid light {light[0]:.3f} / {light[1]:.3f}"
            out.setdefault(name, {}).setdefault(f"{level:g}", {})[str(f)] = text
    return out


def evaluate(names: list[str] | None = None, *, labels_path: Path = LABELS, plot_path: Path | None = None) -> dict:
    """Track every labelled frame of the installed sources and score it (see the module docstring)."""
    t0 = time.perf_counter()
    labels, neutrals = load_labels(labels_path), neutral_frames(labels_path)
    reads: dict[str, dict[str, dict]] = {"default": {}, "calibrated": {}}
    landmarks: dict[str, dict[int, Landmarks]] = {}
    for src in available_sources(names):
        if src.name not in labels:
            continue
        got, landmarks[src.name] = track_source(src, set(labels[src.name]), neutrals.get(src.name))
        for mode, frames in got.items():
            reads[mode][src.name] = frames
        log.info("%s: %d labelled frames tracked", src.name, len(got["default"]))
    calibrated_sources = list(reads["calibrated"])
    result = {
        "labels": str(labels_path.relative_to(ROOT)) if labels_path.is_relative_to(ROOT) else str(labels_path),
        "sources": {s.name: s.about for s in SOURCES if s.name in reads["default"]},
        "default": summarise(labels, reads["default"]),
        "calibrated": summarise(labels, reads["calibrated"]),
        "default_on_calibrated_sources": summarise(
            labels, {k: v for k, v in reads["default"].items() if k in calibrated_sources}
        ),
        "calibrated_sources": calibrated_sources,
        "eyeBlink_lowered_and_shut": eye_readings(labels, reads, landmarks),
        "eyes_ms_median": round(
            float(
                np.median(
                    [lm.timings_ms["eyes"] for per in landmarks.values() for lm in per.values() if lm.face is not None]
                )
            ),
            3,
        ),
        "decisions": {
            "eyeBlink": "on: label 1 (shut); read on at >= 0.5",
            "others": "on: label >= 0.5; read on at >= 0.25",
        },
    }
    if plot_path is not None:
        result["plot"] = str(plot(labels, reads["default"], plot_path))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--plot", type=Path, default=None, help="PNG of tracker channel against label over time")
    p.add_argument("--labels", type=Path, default=LABELS)
    p.add_argument("--sources", nargs="*", default=None, help=f"of {[s.name for s in SOURCES]}")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    res = evaluate(args.sources, labels_path=args.labels, plot_path=args.plot)
    write_json(args.out, res)
    for mode in ("default", "calibrated"):
        for c, s in res[mode]["channels"].items():
            if s.get("frames"):
                log.info(
                    "%-10s %-11s MAE %.3f  acc %.2f  false-on %s  by label %s",
                    mode, c, s["mae"], s["accuracy"], s["false_on_rate"], s["mean_reading_by_label"],
                )  # fmt: skip
    log.info("written %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
