"""`python main.py create PHOTOS... --out AVATAR`: the capture assistant's checks, then the avatar (no GUI code)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def add_prepare_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """`python main.py prepare`: core.data's command, with the clips' body fit with silhouettes of this layer."""
    from core.data.cli import add_cli

    def refit(sample, source: str):  # core.data.shards.Sample -> Sample; torch is imported only when it runs
        from core.capture.clip_fit import refit_sample

        return refit_sample(sample, source)

    return add_cli(p, clip_fit=refit)


def add_create_cli(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    p.add_argument("photos", nargs="+", help="1-16 photos of one person (full body, face visible)")
    p.add_argument(
        "--out",
        default=None,
        help="avatar file to write (default: the user's data folder, named after the first photo)",
    )
    p.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="N",
        help="after creating, refine the avatar N steps on the photos (inside the person masks, through the fitted "
        "poses); scores before/after are printed and written beside the avatar (.refine.json)",
    )
    p.add_argument(
        "--holdout",
        type=int,
        default=None,
        metavar="K",
        help="with --refine: the last K photos are not refined on, only scored (default: 1 with >= 3 photos)",
    )

    def run(args: argparse.Namespace) -> int:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        from core.capture.photos import CaptureAssistant, PhotoError
        from core.io import check_output_path, write_json

        check_output_path(args.out, "avatar file")  # before the photos are read and the avatar built
        if args.refine < 0 or (args.holdout is not None and args.holdout < 0):
            bad = ("--refine", args.refine) if args.refine < 0 else ("--holdout", args.holdout)
            log.error("%s must be >= 0, got %d", *bad)
            return 2
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
            refs = None
            if args.refine and any(c.usable for c in assistant.checks):  # else creation says none is
                refs = _refinement_photos(assistant.checks, args.holdout)
                if refs is None:
                    return 2
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
            _log_shared_shape(assistant)
            avatar, report = created.avatar, None
            if refs is not None:
                refs = _fitted_references(assistant.checks, refs, args.holdout)
                avatar, report = _refine(avatar, refs, args.refine, args.holdout)
        out = avatar.save(args.out or default_avatar_path(args.photos))
        log.info("wrote %s (%s%s)", out, created.description, "; refined" if report and report.kept else "")
        if report is not None:
            side = out.with_name(out.stem + ".refine.json")
            write_json(side, report.to_json())
            log.info("wrote %s", side)
        return 0

    return run


def _log_shared_shape(assistant) -> None:
    """The body shape fitted to all photos, and each photo's fit before and after it."""
    if assistant.shape is None:
        log.info("body shape: the template's (no photo has a landmark fit)")
        return
    from core.capture.photos import _fit_rig

    phenotype = _fit_rig().phenotype
    names = phenotype.phenotype_names if phenotype is not None else []
    values = ", ".join(f"{n} {v:.2f}" for n, v in zip(names, assistant.shape.tolist(), strict=False))
    refit = [c for c in assistant.checks if c.fit is not None and c.fit.before is not None]
    log.info("body shape shared by %d photo%s (template 0.50 each): %s", len(refit), "s" * (len(refit) > 1), values)
    for c in refit:
        (log.warning if c.fit.poor else log.info)("%s: %s", Path(c.path).name, c.fit.summary())


def default_avatar_path(photos: list[str]) -> Path:
    """~/.local/share/lca-studio/avatars/<first photo's name>.safetensors (core.paths), never the working directory."""
    from core.paths import user_data_dir

    return user_data_dir("avatars") / f"{Path(photos[0]).stem}.safetensors"


def _refinement_photos(checks, holdout: int | None):  # -> PhotoReferences | None (after logging why)
    """The photos `--refine` fits and scores, checked before the avatar is built; None after one error line."""
    from core.capture.photos import _fit_rig
    from core.capture.references import photo_references, refinable
    from core.capture.refine import split_holdout

    for c in checks:
        if c.usable and not refinable(c, poor=True):
            log.warning("%s: not used to refine: its body fit is poor and places no body part", Path(c.path).name)
        elif c.usable and c.fit is not None and c.fit.poor:
            log.warning(
                "%s: its body fit is poor: only the body parts it placed are refined from it", Path(c.path).name
            )
    try:
        refs = photo_references(checks, poor=True, head_rig=_fit_rig())  # the rig the photos' bodies were fitted with
        split_holdout(len(refs), holdout)
    except ValueError as e:
        log.error("cannot refine: %s", e)
        return None
    return refs


def _fitted_references(checks, early, holdout: int | None):  # -> PhotoReferences
    """The photos to refine on as creation left them: each through the shared body shape's refitted pose, camera and
    bone trust, not through the photos' own fits that `early` (checked before creation, to fail before the avatar is
    built) was made from; `early` when the refitted photos no longer give references the hold-out splits."""
    from core.capture.photos import _fit_rig
    from core.capture.references import photo_references
    from core.capture.refine import split_holdout

    try:
        refs = photo_references(checks, poor=True, head_rig=_fit_rig())
        split_holdout(len(refs), holdout)
    except ValueError:
        return early
    return refs


def _refine(avatar, refs, steps: int, holdout: int | None):  # -> (Avatar, RefineReport)
    """`refine_created` with a step bar showing the time left; the report's lines logged."""
    from tqdm import tqdm

    from core.capture.refine import refine_created

    with tqdm(total=steps, desc="refining", unit="step", dynamic_ncols=True) as bar:

        def progress(step: int, loss: float) -> None:
            bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
            bar.update(1)

        avatar, report = refine_created(avatar, refs, steps, holdout=holdout, progress=progress)
    for line in report.lines():
        (log.info if report.kept else log.warning)("%s", line)
    return avatar, report
