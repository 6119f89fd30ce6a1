"""bench/default_avatar_refine.py: which identity the bundled example is, and the capture it is refined on (tiny)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import default_avatar_refine as dar  # noqa: E402


def test_the_bundled_examples_name_their_benchmark_identities() -> None:
    """The default avatar's identity is studio-test #2; the first studio example stays studio-test #0."""
    first = dar.ROOT / "assets" / "examples" / "studio-test.safetensors"
    if not dar.EXAMPLE.is_file() or not first.is_file():
        pytest.skip("no bundled example")
    assert dar.example_identity(dar.EXAMPLE) == ("studio-test", 2)
    assert dar.example_identity(first) == ("studio-test", 0)


def test_capture_views_are_the_identity_seen_whole_and_close_up(tmp_path) -> None:
    pytest.importorskip("anny", reason="the synthetic world needs the body model")
    capture = dar.build_capture(
        "studio-test", 0, size=24, detail=0.15, shape=torch.rand(6),
        poses=dar.POSES[:2], body_fit=((0,), (0,)), face_fit=(((0, 0.0),), ((0, 0.1),)), body_held=((90,), ()),
        face_held=((), ((15, 0.0),)),
    )  # fmt: skip
    n = 6  # per pose: body views fitted, held out, then close-ups fitted, held out
    assert capture.images.shape == (n, 3, 24, 24) and capture.masks.shape == (n, 24, 24)
    assert capture.images.min() >= 0 and capture.images.max() <= 1
    assert capture.face.tolist() == [False, False, True, False, True, True]
    assert capture.held_out.tolist() == [False, True, False, False, False, True]
    assert capture.names[-2:] == ["jaw open face 0 up 0.1", "jaw open face 15"]
    share = (capture.masks > 0.5).float().mean(dim=(1, 2))
    assert (share > 0.02).all()  # the person is in every view
    assert share[2] > 2 * share[0]  # a close-up's head fills more of the picture than the whole body does
    jaw = capture.estimates[3].expression
    assert jaw.shape[-1] == 52 and jaw.max() == 1.0 and capture.estimates[0].expression.abs().max() == 0
    for est in capture.estimates:
        assert (est.camera.width, est.camera.height) == (24, 24) and est.params.shape.shape == (1, 6)
    fit = capture.subset(~capture.held_out)
    assert fit.names == [capture.names[i] for i in (0, 2, 3, 4)] and len(fit.estimates) == 4
    sheet = dar.capture_sheet(capture, tmp_path / "sheet.png", columns=3)
    assert sheet.is_file()
