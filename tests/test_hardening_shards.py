"""Corrupted data shards end in a ShardError (a FileFormatError) naming the shard, never a crash or huge allocation."""

import io
import json
import tarfile

import numpy as np
import pytest
from hardening_fuzz import Tally, assert_clean, fuzz_file, run_case

from core.data.shards import Sample, ShardError, encode_sample, index_shard, iter_shard, iter_shard_lazy, write_shard
from core.io import FileFormatError

EXPECTED = (FileFormatError,)


def tiny_sample(key: str = "wild-train-000001", frames: int = 2) -> Sample:
    rng = np.random.default_rng(0)
    return Sample(
        key=key, meta={"kind": "wild"}, arrays={"K": rng.standard_normal((frames, 3, 3)).astype(np.float32)},
        rgb=rng.integers(0, 256, (frames, 1, 8, 6, 3), dtype=np.uint8),
        mask=rng.integers(0, 256, (frames, 1, 8, 6), dtype=np.uint8),
        parts=rng.integers(0, 9, (frames, 1, 8, 6), dtype=np.uint8),
    )  # fmt: skip


def read_all(path) -> int:
    """Decode every sample all three ways (eager, lazy, indexed; every image) as the loaders do."""
    n = sum(s.rgb.size for s in iter_shard(path))
    lazy = list(iter_shard_lazy(path))
    for s in [*lazy, *(ref.load() for ref in index_shard(path))]:
        for f in range(s.num_frames):
            for c in range(s.num_cameras):
                s.rgb_at(f, c), s.mask_at(f, c), s.parts_at(f, c)
    return n


def test_bit_flipped_and_truncated_shards_are_refused_or_load(tmp_path):
    src = tmp_path / "s.tar"
    write_shard(src, [tiny_sample("a-000001"), tiny_sample("a-000002")])
    assert read_all(src) == 2 * 2 * 8 * 6 * 3
    with tarfile.open(src) as tar:
        last = tar.getmembers()[-1]
        payload_end = last.offset_data + last.size  # after this come only the tar's zero end blocks
    tallies = fuzz_file(
        src, tmp_path / "cases", read_all, EXPECTED, input_kind="data shard (iter_shard, iter_shard_lazy, index_shard)",
        seed=31, flips=40, truncations=20, header_bytes=2048, payload_end=payload_end,
    )  # fmt: skip
    # A cut exactly between two samples leaves a shorter but valid shard, so one truncation may load.
    assert_clean(tallies, truncation_must_fail=False)
    trunc = tallies[1]
    assert trunc.refused >= trunc.cases - 1


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _good_files(key: str = "k-000001") -> dict[str, bytes]:
    return {f"{key}.{s}": d for s, d in encode_sample(tiny_sample(key, frames=1)).items()}


def _with(key: str = "k-000001", **changes: bytes) -> bytes:
    files = _good_files(key)
    for suffix, data in changes.items():
        files[f"{key}.{suffix.replace('__', '.').replace('_', '-')}"] = data
    return _tar(files)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _png_header(w: int, h: int) -> bytes:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def _cut_inside_last_member(data: bytes) -> bytes:
    """The tar cut in the middle of its last member: its header promises more bytes than the file holds."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        last = tar.getmembers()[-1]
    return data[: last.offset_data + last.size // 2]


META = {"kind": "wild", "num_frames": 1, "num_cameras": 1, "height": 8, "width": 6, "has_parts": True}


@pytest.fixture(scope="module")
def hostile():
    t = Tally("data shard (iter_shard, iter_shard_lazy)", "hand-made garbage members")
    yield t
    t.record()


@pytest.mark.parametrize(
    "name, content",
    [
        ("not_a_tar", b"this is not a tar file" * 50),
        ("empty_json_and_npz", _with(json=b"", npz=b"")),
        ("json_not_a_mapping", _with(json=b"[1, 2, 3]")),
        ("json_missing_sizes", _with(json=b'{"kind": "wild"}')),
        ("json_huge_sizes", _with(json=json.dumps({**META, "height": 100000, "width": 100000}).encode())),
        ("json_negative_sizes", _with(json=json.dumps({**META, "num_frames": -1}).encode())),
        ("npz_garbage", _with(npz=b"PK\x03\x04 garbage")),
        ("npz_with_pickled_objects", _with(npz=_npz(obj=np.array([{"a": 1}], dtype=object)))),
        ("png_garbage", _with(**{"0000-00__rgb__png": b"\x89PNG\r\n\x1a\n" + b"\0" * 40})),
        ("png_bomb_16k", _with(**{"0000-00__rgb__png": _png_header(16384, 16384)})),
        ("png_missing", _tar({k: v for k, v in _good_files().items() if not k.endswith("mask.png")})),
        ("member_size_lie", _cut_inside_last_member(_tar(_good_files()))),
    ],
)
def test_garbage_members_give_a_shard_error_naming_the_file(tmp_path, hostile, name, content):
    p = tmp_path / f"{name}.tar"
    p.write_bytes(content)
    err = run_case(hostile, p, read_all, EXPECTED, time_limit=2.0, what=name)
    assert not hostile.failures, hostile.failures
    assert isinstance(err, ShardError), f"{name} loaded"
    assert p.name in str(err)
