"""Tabulate and plot the miniature paper findings that `bench/findings.sh` measured.

    python bench/findings.py bench/results/findings --png docs/training/findings.png

Reads `<arm>.json` (the output of `main.py eval` / `core.train.evaluate.evaluate`) for each arm and prints a
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
        path = folder / f"{stem}.json"
        if path.exists():
            out[stem] = json.loads(path.read_text())["benchmarks"]
    return out


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
    ap.add_argument("folder", type=Path)
    ap.add_argument("--png", type=Path, default=None)
    args = ap.parse_args(argv)
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
