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


def avatar_or_splats(source: str | Path):  # -> core.raster.types.Gaussians
    """The Gaussians of a 3DGS .ply or 'demo' (render.loading.load_splats), or of an avatar file as `main.py create`
    writes it, decoded as the studio shows it (what `export` writes to .ply). Raises FileNotFoundError, or ValueError
    saying which files work."""
    from render.loading import DEMO, load_splats

    if str(source) == DEMO or Path(source).suffix.lower() == ".ply":
        return load_splats(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    from app.avatar_source import AvatarLoadError, load_avatar
    from app.session import Session

    try:
        avatar = load_avatar(path)
    except AvatarLoadError as e:
        raise ValueError(
            f"cannot open {path.name}: give a 3DGS .ply, an avatar file as `python main.py create` writes it "
            f"(.safetensors), or 'demo' ({e})"
        ) from e
    return Session(avatar).gaussians().detach().to("cpu")


def add_render_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """`python main.py render`: render.cli's command, opening avatar files too (`avatar_or_splats`)."""
    from render.cli import add_render_cli as add

    return add(p, load=avatar_or_splats, file_help="an avatar file as `create` writes it, a 3DGS .ply, or 'demo'")
