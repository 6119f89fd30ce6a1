"""Load the splats a viewer or the `render` command is pointed at."""

from __future__ import annotations

from pathlib import Path

from core.raster.types import Gaussians

DEMO = "demo"  # a built-in avatar-like scene, for trying the viewer without a file


def load_splats(source: str | Path, *, demo_count: int = 50_000) -> Gaussians:
    """Gaussians from a 3DGS `.ply`, or the built-in demo figure when `source` is "demo"."""
    if str(source) == DEMO:
        from render.scenes import avatar_like_scene

        return avatar_like_scene(demo_count)
    path = Path(source)
    if path.suffix.lower() != ".ply":
        raise ValueError(
            f"cannot open {path}: only 3DGS .ply files (and 'demo') are supported so far; "
            "export an avatar to .ply first (`python main.py export`)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    from core.raster.ply import load_ply

    return load_ply(path)
