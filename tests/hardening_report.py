"""Turn the hardening tests' JSON tallies into the markdown table of docs/RELIABILITY.md.

LCA_RELIABILITY_DIR=/tmp/rel python -m pytest tests/test_hardening_*.py
python tests/hardening_report.py /tmp/rel --write docs/RELIABILITY.md
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

BEGIN, END = "<!-- table:begin -->", "<!-- table:end -->"


def table(folder: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    if not rows:
        raise SystemExit(f"no tallies in {folder}; run the hardening tests with LCA_RELIABILITY_DIR={folder} first")
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
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--write", type=Path, help="replace the table between the markers in this markdown file")
    args = p.parse_args(argv)
    md = table(args.folder)
    if args.write is None:
        print(md)
        return 0
    text = args.write.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{args.write} has no {BEGIN} ... {END} markers")
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: f"{BEGIN}\n{md}\n{END}", text, flags=re.S)
    args.write.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
