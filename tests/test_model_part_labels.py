"""Garment labels follow the garment's colours: short sleeves and shorts end where the skin shows."""

from __future__ import annotations

import pytest
import torch

from core.model.part_labels import garment_extent_parts, relabelled_logits
from core.raster.types import PART_NAMES

SKIN, UPPER, LOWER = (PART_NAMES.index(n) for n in ("skin", "upper_garment", "lower_garment"))
SKIN_RGB, TOP_RGB = torch.tensor([0.62, 0.43, 0.30]), torch.tensor([0.40, 0.60, 0.30])


def arm_avatar(sleeve_end: float, top_rgb=TOP_RGB, speckle: float = 0.05, K: int = 8, seed: int = 0):
    """A torso and an arm of anchors along x in [0, 1], all labelled upper garment (a 'long sleeve'), whose colour
    is the top's for x < sleeve_end and skin beyond; a bare hand (labelled skin) at x > 1; a few speckles."""
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(0.0, 1.2, 240)
    anchors = torch.stack([x, 0.02 * torch.randn(240, generator=g), 0.02 * torch.randn(240, generator=g)], -1)
    A = len(x)
    colour = torch.where((x < sleeve_end)[:, None], top_rgb, SKIN_RGB)[:, None].repeat(1, K, 1)
    colour = (colour + 0.03 * torch.randn(A, K, 3, generator=g)).clamp(0, 1)
    flip = torch.rand(A, K, generator=g) < speckle  # a few Gaussians of the other colour everywhere
    colour[flip] = torch.where((x < sleeve_end)[:, None], SKIN_RGB, top_rgb)[:, None].expand(A, K, 3)[flip]
    parts = torch.where((x > 1.0)[:, None], SKIN, UPPER).expand(A, K).clone()
    return colour, torch.full((A, K), 3.0), parts, anchors, x


def test_a_long_sleeve_label_ends_where_the_skin_colour_starts() -> None:
    colour, opacity, parts, anchors, x = arm_avatar(sleeve_end=0.5)
    out = garment_extent_parts(colour, opacity, parts, anchors)
    upper = (out == UPPER).float().mean(-1)  # share of each anchor's Gaussians still labelled upper garment
    assert (upper[x < 0.45] == 1.0).all(), "the sleeve itself lost its label (speckles punched holes)"
    assert (upper[(x > 0.55) & (x <= 1.0)] == 0.0).all(), "bare forearm still labelled as sleeve"
    assert (out[x > 1.0] == SKIN).all()


def test_a_skin_coloured_garment_keeps_its_label() -> None:
    colour, opacity, parts, anchors, _ = arm_avatar(sleeve_end=0.5, top_rgb=SKIN_RGB + 0.02)
    assert torch.equal(garment_extent_parts(colour, opacity, parts, anchors), parts)


def test_shorts_end_above_the_knees_and_other_parts_are_untouched() -> None:
    colour, opacity, parts, anchors, x = arm_avatar(sleeve_end=0.4, top_rgb=torch.tensor([0.15, 0.2, 0.55]))
    parts = torch.where(parts == UPPER, LOWER, parts)
    parts[:5] = PART_NAMES.index("shoes")
    out = garment_extent_parts(colour, opacity, parts, anchors)
    assert (out[:5] == PART_NAMES.index("shoes")).all()
    assert (out[(x > 0.45) & (x <= 1.0)] == SKIN).all() and (out[5:80] == LOWER).all()


def test_relabelled_logits_change_only_the_relabelled_gaussians() -> None:
    logits = torch.randn(6, 4, len(PART_NAMES))
    parts = logits.argmax(-1).clone()
    parts[2, 1] = SKIN if parts[2, 1] != SKIN else UPPER
    out = relabelled_logits(logits, parts)
    assert torch.equal(out.argmax(-1), parts)
    keep = torch.ones(6, 4, dtype=torch.bool)
    keep[2, 1] = False
    torch.testing.assert_close(out[keep], logits[keep])
    assert relabelled_logits(logits, logits.argmax(-1)) is logits


def test_shapes_are_checked() -> None:
    colour, opacity, parts, anchors, _ = arm_avatar(0.5)
    with pytest.raises(ValueError, match=r"anchors \[A, 3\]"):
        garment_extent_parts(colour, opacity, parts, anchors[:-1])


@pytest.mark.slow
def test_recolouring_the_default_avatars_top_leaves_its_bare_forearms_alone() -> None:
    """The shipped example's top has short sleeves: the upper-garment label stops above the forearms."""
    from app.model_avatar import DEFAULT_MODEL_FILE, example_avatar, example_files

    files = [f for f in example_files() if f.stem == "studio-test"]
    if not DEFAULT_MODEL_FILE.is_file() or not files:
        pytest.skip("no trained model or examples installed")
    g = example_avatar(files[0]).canonical()
    x, y = g.means[:, 0].abs(), g.means[:, 1]
    visible = torch.sigmoid(g.opacity_logits) > 0.2
    forearm = visible & (x > 0.45) & (y > 0.9)  # arms held out in the A pose: beyond the elbows
    torso = visible & (x < 0.12) & (y > 1.15) & (y < 1.4)
    shin = visible & (x > 0.05) & (y > 0.25) & (y < 0.6)
    upper, lower = g.parts == UPPER, g.parts == LOWER
    assert upper[torso].float().mean() > 0.8, "the top itself is no longer labelled as the top"
    assert upper[forearm].float().mean() < 0.1, "bare forearms are still labelled as sleeves"
    assert lower[shin].float().mean() < 0.1, "bare shins are still labelled as trousers"
