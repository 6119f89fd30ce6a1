"""Tabulate and plot the paper's findings in miniature, with 95% confidence intervals, from the per-identity,
per-seed evaluation JSON that `bench/findings.sh` writes.

    python bench/findings.py out/findings --png docs/training/findings.png --md out/findings/findings.md

Layout read: `<folder>/<arm>/seed<k>/eval.json` (`main.py eval` output: `per_identity` under each benchmark) and,
for finding (4), `<folder>/personalise/seed<k>.json` (`bench/personalise.py`). Older single-seed folders
(`<arm>.json` or `<arm>/eval.json` with means only) are read too, without intervals.

Statistics: an arm's value is the mean over seeds and identities of one metric (person-only PSNR by default). Its 95%
interval is a percentile bootstrap that resamples seeds and identities together (a crossed design: the same test
identities are scored for every seed), so it holds both the training noise and the choice of test people. A
finding compares two arms on the same (seed, identity) pairs: the interval of the mean difference says whether the
paper's order holds (interval above 0), is reversed (below 0) or is not resolved (it spans 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BENCHES = ("wild-test", "studio-test", "loose-test")
# (stem, label, training) in the order of the write-up
ARMS: tuple[tuple[str, str], ...] = (
    ("f-posttrain", "pre-train -> post-train"),
    ("f-studio-only", "studio-only"),
    ("f-mixed", "mixed"),
    ("f-single-post", "single-branch decoder, pre -> post"),
    ("f-wild-12", "pre-train only, 12 wild identities"),
    ("f-wild-36", "pre-train only, 36 wild identities"),
    ("f-pretrain", "pre-train only, all wild identities"),
    ("f-loose", "pre -> post, then post-training with the skinning-weight correction"),
    ("f-post-more", "pre -> post, then the same post-training without it"),
)
# (finding, better arm by the paper, worse arm by the paper, benchmark)
FINDINGS: tuple[tuple[str, str, str, str], ...] = (
    ("(1) pre -> post beats studio-only", "f-posttrain", "f-studio-only", "studio-test"),
    ("(1) pre -> post beats mixed", "f-posttrain", "f-mixed", "studio-test"),
    ("(1) pre -> post beats studio-only (wild)", "f-posttrain", "f-studio-only", "wild-test"),
    ("(2) 36 beats 12 wild identities", "f-wild-36", "f-wild-12", "wild-test"),
    ("(2) 96 beats 36 wild identities", "f-pretrain", "f-wild-36", "wild-test"),
    ("(3) dual beats single branch", "f-posttrain", "f-single-post", "studio-test"),
    ("(3) dual beats single branch (wild)", "f-posttrain", "f-single-post", "wild-test"),
    ("(5) skinning correction helps loose garments", "f-loose", "f-post-more", "loose-test"),
    ("(5) skinning correction, studio-test", "f-loose", "f-post-more", "studio-test"),
)
PERSONALISE_ARMS = ("feed_forward", "per_subject", "feed_forward_refined")
BOOT = 4000


@dataclass(frozen=True)
class Scores:
    """One arm on one benchmark: values [S seeds, I identities] of one metric (NaN where missing)."""

    values: np.ndarray
    keys: list[str]  # identity keys, in column order
    per_identity: bool  # False: older JSON with means only (one value, no interval)


def _value(entry: dict, region: str, metric: str) -> float:
    """A metric from an `evaluate` summary entry (new: entry[region][metric]; old flat keys: psnr = frame,
    psnr_masked = person PSNR)."""
    if region in entry:
        return float(entry[region][metric])
    if region == "person" and metric == "psnr" and "psnr_masked" in entry:
        return float(entry["psnr_masked"])
    if region == "frame" and metric in entry:
        return float(entry[metric])
    return float("nan")


def load_arm(folder: Path, stem: str, bench: str, region: str, metric: str) -> Scores | None:
    """The scores of arm `stem` on `bench`, from every seed found."""
    seeds = sorted((folder / stem).glob("seed*/eval.json")) if (folder / stem).is_dir() else []
    if seeds:
        rows, keys = [], None
        for path in seeds:
            b = json.loads(path.read_text())["benchmarks"].get(bench)
            if b is None or "per_identity" not in b:
                continue
            ids = b["per_identity"]
            keys = keys or [r.get("key", str(i)) for i, r in enumerate(ids)]
            by_key = {r.get("key", str(i)): _value(r, region, metric) for i, r in enumerate(ids)}
            rows.append([by_key.get(k, np.nan) for k in keys])
        if rows:
            return Scores(np.asarray(rows, dtype=float), keys or [], True)
    for path in (folder / f"{stem}.json", folder / stem / "eval.json"):
        if path.exists():
            b = json.loads(path.read_text())["benchmarks"].get(bench)
            if b is None:
                return None
            if "per_identity" in b:
                ids = b["per_identity"]
                return Scores(
                    np.asarray([[_value(r, region, metric) for r in ids]]), [r.get("key", "") for r in ids], True
                )
            return Scores(np.asarray([[_value(b["all"], region, metric)]]), ["mean"], False)
    return None


def bootstrap_mean(values: np.ndarray, *, boot: int = BOOT, seed: int = 0) -> tuple[float, float, float]:
    """Mean of [S, I] values and its 95% percentile interval, resampling seeds and identities (crossed)."""
    v = np.asarray(values, dtype=float)
    mean = float(np.nanmean(v))
    S, n_id = v.shape
    if S * n_id < 2:
        return mean, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    si = rng.integers(0, S, size=(boot, S))
    ii = rng.integers(0, n_id, size=(boot, n_id))
    means = np.array([np.nanmean(v[np.ix_(si[b], ii[b])]) for b in range(boot)])
    lo, hi = np.percentile(means, [2.5, 97.5])
    return mean, float(lo), float(hi)


def variance_components(values: np.ndarray) -> dict[str, float]:
    """Spread of an arm's scores [S, I]: the standard deviation between seeds (of the per-seed means over
    identities) and between identities (of the per-identity means over seeds)."""
    v = np.asarray(values, dtype=float)
    return {
        "seed_sd": float(np.nanstd(np.nanmean(v, 1), ddof=1)) if v.shape[0] > 1 else float("nan"),
        "identity_sd": float(np.nanstd(np.nanmean(v, 0), ddof=1)) if v.shape[1] > 1 else float("nan"),
        "seeds": int(v.shape[0]),
        "identities": int(v.shape[1]),
    }


def paired(a: Scores, b: Scores) -> np.ndarray | None:
    """a - b on the (seed, identity) pairs both have; None when they share none or lack per-identity values."""
    if not (a.per_identity and b.per_identity):
        return None
    common = [k for k in a.keys if k in b.keys]
    S = min(a.values.shape[0], b.values.shape[0])
    if not common or S == 0:
        return None
    ia = [a.keys.index(k) for k in common]
    ib = [b.keys.index(k) for k in common]
    return a.values[:S][:, ia] - b.values[:S][:, ib]


def verdict(lo: float, hi: float) -> str:
    if not np.isfinite(lo):
        return "no interval (one value)"
    if lo > 0:
        return "holds"
    if hi < 0:
        return "reversed"
    return "not resolved (the interval spans 0)"


def fmt(mean: float, lo: float, hi: float, digits: int = 2) -> str:
    if not np.isfinite(lo):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def report(folder: Path, region: str = "person", metric: str = "psnr") -> tuple[str, dict]:
    """Markdown tables (arms, findings, finding (4), variance) and the numbers behind them."""
    data: dict = {"arms": {}, "findings": {}, "personalise": {}, "region": region, "metric": metric}
    lines = [f"Metric: {region} {metric.upper()}; means with 95% bootstrap intervals over seeds and identities.", ""]
    lines += ["| arm | " + " | ".join(BENCHES) + " | seeds x identities |", "|---|" + "---|" * (len(BENCHES) + 1)]
    scores: dict[tuple[str, str], Scores] = {}
    for stem, label in ARMS:
        cells, shape = [], ""
        for bench in BENCHES:
            s = load_arm(folder, stem, bench, region, metric)
            if s is None:
                cells.append("-")
                continue
            scores[stem, bench] = s
            m, lo, hi = bootstrap_mean(s.values)
            data["arms"].setdefault(stem, {})[bench] = {"mean": m, "lo": lo, "hi": hi, **variance_components(s.values)}
            cells.append(fmt(m, lo, hi))
            shape = f"{s.values.shape[0]} x {s.values.shape[1]}" if s.per_identity else "1 seed, means only"
        if any(c != "-" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {shape} |")
    lines += ["", "| finding (paper's order) | benchmark | difference (dB) | the paper's order |", "|---|---|---|---|"]
    for name, better, worse, bench in FINDINGS:
        a, b = scores.get((better, bench)), scores.get((worse, bench))
        if a is None or b is None:
            continue
        d = paired(a, b)
        if d is None:
            m, lo, hi = float(np.nanmean(a.values) - np.nanmean(b.values)), float("nan"), float("nan")
        else:
            m, lo, hi = bootstrap_mean(d)
        data["findings"][name] = {"bench": bench, "mean": m, "lo": lo, "hi": hi, "verdict": verdict(lo, hi)}
        lines.append(f"| {name} | {bench} | {fmt(m, lo, hi)} | {verdict(lo, hi)} |")
    pers = personalise_report(folder, region, metric)
    if pers:
        data["personalise"] = pers["data"]
        lines += ["", *pers["lines"]]
    if data["arms"]:
        lines += ["", "| arm | benchmark | sd between seeds | sd between identities |", "|---|---|---|---|"]
        for stem, label in ARMS:
            for bench, v in data["arms"].get(stem, {}).items():
                lines.append(f"| {label} | {bench} | {v['seed_sd']:.2f} | {v['identity_sd']:.2f} |")
    return "\n".join(lines), data


def personalise_report(folder: Path, region: str, metric: str) -> dict | None:
    """Finding (4) from `personalise/seed*.json`: the three arms and the feed-forward minus per-subject gap."""
    files = sorted((folder / "personalise").glob("seed*.json")) if (folder / "personalise").is_dir() else []
    files = files or ([folder / "personalise.json"] if (folder / "personalise.json").exists() else [])
    if not files:
        return None
    runs = [json.loads(p.read_text()) for p in files]
    lines = [
        "| finding (4), per-subject baseline | benchmark | "
        + " | ".join(PERSONALISE_ARMS)
        + " | seconds per identity |",
        "|---|---|" + "---|" * (len(PERSONALISE_ARMS) + 1),
    ]
    data = {}
    for bench in BENCHES:
        per = [r["benchmarks"][bench]["per_identity"] for r in runs if bench in r["benchmarks"]]
        if not per:
            continue
        vals = {a: np.asarray([[row[a][region][metric] for row in rows] for rows in per]) for a in PERSONALISE_ARMS}
        secs = {a: float(np.mean([[row[a]["seconds"] for row in rows] for rows in per])) for a in PERSONALISE_ARMS}
        stats = {a: bootstrap_mean(v) for a, v in vals.items()}
        gap = bootstrap_mean(vals["feed_forward"] - vals["per_subject"])
        data[bench] = {a: {"mean": s[0], "lo": s[1], "hi": s[2], "seconds": secs[a]} for a, s in stats.items()}
        data[bench]["feed_forward_minus_per_subject"] = {"mean": gap[0], "lo": gap[1], "hi": gap[2]}
        cells = " | ".join(fmt(*stats[a]) for a in PERSONALISE_ARMS)
        times = " / ".join(f"{secs[a]:.2f}" for a in PERSONALISE_ARMS)
        lines.append(f"| {metric} ({region}) | {bench} | {cells} | {times} |")
        lines.append(f"| feed-forward minus per-subject | {bench} | {fmt(*gap)} | | | |")
    return {"lines": lines, "data": data}


def plot(data: dict, png: Path, wild: int = 96) -> None:
    """Dots with 95% error bars (no bars: a bar's zero baseline would be a false axis for PSNR)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=110, gridspec_kw={"width_ratios": [2, 1]})
    recipes = [(s, lbl) for s, lbl in ARMS[:4] if s in data["arms"]]
    for k, bench in enumerate(BENCHES):
        xs, ms, err = [], [], []
        for i, (stem, _) in enumerate(recipes):
            v = data["arms"][stem].get(bench)
            if v is None:
                continue
            xs.append(i + (k - 0.5) * 0.25)
            ms.append(v["mean"])
            err.append([v["mean"] - v["lo"], v["hi"] - v["mean"]] if np.isfinite(v["lo"]) else [0, 0])
        if xs:
            a.errorbar(xs, ms, yerr=np.asarray(err).T, fmt="o", capsize=4, label=bench)
    a.set_xticks(
        range(len(recipes)), [lbl.replace(", ", "\n").replace(" -> ", " ->\n") for _, lbl in recipes], fontsize=8
    )
    label = f"{data['region']} {data['metric'].upper()} (dB), mean and 95% interval"
    a.set_ylabel(label)
    a.set_title("Training recipes")
    a.legend()
    sizes = [(n, s) for n, s in ((12, "f-wild-12"), (36, "f-wild-36"), (wild, "f-pretrain")) if s in data["arms"]]
    pts = [(n, data["arms"][s]["wild-test"]) for n, s in sizes if "wild-test" in data["arms"][s]]
    if pts:
        ns = [n for n, _ in pts]
        ms = [v["mean"] for _, v in pts]
        err = [[v["mean"] - v["lo"], v["hi"] - v["mean"]] if np.isfinite(v["lo"]) else [0, 0] for _, v in pts]
        b.errorbar(ns, ms, yerr=np.asarray(err).T, fmt="o-", capsize=4)
        b.set_xscale("log")
        b.minorticks_off()
        b.set_xticks(ns, [str(n) for n in ns])
    b.set_xlabel("wild identities in pre-training")
    b.set_ylabel(f"wild-test {label}")
    b.set_title("Pre-training data")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.suptitle("Paper findings in miniature (synthetic data; intervals over seeds and test identities)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)


def archive(folder: Path, dest: Path, device: str) -> None:
    """Write the per-identity person metrics of every arm and seed (per_identity.json) and each run's held-out
    curve and training loss (curves.json) to `dest`: what a findings folder keeps in docs once the runs are gone."""
    per: dict = {}
    curves: dict = {}
    for arm_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        for seed_dir in sorted(arm_dir.glob("seed*")):
            ev = seed_dir / "eval.json"
            if ev.exists():
                benches = json.loads(ev.read_text())["benchmarks"]
                per.setdefault(arm_dir.name, {})[seed_dir.name] = {
                    b: [{"key": r["key"], **{m: round(r["person"][m], 4) for m in ("psnr", "ssim", "l1")}}
                        for r in v["per_identity"]]
                    for b, v in benches.items() if "per_identity" in v
                }
            log = seed_dir / "metrics.jsonl"
            if log.exists():
                rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
                curves.setdefault(arm_dir.name, {})[seed_dir.name] = {
                    "val_person_psnr": [[r["step"], round(r["psnr"], 3)] for r in rows if r.get("kind") == "eval"],
                    "train_loss": [[r["step"], round(r["loss"], 4)] for r in rows
                                   if r.get("kind") == "train" and r["step"] % 25 == 0],
                }
    dest.mkdir(parents=True, exist_ok=True)
    metric = f"person PSNR / SSIM / L1 per test identity (main.py eval, 192 px, {device})"
    (dest / "per_identity.json").write_text(json.dumps({"metric": metric, "arms": per}, indent=1) + "\n")
    note = "held-out curve (person PSNR on split 'val', every 50 steps) and training loss, per arm and seed"
    (dest / "curves.json").write_text(json.dumps({"note": note, "arms": curves}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--region", choices=("person", "frame"), default="person")
    ap.add_argument("--metric", choices=("psnr", "ssim", "l1"), default="psnr")
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--wild", type=int, default=96, help="wild identities of the full pre-training (findings.sh WILD)")
    ap.add_argument("--md", type=Path, default=None, help="also write the tables here")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    ap.add_argument("--archive", type=Path, default=None,
                    help="also write per_identity.json and curves.json (every arm and seed) into this folder")
    ap.add_argument("--device", default="NVIDIA H200", help="the device named in the archive")
    args = ap.parse_args(argv)
    text, data = report(args.folder, args.region, args.metric)
    if not data["arms"] and not data["personalise"]:
        print(f"no arm results under {args.folder}; run bench/findings.sh first", file=sys.stderr)
        return 2
    print(text)
    for out in (args.md, args.json, args.png):
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
    if args.md:
        args.md.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    if args.png:
        plot(data, args.png, args.wild)
        print(f"wrote {args.png}")
    if args.archive:
        archive(args.folder, args.archive, args.device)
        print(f"wrote {args.archive}/per_identity.json and curves.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
