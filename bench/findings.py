"""Tabulate and plot the miniature paper findings that `bench/findings.sh` measured.

    python bench/findings.py bench/results/findings --png docs/training/findings.png
    python bench/findings.py --sweep bench/results/findings bench/results/findings-600 bench/results/findings-1200 \
        --png docs/training/findings_budget.png

Reads `<arm>.json` (or `<arm>/eval.json`) for each arm; `--sweep` takes one folder per training budget (the
`ARMS=trio` runs of findings.sh) and plots finding (1) against the number of steps.

Each `<arm>.json` is the output of `main.py eval` / `core.train.evaluate.evaluate`) for each arm and prints a
Markdown table of PSNR / SSIM on wild-test and studio-test (all held-out frames: novel views and novel poses).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# (arm, file stem, training) in the order of the write-up
ARMS: tuple[tuple[str, str, str], ...] = (
    ("pre-train -> post-train", "f-posttrain", "150 wild + 75 studio steps"),
    ("studio-only", "f-studio-only", "225 studio steps"),
    ("mixed", "f-mixed", "225 steps, wild + studio"),
    ("single-branch decoder, pre -> post", "f-single-post", "150 wild + 75 studio steps"),
    ("pre-train only, 12 wild identities", "f-wild-12", "150 wild steps"),
    ("pre-train only, 36 wild identities", "f-wild-36", "150 wild steps"),
    ("pre-train only, 96 wild identities", "f-pretrain", "150 wild steps"),
)
BENCHES = ("wild-test", "studio-test")


def load(folder: Path) -> dict[str, dict]:
    out = {}
    for _, stem, _ in ARMS:
        for path in (folder / f"{stem}.json", folder / stem / "eval.json"):
            if path.exists():
                out[stem] = json.loads(path.read_text())["benchmarks"]
                break
    return out


TRIO = ARMS[:3]


def total_steps(folder: Path) -> int:
    """Training steps of the studio-only arm (the budget every arm of finding (1) had)."""
    lines = (folder / "f-studio-only.metrics.jsonl").read_text().splitlines()
    return 1 + max(json.loads(line)["step"] for line in lines if line.strip())


def sweep_table(folders: list[Path]) -> tuple[list[int], dict[str, dict[str, list[float]]], str]:
    """PSNR of the three recipes per budget: (steps, {stem: {bench: [psnr per budget]}}, Markdown table)."""
    runs = sorted(((total_steps(f), load(f)) for f in folders), key=lambda r: r[0])
    steps = [n for n, _ in runs]
    psnr = {stem: {b: [res[stem][b]["all"]["psnr"] for _, res in runs] for b in BENCHES} for _, stem, _ in TRIO}
    head = "| arm | " + " | ".join(f"{n} steps: wild / studio" for n in steps) + " |"
    rows = [head, "|---|" + "---|" * len(steps)]
    for arm, stem, _ in TRIO:
        cells = [f"{psnr[stem]['wild-test'][i]:.2f} / {psnr[stem]['studio-test'][i]:.2f}" for i in range(len(steps))]
        rows.append(f"| {arm} | " + " | ".join(cells) + " |")
    return steps, psnr, "\n".join(rows)


def sweep_plot(steps: list[int], psnr: dict[str, dict[str, list[float]]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110, sharey=True)
    for ax, bench in zip(axes, BENCHES, strict=True):
        for arm, stem, _ in TRIO:
            ax.plot(steps, psnr[stem][bench], "o-", label=arm)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(steps, [str(n) for n in steps])
        ax.set_xlabel("training steps (pre-train + post-train for the first arm)")
        ax.set_title(bench)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("PSNR (dB), 4 held-out identities")
    axes[0].legend(fontsize=8)
    fig.suptitle("Finding (1) against the training budget: base model, 96 wild + 48 studio identities, 192 px")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)


def table(results: dict[str, dict]) -> str:
    rows = ["| arm | training | wild-test PSNR / SSIM | studio-test PSNR / SSIM |", "|---|---|---|---|"]
    for arm, stem, how in ARMS:
        if stem not in results:
            continue
        cells = [f"{results[stem][b]['all']['psnr']:.2f} / {results[stem][b]['all']['ssim']:.3f}" for b in BENCHES]
        rows.append(f"| {arm} | {how} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def plot(results: dict[str, dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), dpi=110, gridspec_kw={"width_ratios": [2, 1]})
    arms = [(arm, stem) for arm, stem, _ in ARMS[:4] if stem in results]
    x = range(len(arms))
    for k, bench in enumerate(BENCHES):
        vals = [results[stem][bench]["all"]["psnr"] for _, stem in arms]
        a.bar([i + (k - 0.5) * 0.38 for i in x], vals, width=0.38, label=bench)
        for i, v in zip(x, vals, strict=True):
            a.text(i + (k - 0.5) * 0.38, v + 0.03, f"{v:.2f}", ha="center", fontsize=8)
    a.set_xticks(list(x), [arm.replace(", ", "\n").replace(" -> ", " ->\n") for arm, _ in arms], fontsize=8)
    a.set_ylim(20, 22.6)
    a.set_ylabel("PSNR (dB), held-out identities")
    a.set_title("Training recipe (225 steps each)")
    a.legend()
    sizes = [(12, "f-wild-12"), (36, "f-wild-36"), (96, "f-pretrain")]
    sizes = [(n, s) for n, s in sizes if s in results]
    b.plot([n for n, _ in sizes], [results[s]["wild-test"]["all"]["psnr"] for _, s in sizes], "o-")
    b.set_xscale("log")
    b.minorticks_off()
    b.set_xticks([n for n, _ in sizes], [str(n) for n, _ in sizes])
    b.set_xlabel("wild identities in pre-training")
    b.set_ylabel("wild-test PSNR (dB)")
    b.set_title("Pre-training data (150 steps)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.suptitle("Paper findings in miniature: base model, 192 px synthetic data, 4 test identities per set")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, nargs="?")
    ap.add_argument("--sweep", type=Path, nargs="+", default=None, metavar="FOLDER", help="one folder per budget")
    ap.add_argument("--png", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.sweep:
        steps, psnr, text = sweep_table(args.sweep)
        print(text)
        if args.png:
            sweep_plot(steps, psnr, args.png)
            print(f"wrote {args.png}")
        return 0
    if args.folder is None:
        ap.error("give a results folder, or --sweep FOLDER ...")
    results = load(args.folder)
    if not results:
        print(f"no <arm>.json under {args.folder}; run bench/findings.sh first", file=sys.stderr)
        return 2
    print(table(results))
    if args.png:
        plot(results, args.png)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
