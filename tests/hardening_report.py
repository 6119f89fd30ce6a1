"""Turn the hardening tests' JSON tallies into the markdown table of docs/RELIABILITY.md.

LCA_RELIABILITY_DIR=/tmp/rel python -m pytest tests/test_hardening_*.py   (-m slow as well: every CLI case)
python tests/hardening_report.py /tmp/rel --write docs/RELIABILITY.md
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

BEGIN, END = "<!-- table:begin -->", "<!-- table:end -->"
SOAK_BEGIN, SOAK_END = "<!-- soak:begin -->", "<!-- soak:end -->"
CLI_BEGIN, CLI_END = "<!-- cli:begin -->", "<!-- cli:end -->"


def table(folder: Path) -> str:
    every = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    if not every:
        raise SystemExit(f"no tallies in {folder}; run the hardening tests with LCA_RELIABILITY_DIR={folder} first")
    rows = [r for r in every if r.get("section", "inputs") == "inputs"]
    faults = [r for r in every if r.get("section") == "faults"]
    lines = [
        "| input kind | corruption | cases | loaded | refused (error types) | unexpected | slowest case |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: (r["input_kind"], r["corruption"])):
        errors = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "-"
        lines.append(
            f"| {r['input_kind']} | {r['corruption']} | {r['cases']} | {r['loaded']} | {r['refused']} ({errors}) "
            f"| {len(r['failures'])} | {1000 * r['max_seconds']:.0f} ms |"
        )
    total = sum(r["cases"] for r in rows)
    bad = sum(len(r["failures"]) for r in rows)
    lines.append(f"| **all** | | **{total}** | | | **{bad}** | |")
    if faults:
        lines += [
            "",
            "| fault | how | cases | survived | details | unexpected | slowest check |",
            "|---|---|---:|---:|---|---:|---:|",
        ]
        for r in sorted(faults, key=lambda r: (r["input_kind"], r["corruption"])):
            details = ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "-"
            lines.append(
                f"| {r['input_kind']} | {r['corruption']} | {r['cases']} | {r['loaded']} | {details} "
                f"| {len(r['failures'])} | {1000 * r['max_seconds']:.0f} ms |"
            )
    return "\n".join(lines)


def soak_table(folder: Path) -> str | None:
    """One row per soak run found in `folder`/soak (written by tests/test_hardening_soak.py or soak_studio.py)."""
    runs = [json.loads(p.read_text()) for p in sorted((folder / "soak").glob("*.json"))]
    if not runs:
        return None
    lines = [
        "| duration | frames (FPS) | replay restarts | RSS MiB: after warm-up -> end (max) | threads | live GL objects "
        "| GUI items: start -> end | samples |",
        "|---|---:|---:|---|---|---|---|---:|",
    ]
    for r in sorted(runs, key=lambda r: r["minutes"]):
        s = r["samples"]
        warm = s[len(s) // 4 :]
        rss = [x["rss_mib"] for x in warm]
        th, gl = [x["threads"] for x in s], [x["gl_objects"] for x in warm]
        span = lambda v: f"{min(v)}" if min(v) == max(v) else f"{min(v)}-{max(v)}"  # noqa: E731
        lines.append(
            f"| {r['seconds'] / 60:.1f} min | {r['frames']} ({r['fps']:.1f}) | {r['restarts']} "
            f"| {rss[0]:.0f} -> {rss[-1]:.0f} ({max(rss):.0f}) | {span(th)} | {span(gl)} "
            f"| {s[0]['dpg_items']} -> {s[-1]['dpg_items']} | {len(s)} |"
        )
    return "\n".join(lines)


def _replace(text: str, begin: str, end: str, body: str) -> str:
    return re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{body}\n{end}", text, flags=re.S)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--write", type=Path, help="replace the table between the markers in this markdown file")
    args = p.parse_args(argv)
    md = table(args.folder)
    if args.write is None:
        print(md)
        print(soak_table(args.folder) or "")
        return 0
    text = args.write.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{args.write} has no {BEGIN} ... {END} markers")
    new = _replace(text, BEGIN, END, md)
    soak = soak_table(args.folder)
    if soak is not None and SOAK_BEGIN in new:
        new = _replace(new, SOAK_BEGIN, SOAK_END, soak)
    cli = [json.loads(p.read_text()) for p in sorted((args.folder / "cli").glob("*.json"))]
    if cli and CLI_BEGIN in new:  # written by tests/test_hardening_cli.py or tests/hardening_cli.py
        from hardening_cli import cli_table

        new = _replace(new, CLI_BEGIN, CLI_END, cli_table(cli))
    args.write.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
