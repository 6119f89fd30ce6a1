"""The real-face labels and the scoring of bench/face_real.py (no footage needed: the clips are not read)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.face_real import LABELS, load_labels, neutral_frames, score, summarise  # noqa: E402


def test_the_committed_labels_cover_every_listed_frame_with_known_codes():
    labels = load_labels()
    assert sum(len(frames) for frames in labels.values()) >= 400
    for name, frames in labels.items():
        for f, channels in frames.items():
            assert set(channels) == {"jawOpen", "eyeBlink", "mouthSmile", "mouthFrown", "browDown", "browInnerUp"}
            assert all(v is None or v in (0.0, 0.5, 1.0) for v in channels.values()), (name, f)
    for name, neutral in neutral_frames().items():
        assert neutral is None or neutral in labels[name]


def test_labels_of_the_wrong_length_are_refused(tmp_path):
    bad = tmp_path / "labels.json"
    text = LABELS.read_text().replace('"jawOpen": "1"', '"jawOpen": "11"', 1)
    assert text != LABELS.read_text()
    bad.write_text(text)
    with pytest.raises(ValueError, match="labels for"):
        load_labels(bad)


def test_a_lowered_lid_read_as_shut_counts_as_a_false_blink_not_a_miss():
    # (label, reading): open read open, lowered read shut, shut read shut
    s = score([(0.0, 0.1), (0.5, 0.9), (1.0, 0.95)], "eyeBlink")
    assert s["false_on_rate"] == 0.5 and s["miss_rate"] == 0.0
    assert s["mae"] == pytest.approx((0.1 + 0.4 + 0.05) / 3, abs=1e-4)
    summary = summarise(
        {"clip": {0: {"eyeBlink": 1.0}, 1: {"eyeBlink": 0.0}}},
        {"clip": {0: {"expr.eyeBlinkLeft": 1.0, "expr.eyeBlinkRight": 0.8}, 1: None}},
    )
    assert summary["face_found"] == 1 and summary["channels"]["eyeBlink"]["mae"] == pytest.approx(0.1)
