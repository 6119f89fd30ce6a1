"""`create --refine N`: refinement inside the person masks through the fitted poses, scored person-only on the
photos it fitted and on photos held out of it, before and after; bad input gives one error line and exit 2."""

from __future__ import annotations

import argparse
import logging

import torch

from core.capture.cli import add_create_cli
from core.capture.references import PhotoReferences
from core.capture.refine import references_of, refine_created, split_holdout
from core.model.avatar import Avatar
from core.model.config import load_model_config
from core.model.crops import BodyEstimate, crop_inputs
from core.model.model import LCAModel
from core.model.rig import toy_rig
from core.raster.types import Camera

SIZE = 32


def _synthetic_person(n: int = 4) -> tuple[Avatar, PhotoReferences]:
    """A tiny avatar and n photos of a 'person': the same avatar, its albedo shifted, seen from n directions."""
    torch.manual_seed(0)
    rig = toy_rig()
    cfg = load_model_config("tiny", {"tokens": {"num_anchors": 32}, "heads": {"gaussians_per_anchor": 2}})
    model = LCAModel(cfg, rig).eval()
    cams = [
        Camera.look_at((2.5 * float(torch.sin(torch.tensor(a))), 1.0, 2.5 * float(torch.cos(torch.tensor(a)))),
                       (0.0, 0.9, 0.0), width=SIZE, height=SIZE)
        for a in torch.linspace(0.0, 1.2, n).tolist()
    ]  # fmt: skip
    ests = BodyEstimate.split(rig.neutral_params(n), cams)
    body, face = crop_inputs(list(torch.rand(n, 3, SIZE, SIZE)), ests, rig, cfg.encoder)
    avatar = Avatar.create(model, body_crops=body, face_crops=face)
    person = Avatar(model, avatar.state, strength=avatar.part_strength)
    person._set_canonical(albedo=(avatar.state.canonical.albedo * 0.3 + torch.tensor([0.7, 0.2, 0.1])).clamp(0, 1))
    refs = references_of(person, ests, names=tuple(f"photo{i}.png" for i in range(n)))
    return avatar, refs


def test_refine_improves_the_fitted_photos_and_reports_held_out_photos_it_did_not_use():
    avatar, refs = _synthetic_person(4)
    seen: list[int] = []
    refined, report = refine_created(avatar, refs, 12, holdout=1, lr=0.05, progress=lambda s, loss: seen.append(s))
    assert seen == list(range(12)), "the progress callback sees every step"
    assert [r.name for r in report.fitted] == ["photo0.png", "photo1.png", "photo2.png"]
    assert [r.name for r in report.held_out] == ["photo3.png"], "the last photo is held out, not refined on"
    m = report.means()
    assert m["fitted_after"] > m["fitted_before"] + 0.5, m
    assert m["held_out_after"] > m["held_out_before"], m  # a colour learnt on three views holds on a fourth
    assert report.kept and refined is not avatar
    assert not torch.equal(refined.state.canonical.albedo, avatar.state.canonical.albedo)
    js = report.to_json()
    assert js["held_out"][0]["name"] == "photo3.png" and "mean_person_psnr" in js


def test_refinement_prunes_gaussians_off_empty_masks_and_none_inside_full_ones():
    """After refinement, Gaussians whose coverage lies off the person masks are made transparent and counted: all
    that the views see when the masks are empty, none when the masks cover every pixel."""
    import dataclasses

    avatar, refs = _synthetic_person(2)
    runs = {}
    for name, fill in (("empty", 0.0), ("full", 1.0)):
        r = dataclasses.replace(refs, masks=torch.full_like(refs.masks, fill))
        runs[name] = refine_created(avatar, r, 2, holdout=0, lr=0.05)
    refined, report = runs["empty"]
    assert report.pruned > 0 and f"pruned {report.pruned} floater(s)" in "\n".join(report.lines())
    assert report.to_json()["pruned"] == report.pruned
    if report.kept:
        assert int((refined.state.canonical.opacity_logits <= -30.0).sum()) >= report.pruned
    assert runs["full"][1].pruned == 0
    no_masks = refine_created(avatar, dataclasses.replace(refs, masks=None), 2, holdout=0, lr=0.05)[1]
    assert no_masks.pruned == 0, "without masks nothing is pruned"


def test_holdout_defaults_to_one_photo_from_three_and_never_takes_every_photo():
    assert split_holdout(2, None) == ([0, 1], [])
    assert split_holdout(3, None) == ([0, 1], [2])
    assert split_holdout(4, 2) == ([0, 1], [2, 3])
    for n, k in ((2, 2), (1, 1)):
        try:
            split_holdout(n, k)
        except ValueError as e:
            assert "leaves no photo to refine on" in str(e)
        else:
            raise AssertionError(f"holding out {k} of {n} photos was accepted")


def test_a_diverged_refinement_keeps_the_unrefined_avatar(monkeypatch):
    import core.model.personalise as personalise_module

    avatar, refs = _synthetic_person(2)

    def diverged(av, *args, **kwargs):
        bad = Avatar(av.model, av.state, strength=av.part_strength)
        bad._set_canonical(albedo=torch.full_like(av.state.canonical.albedo, float("nan")))
        return bad, [float("nan")]

    monkeypatch.setattr(personalise_module, "personalise", diverged)
    refined, report = refine_created(avatar, refs, 2, holdout=0)
    assert refined is avatar and not report.kept and "diverged" in report.why
    assert torch.isfinite(refined.state.canonical.albedo).all()


def _run(argv):
    p = argparse.ArgumentParser()
    run = add_create_cli(p)
    return run(p.parse_args(argv))


def test_bad_refine_input_gives_one_error_line_and_exit_2(tmp_path, caplog):
    import cv2
    import numpy as np

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 90, 3), 200, np.uint8))
    out = tmp_path / "a.safetensors"
    for argv, said in (
        ([str(blank), "--refine", "-3"], "--refine must be >= 0, got -3"),
        ([str(blank), "--refine", "2", "--holdout", "-1"], "--holdout must be >= 0, got -1"),
        ([str(blank), "--refine", "2"], "none of the photos shows a person"),
    ):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            assert _run([*argv, "--out", str(out)]) == 2
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and said in errors[0], errors
        assert not out.exists() and not (tmp_path / "a.refine.json").exists()
