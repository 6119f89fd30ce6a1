"""`python main.py train CONFIG`: run or resume a training run (also under `torchrun`)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

import yaml

log = logging.getLogger(__name__)


def parse_overrides(items: list[str]) -> dict:
    """`a.b=3` pairs -> nested dict; values parsed as YAML scalars (numbers, booleans, null, strings)."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out


def add_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    p.add_argument("config", help="training YAML, e.g. configs/train/pretrain-base.yaml")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields (data.root=...)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in the run folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")

    def run(args: argparse.Namespace) -> int:
        from core.config import ConfigError
        from core.train.config import load_train_config
        from core.train.loop import train

        try:
            cfg = load_train_config(args.config, parse_overrides(args.set))
        except (ConfigError, FileNotFoundError) as e:
            log.error("%s", e)
            return 2
        final = train(cfg, resume=not args.fresh, progress=not args.no_progress)
        log.info("finished %s: %s", cfg.run_dir, {k: round(v, 4) for k, v in final.items()})
        return 0

    return run
