"""`python main.py create PHOTOS... --out AVATAR`: the capture assistant's checks, then the avatar (no GUI code)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def add_create_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    p.add_argument("photos", nargs="+", help="1-16 photos of one person (full body, face visible)")
    p.add_argument(
        "--out",
        default=None,
        help="avatar file to write (default: the user's data folder, named after the first photo)",
    )

    def run(args: argparse.Namespace) -> int:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        from core.capture.photos import CaptureAssistant, PhotoError
        from core.io import check_output_path

        check_output_path(args.out, "avatar file")  # before the photos are read and the avatar built
        log.info("loading the person detector")
        assistant = CaptureAssistant()
        with logging_redirect_tqdm():  # log lines print above the bars instead of through them
            for path in tqdm(args.photos, desc="checking photos", unit="photo", dynamic_ncols=True):
                try:
                    c = assistant.add(path)
                except PhotoError as e:
                    log.error("%s", e)
                    continue
                log.info("%s: %s", Path(path).name, "person found" if c.usable else "no person found: skipped")
                if c.fit is not None:
                    (log.warning if c.fit.poor else log.info)("%s: %s", Path(path).name, c.fit.summary())
                for p in c.problems:
                    if c.fit is None or c.fit.summary() not in p:
                        log.warning("%s: %s", Path(path).name, p)
            fmt = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]"
            with tqdm(total=1.0, desc="creating", bar_format=fmt, dynamic_ncols=True) as bar:

                def progress(fraction: float, text: str) -> None:
                    bar.set_postfix_str(text, refresh=False)
                    bar.update(fraction - bar.n)

                try:
                    created = assistant.create(progress=progress)
                except PhotoError as e:
                    log.error("%s", e)
                    return 2
        out = created.avatar.save(args.out or default_avatar_path(args.photos))
        log.info("wrote %s (%s)", out, created.description)
        return 0

    return run


def default_avatar_path(photos: list[str]) -> Path:
    """~/.local/share/lca-studio/avatars/<first photo's name>.safetensors (core.paths), never the working directory."""
    from core.paths import user_data_dir

    return user_data_dir("avatars") / f"{Path(photos[0]).stem}.safetensors"
