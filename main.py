"""Command line of the avatar studio: a thin layer over `core`, `render` and `app`.

Every subcommand imports its implementation lazily, so `python main.py --help` and
`python main.py install` work before torch or any other dependency is installed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
log = logging.getLogger("install")
# Pinned only when no torch is installed yet; a machine that has torch (e.g. a CUDA build) keeps it.
TORCH = "torch==2.13.0"
# PyTorch's CPU wheel index (https://pytorch.org/get-started/locally/): on Linux the public index's torch is the
# CUDA build with several GB of CUDA libraries, so a CPU machine asks this index for the +cpu wheel.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

# name -> (help, "module:function" that adds arguments and returns the runner, or None if not built yet)
COMMANDS: dict[str, tuple[str, str | None]] = {
    "install": ("install the project (no torch yet: the CPU build from PyTorch's index)", "main:_install_cli"),
    "studio": ("open the Dear PyGui studio on the bundled default avatar", "app.cli:add_cli"),
    "create": ("create an avatar from 1-16 photos", "core.capture.cli:add_create_cli"),
    "view": ("view an avatar or a .ply in a standalone OpenGL window", "render.cli:add_view_cli"),
    "render": ("render an avatar or a .ply to PNG / mp4 headlessly", "app.export_cli:add_render_cli"),
    "export": ("export an avatar to a 3DGS .ply (SuperSplat / gsplat layout)", "app.export_cli:add_export_cli"),
    "prepare": ("generate or ingest training data (synthetic world, real videos)", "core.capture.cli:add_prepare_cli"),
    "train": ("train a model from a YAML config (pretrain, posttrain, mixed, studio-only)", "core.train.cli:add_cli"),
    "eval": ("evaluate a checkpoint (PSNR / SSIM on held-out identities)", "core.train.cli:add_eval_cli"),
    "drive": ("drive an avatar from a webcam, video or image folder", "app.drive_cli:add_cli"),
    "body": ("inspect the body model: bones, expressions, parts; rebuild its baked asset", "core.body.cli:add_cli"),
    "info": ("print versions, devices and which optional backends are available", "main:_info_cli"),
}


def _install_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    p.add_argument("--dev", action="store_true", help="also install the test and lint tools")
    p.add_argument(
        "--gpu", action="store_true", help="also install gsplat; with no torch yet, install the CUDA build of torch"
    )

    def run(args: argparse.Namespace) -> int:
        pip = [sys.executable, "-m", "pip", "install"]
        if importlib.util.find_spec("torch") is None:
            install_torch(cpu=not args.gpu)
        else:
            log.info("keeping the installed torch")
        if importlib.util.find_spec("cv2") is not None and _installed("opencv-python"):
            # opencv-python and opencv-contrib-python (which mediapipe needs) share the cv2 folder: keep one
            log.info("replacing opencv-python by its superset opencv-contrib-python")
            subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "-y", "opencv-python"])
        extras = [e for e, on in (("dev", args.dev), ("gpu", args.gpu)) if on]
        target = f"{ROOT}[{','.join(extras)}]" if extras else str(ROOT)
        subprocess.check_call([*pip, "-e", target])
        if subprocess.call([sys.executable, "-c", "import cv2"], stderr=subprocess.DEVNULL) != 0:
            # a cv2 folder half-removed by uninstalling one of the two opencv wheels: put it back whole
            subprocess.check_call([*pip, "--force-reinstall", "--no-deps", "opencv-contrib-python"])
        return 0

    return run


def install_torch(*, cpu: bool = True) -> str:
    """Install the pinned torch; returns where it came from: "pytorch-cpu-index", or "pip-config" (pip's own
    index and configuration: the CUDA build for `--gpu`, or the fallback when PyTorch's CPU index is unreachable)."""
    pip = [sys.executable, "-m", "pip", "install"]
    if cpu and not index_reachable(TORCH_CPU_INDEX):
        # pip itself would not say which index served the wheel (a configured find-links or extra index may)
        log.warning(
            "PyTorch's CPU index %s cannot be reached from here; installing %s with this machine's own pip "
            "configuration instead (check that it is a CPU build: python main.py info)",
            TORCH_CPU_INDEX,
            TORCH,
        )
    elif cpu:
        log.info("no torch found: installing the CPU build %s from PyTorch's CPU index %s", TORCH, TORCH_CPU_INDEX)
        rc = subprocess.call([*pip, "--retries", "2", "--index-url", TORCH_CPU_INDEX, TORCH])
        if rc == 0:
            log.info("installed %s from PyTorch's CPU index", TORCH)
            return "pytorch-cpu-index"
        log.warning(
            "pip could not install %s from PyTorch's CPU index (exit %d); using this machine's own pip "
            "configuration instead",
            TORCH,
            rc,
        )
    else:
        log.info("no torch found: installing %s from pip's configured index (the CUDA build on Linux)", TORCH)
    subprocess.check_call([*pip, TORCH])
    log.info("installed %s with this machine's pip configuration", TORCH)
    return "pip-config"


def index_reachable(url: str, timeout: float = 10.0) -> bool:
    """True when a package index answers at `url` (pip's own retries would take minutes to say no)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/torch/", method="HEAD"), timeout=timeout):
            return True
    except (urllib.error.URLError, OSError, ValueError) as e:
        log.debug("%s: %s", url, e)
        return False


def _installed(dist: str) -> bool:
    from importlib import metadata

    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


def _info_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import json

        from core.env import describe_environment

        print(json.dumps(describe_environment(), indent=2))
        return 0

    return run


def _not_built(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        print(f"`{name}` is not built yet in this version of the studio; nothing was done.", file=sys.stderr)
        return 2

    return run


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int] | None]]:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Large-scale Codec Avatars studio: create, inspect, drive and train Gaussian-splat avatars.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Callable[[argparse.Namespace], int] | None] = {}
    for name, (help_text, target) in COMMANDS.items():
        built = target is not None
        sub.add_parser(name, help=help_text if built else f"{help_text} [not built yet]")
        if not built:
            runners[name] = _not_built(name)
            continue
        runners[name] = None  # imported only when this subcommand is chosen (see main)
    return parser, runners


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, runners = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if not argv:
        argv = ["studio"]
    # Build the chosen subcommand's arguments before parsing, so `COMMAND --help` lists them.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen in COMMANDS and chosen != "install":
        from core.threads import configure_threads  # before torch is imported: it sizes its thread pool once

        configure_threads()
    if chosen in COMMANDS and runners.get(chosen) is None:
        module_name, func_name = COMMANDS[chosen][1].split(":")
        module = sys.modules[__name__] if module_name == "main" else importlib.import_module(module_name)
        runners[chosen] = getattr(module, func_name)(sub.choices[chosen])
    args, _ = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.command is None:
        parser.print_help()
        return 0
    runner = runners[args.command]
    args = parser.parse_args(argv)
    return run_reporting_errors(runner, args)


# Errors that a user's input or machine causes (a file that is a folder, a full disk, a missing permission, a
# crafted file that asks for too much memory or nests too deeply, a config or file refused by its loader): one line
# and exit status 2 instead of a traceback. `-v` shows the traceback as well.
EXIT_USER_ERROR = 2


def run_reporting_errors(runner: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand; errors from its inputs (see above) become one logged line and exit status 2."""
    try:
        return int(runner(args) or 0)
    except MemoryError:
        _report(args, "out of memory: the input asks for more than this machine has (a damaged or crafted file?)")
    except RecursionError:
        _report(args, "an input is nested too deeply to read (a damaged or crafted file?)")
    except OSError as e:
        _report(args, _os_error_text(e))
    except ValueError as e:
        from core.config import ConfigError
        from core.io import FileFormatError

        if not isinstance(e, ConfigError | FileFormatError):
            raise
        _report(args, str(e))
    return EXIT_USER_ERROR


def _os_error_text(e: OSError) -> str:
    """`[Errno 28] No space left on device: 'x.png'` as `x.png: no space left on device`; messages that already
    explain themselves (OSError(message)) as they are."""
    if e.strerror and e.filename is not None:
        text = f"{e.filename}: {e.strerror[:1].lower()}{e.strerror[1:]}"
        return text + (f" (and {e.filename2})" if e.filename2 is not None else "")
    if e.strerror and len(e.args) == 2:  # OSError(errno, message): our savers' messages name the file
        return e.strerror
    return str(e)


def _report(args: argparse.Namespace, text: str) -> None:
    line = " ".join(text.split()) or "failed"
    line = line if len(line) <= 600 else line[:600] + " ..."
    logging.getLogger("main").error("%s", line, exc_info=getattr(args, "verbose", False))


if __name__ == "__main__":
    sys.exit(main())
