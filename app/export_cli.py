"""`python main.py export AVATAR --out FILE.ply`: an avatar as a 3DGS .ply, posed and edited as the studio shows it."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def add_export_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    p.add_argument("avatar", help="an avatar file (.safetensors) or a .ply")
    p.add_argument("--out", default=None, help="the .ply to write (default: beside the avatar)")

    def run(args: argparse.Namespace) -> int:
        from app.avatar_source import AvatarLoadError, load_avatar
        from app.exports import export_ply
        from app.session import Session
        from core.io import check_output_path

        out = Path(args.out) if args.out else Path(args.avatar).with_suffix(".ply")
        check_output_path(out, ".ply file")
        try:
            avatar = load_avatar(args.avatar)
        except AvatarLoadError as e:
            log.error("%s", e)
            return 2
        log.info("wrote %s", export_ply(Session(avatar), out))
        return 0

    return run
