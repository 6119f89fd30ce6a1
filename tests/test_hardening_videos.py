"""Videos from strangers: truncated, empty, zero-frame, garbage and bit-flipped files through the live-driving
source (`open_source`) and the footage reader (`read_frames`) end in a clear error in bounded time."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hardening_fuzz import Tally, assert_clean, fuzz_file, run_case

from core.data.video import read_frames
from core.io import FileFormatError
from core.tracking import sources
from core.tracking.sources import SourceError, open_source

MAX_FRAMES = 200  # more than any test clip holds: a source that never ends is a finding


def _write_clip(path: Path, frames: int, *, size=(64, 48)) -> Path:
    import imageio_ffmpeg

    w, h = size
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=10, macro_block_size=16)
    writer.send(None)
    rng = np.random.default_rng(0)
    for i in range(frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, : (i * 5) % w] = 200
        img += rng.integers(0, 30, img.shape, dtype=np.uint8)
        writer.send(img.tobytes())
    writer.close()
    return path


def _write_avi(path: Path, frames: int) -> Path:
    import cv2

    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(frames):
        out.write(np.full((48, 64, 3), 20 * i % 255, np.uint8))
    out.release()
    return path


def read_source(path: Path) -> int:
    """Open `path` as a driving source and read it to the end; the number of frames."""
    with open_source(str(path), width=64, height=64) as src:
        n = 0
        while n < MAX_FRAMES and src.read() is not None:
            n += 1
    assert n < MAX_FRAMES, f"{path.name}: the source never ended"
    return n


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {"mp4": _write_clip(d / "clip.mp4", 12), "avi": _write_avi(d / "clip.avi", 8)}


@pytest.mark.parametrize("kind", ["mp4", "avi"])
def test_bit_flipped_and_truncated_videos_give_source_errors(tmp_path, clips, kind):
    src = clips[kind]
    assert read_source(src) >= 8
    tallies = fuzz_file(
        src, tmp_path / "cases", read_source, (SourceError,), input_kind=f"video .{kind} (open_source)",
        seed=61 + len(kind), flips=16, truncations=10, header_bytes=256,
    )  # fmt: skip
    # A video cut short may still play the frames before the cut (or, with its index intact, all of them).
    assert_clean(tallies, truncation_must_fail=False)


def test_bit_flipped_and_truncated_videos_give_file_format_errors_in_read_frames(tmp_path, clips):
    src = clips["mp4"]
    assert len(read_frames(src)) == 12
    tallies = fuzz_file(
        src, tmp_path / "cases", read_frames, (FileFormatError,), input_kind="video .mp4 (core.data.video.read_frames)",
        seed=67, flips=16, truncations=10, header_bytes=256,
    )  # fmt: skip
    assert_clean(tallies, truncation_must_fail=False)


def _hostile_files(d: Path) -> dict[str, Path]:
    files = {}
    files["zero_frames"] = _write_clip(d / "zero_frames.mp4", 0)
    (d / "empty.mp4").write_bytes(b"")
    files["empty"] = d / "empty.mp4"
    (d / "garbage.mp4").write_bytes(np.random.default_rng(5).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    files["garbage_bytes"] = d / "garbage.mp4"
    (d / "notes.mp4").write_text("these are notes, not a video\n" * 50)
    files["text_named_mp4"] = d / "notes.mp4"
    (d / "header_only.mp4").write_bytes(b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41" + b"\0" * 64)
    files["ftyp_header_only"] = d / "header_only.mp4"
    (d / "riff.avi").write_bytes(b"RIFF\xff\xff\xff\x7fAVI LIST" + os.urandom(4000))
    files["avi_header_then_garbage"] = d / "riff.avi"
    return files


@pytest.fixture(scope="module")
def hostile_videos(tmp_path_factory) -> dict[str, Path]:
    return _hostile_files(tmp_path_factory.mktemp("hostile_videos"))


@pytest.fixture(scope="module")
def hostile_tally():
    t = Tally("video (open_source, read_frames)", "hand-made: empty, zero frames, garbage, oversized frames")
    yield t
    t.record()


@pytest.mark.parametrize(
    "name", ["zero_frames", "empty", "garbage_bytes", "text_named_mp4", "ftyp_header_only", "avi_header_then_garbage"]
)
def test_hostile_videos_are_refused_by_both_readers(hostile_videos, hostile_tally, name):
    path = hostile_videos[name]
    err = run_case(hostile_tally, path, read_source, (SourceError,), time_limit=5.0, what=f"open_source {name}")
    assert not hostile_tally.failures, hostile_tally.failures
    assert isinstance(err, SourceError) and path.name in str(err), f"{name}: {err!r}"
    assert len(str(err)) < 600, f"{name}: the message is {len(str(err))} characters long"
    err = run_case(hostile_tally, path, read_frames, (FileFormatError,), time_limit=5.0, what=f"read_frames {name}")
    assert not hostile_tally.failures, hostile_tally.failures
    assert isinstance(err, FileFormatError) and path.name in str(err), f"{name}: {err!r}"


def test_oversized_frames_are_refused_before_decoding(clips, hostile_tally, monkeypatch):
    """64 x 48 frames against a 1,000-pixel limit stand in for an 8K x 8K video against the 40-megapixel one."""
    err = run_case(hostile_tally, clips["mp4"], lambda p: read_frames(p, max_pixels=1000), (FileFormatError,),
                   time_limit=5.0, what="read_frames oversized")  # fmt: skip
    assert isinstance(err, FileFormatError) and "megapixel" in str(err)
    monkeypatch.setattr(sources, "MAX_IMAGE_PIXELS", 1000)
    for kind in ("mp4", "avi"):
        err = run_case(hostile_tally, clips[kind], read_source, (SourceError,), time_limit=5.0,
                       what=f"open_source oversized {kind}")  # fmt: skip
        assert isinstance(err, SourceError) and "megapixel" in str(err), err
    assert not hostile_tally.failures, hostile_tally.failures


def test_missing_video_names_the_file(tmp_path):
    with pytest.raises(SourceError, match="nothing.mp4"):
        open_source(str(tmp_path / "nothing.mp4"))
    with pytest.raises(FileNotFoundError, match="nothing.mp4"):
        read_frames(tmp_path / "nothing.mp4")
