"""Corrupted and hostile .ply files end in a clear ValueError naming the file (or load), in bounded time."""

import numpy as np
import pytest
import torch
from hardening_fuzz import Tally, assert_clean, fuzz_file, run_case

from core.raster.ply import load_ply, save_ply
from core.raster.types import Gaussians

EXPECTED = (ValueError, FileNotFoundError)


@pytest.fixture(scope="module")
def hostile():
    t = Tally(".ply (load_ply)", "hand-made hostile headers and values")
    yield t
    t.record()


def small_gaussians(n: int = 40) -> Gaussians:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(n, 4, generator=g)
    return Gaussians(
        means=torch.randn(n, 3, generator=g), quats=q / q.norm(dim=-1, keepdim=True),
        log_scales=torch.randn(n, 3, generator=g) - 3, opacity_logits=torch.randn(n, generator=g),
        sh=torch.randn(n, 4, 3, generator=g), parts=torch.randint(0, 3, (n,), generator=g),
    )  # fmt: skip


def test_bit_flipped_and_truncated_ply_files_are_refused_or_load(tmp_path):
    src = save_ply(tmp_path / "s.ply", small_gaussians())
    assert load_ply(src).means.shape == (40, 3)
    header = src.read_bytes().index(b"end_header\n") + len(b"end_header\n")
    tallies = fuzz_file(
        src, tmp_path / "cases", load_ply, EXPECTED, input_kind=".ply (load_ply)", seed=11, flips=40,
        truncations=20, header_bytes=header,
    )  # fmt: skip
    # Truncations that only cut the tail of the body are refused by plyfile's size check.
    assert_clean(tallies)


def _header(count: str, fmt: str = "binary_little_endian 1.0", props: list[str] | None = None) -> bytes:
    names = props or ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
    names += ["scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"] if props is None else []
    lines = ["ply", f"format {fmt}", f"element vertex {count}"] + [f"property float {n}" for n in names]
    return ("\n".join(lines + ["end_header"]) + "\n").encode()


@pytest.mark.parametrize(
    "name, content",
    [
        ("huge_count_binary", _header("4000000000") + b"\0" * 64),
        ("huge_count_ascii", _header("4000000000", "ascii 1.0") + b"1 2 3\n"),
        ("negative_count", _header("-5") + b"\0" * 64),
        ("count_not_a_number", _header("lots") + b"\0" * 64),
        ("wrong_magic", b"plx\n" + _header("1")[4:] + b"\0" * 56),
        ("no_end_header", b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n" + b"\xff" * 400),
        ("unknown_format", _header("1", "binary_middle_endian 1.0") + b"\0" * 56),
        ("unknown_property_type", _header("1").replace(b"property float x", b"property quad x") + b"\0" * 56),
        ("missing_3dgs_properties", _header("1", props=["x", "y", "z"]) + b"\0" * 12),
        ("empty_file", b""),
        ("binary_garbage", bytes(range(256)) * 4),
        ("nan_values", _header("1") + np.full(14, np.nan, "<f4").tobytes()),
        ("inf_values", _header("1") + np.full(14, np.inf, "<f4").tobytes()),
        ("ascii_short_row", _header("2", "ascii 1.0") + b"1 2 3\n"),
    ],
)
def test_hostile_ply_headers_give_clear_errors(tmp_path, name, content, hostile):
    p = tmp_path / f"{name}.ply"
    p.write_bytes(content)
    err = run_case(hostile, p, load_ply, EXPECTED, what=name)
    assert not hostile.failures, hostile.failures
    assert err is not None, f"{name} loaded"
    assert p.name in str(err), f"the message does not name the file: {err}"
