"""The honest real-footage score: uncovered person pixels count as errors, controls are scored alike, and
references are >= 1 s from every scored frame."""

import numpy as np

from core.data.benchmarks import ROLE_NOVEL_POSE, ROLE_REF
from core.data.shards import Sample
from core.train.evaluate_real import ROLE_RECONSTRUCTION, ROLE_UNUSED, format_real, held_out_roles, person_score


def _scene():
    target = np.zeros((32, 32, 3), np.float32)
    target[8:24, 10:22] = [0.8, 0.3, 0.2]
    mask = np.zeros((32, 32), np.float32)
    mask[8:24, 10:22] = 1
    return target, mask


def test_an_avatar_that_renders_nothing_scores_badly_and_a_perfect_one_well():
    target, mask = _scene()
    empty = person_score(np.zeros_like(target), np.zeros_like(mask), target, mask)
    assert empty.psnr < 10 and empty.iou == 0 and empty.covered == 0
    perfect = person_score(target * mask[..., None], mask, target, mask)
    assert perfect.psnr > 60 and perfect.iou == 1 and perfect.spill == 0
    half = mask.copy()
    half[:, 16:] = 0
    spill = np.zeros_like(mask)
    spill[8:24, 4:10] = 1  # off the person
    part = person_score(target * half[..., None], np.maximum(half, spill), target, mask)
    assert part.covered == 0.5 and 0 < part.iou < 0.5 and part.spill > 0.3
    assert part.psnr < perfect.psnr


def _clip(times):
    F = len(times)
    return Sample(
        key="c", meta={"kind": "video", "times_s": list(times)}, arrays={},
        rgb=np.zeros((F, 1, 4, 4, 3), np.uint8), mask=np.zeros((F, 1, 4, 4), np.uint8),
    )  # fmt: skip


def test_references_are_at_least_a_second_from_every_scored_frame():
    times = np.arange(16) * 0.25
    role = held_out_roles(_clip(times))
    refs, targets = times[role == ROLE_REF], times[role == ROLE_NOVEL_POSE]
    assert len(refs) >= 1 and len(targets) >= 1
    assert min(abs(t - r) for t in targets for r in refs) >= 1.0
    assert (role[(times > refs.max()) & (times < refs.max() + 1.0)] == ROLE_UNUSED).all()
    short = held_out_roles(_clip([0.0, 0.3, 0.6]))  # too short: its first frame on itself, never held out
    assert short[0] == ROLE_RECONSTRUCTION and (short[1:] == ROLE_UNUSED).all()
    assert held_out_roles(_clip([0.0]))[0] == ROLE_RECONSTRUCTION


def test_the_table_prints_controls_beside_every_score():
    row = {"source": "a.mp4", "protocol": "cross-frame", "targets": 3}
    row |= {k: {"psnr": 12.0, "ssim": 0.5, "iou": 0.6} for k in ("avatar", "flat", "wrong_identity")}
    text = format_real({"sources": [row]})
    assert "a.mp4" in text and text.splitlines()[1].count("12.00") == 3


def test_padding_beyond_the_source_frame_is_not_scored():
    target, mask = _scene()
    alpha = mask.copy()
    alpha[24:, 10:22] = 1  # the avatar's legs drawn into the letterbox padding below the frame
    pred = target * mask[..., None]
    valid = np.zeros((32, 32), bool)
    valid[:24] = True
    assert person_score(pred, alpha, target, mask).spill > 0.3
    fair = person_score(pred, alpha, target, mask, valid)
    assert fair.spill == 0 and fair.iou == 1


def test_the_summary_carries_a_standard_error_over_sources_and_sources_keep_their_numbered_order():
    from pathlib import Path

    from core.train.evaluate import natural_key
    from core.train.evaluate_real import _standard_error

    assert _standard_error([10.0, 12.0, 14.0]) == round(2.0 / np.sqrt(3), 4)
    assert _standard_error([10.0]) is None and _standard_error([10.0, None, float("nan")]) is None
    names = ["10-b/video/x.tar", "2-a/video/x.tar", "1-c/video/x.tar"]
    assert [str(p) for p in sorted(map(Path, names), key=natural_key)] == [names[2], names[1], names[0]]
    row = {"source": "a.mp4", "protocol": "cross-frame", "targets": 3, "avatar": {"psnr": 12.0, "iou": 0.6}}
    summary = {"held_out": {"avatar": {"psnr": 12.0, "psnr_se": 0.5, "iou": 0.6}, "sources": 2, "frames": 3}}
    text = format_real({"sources": [row], "summary": summary})
    assert "standard error" in text.splitlines()[-1] and "0.50" in text.splitlines()[-1]
