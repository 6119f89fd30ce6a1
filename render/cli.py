"""`main.py view` and `main.py render`: the renderer on the command line."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def _color(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected three numbers in [0, 1] like 1,1,1, got {text!r}") from e
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers in [0, 1] like 1,1,1, got {text!r}")
    return values  # type: ignore[return-value]


def add_view_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    p.add_argument("file", help="a 3DGS .ply, or 'demo' for a built-in avatar-like scene")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=800)
    p.add_argument("--background", type=_color, default=(0.1, 0.1, 0.12), help="r,g,b in [0, 1]")
    p.add_argument("--frames", type=int, default=None, help="close after this many frames (for scripts)")

    def run(args: argparse.Namespace) -> int:
        from render.loading import load_splats
        from render.viewer import run_viewer

        try:
            gaussians = load_splats(args.file)
        except (ValueError, FileNotFoundError) as e:
            log.error("%s", e)
            return 2
        log.info("viewing %d Gaussians from %s", gaussians.num, args.file)
        return run_viewer(
            gaussians, width=args.width, height=args.height, background=args.background, max_frames=args.frames,
            title=f"{Path(args.file).name}: {gaussians.num} Gaussians",
        )  # fmt: skip

    return run


def add_render_cli(
    p: argparse.ArgumentParser,
    *,
    load: Callable[[str], object] | None = None,  # file -> Gaussians; default: render.loading.load_splats
    file_help: str = "a 3DGS .ply, or 'demo' for a built-in avatar-like scene",
) -> Callable[[argparse.Namespace], int]:
    """`render FILE`: one view to .png or an orbit to .mp4. `load` opens FILE (raising ValueError or
    FileNotFoundError with a message for people); the studio's command line passes one that also opens avatars."""
    p.add_argument("file", help=file_help)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output .png (one view) or .mp4 (an orbit); default: the user's data folder",
    )
    p.add_argument("--width", type=int, default=960)
    p.add_argument("--height", type=int, default=960)
    p.add_argument("--yaw", type=float, default=0.0, help="degrees around the figure for a .png (0 = front)")
    p.add_argument("--distance", type=float, default=3.0, help="camera distance in metres")
    p.add_argument("--frames", type=int, default=120, help="frames in a full turn for an .mp4")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--background", type=_color, default=(1.0, 1.0, 1.0), help="r,g,b in [0, 1]")
    p.add_argument("--parts", action="store_true", help="colour by part label instead of appearance")

    def run(args: argparse.Namespace) -> int:
        from core.io import check_output_path
        from render.loading import load_splats
        from render.orbit import OrbitController
        from render.splat_renderer import SplatRenderer
        from render.video import orbit_cameras, save_png, write_mp4

        if args.out is None:
            from core.paths import user_data_dir

            args.out = user_data_dir("renders") / f"{Path(args.file).stem}.png"
        suffix = args.out.suffix.lower()
        if suffix not in (".png", ".mp4"):
            p.error(f"--out must end in .png or .mp4, got {args.out}")
        if not (16 <= args.width <= 8192 and 16 <= args.height <= 8192 and 1 <= args.frames <= 100_000):
            p.error("--width and --height must lie in 16..8192 and --frames in 1..100000")
        check_output_path(args.out, "image or video")
        try:
            gaussians = (load or load_splats)(args.file)
        except (ValueError, FileNotFoundError) as e:
            log.error("%s", e)
            return 2
        renderer = SplatRenderer(width=args.width, height=args.height)
        renderer.color_mode = "parts" if args.parts else "sh"
        renderer.set_gaussians(gaussians)
        if suffix == ".png":
            orbit = OrbitController(target=OrbitController.default().target, yaw_deg=args.yaw, distance=args.distance)
            image = renderer.render(orbit.camera(args.width, args.height), background=args.background)
            log.info("wrote %s", save_png(args.out, image[..., :3]))
        else:
            cams = orbit_cameras(args.frames, width=args.width, height=args.height, distance=args.distance)
            from tqdm import tqdm

            bar = tqdm(cams, desc=f"rendering {args.out.name}", total=args.frames, unit="frame", dynamic_ncols=True)
            frames = (renderer.render(cam, background=args.background)[..., :3] for cam in bar)
            write_mp4(args.out, frames, fps=args.fps)
            bar.close()
        renderer.release()
        return 0

    return run
