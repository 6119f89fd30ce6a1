"""Photos and frames from strangers: corrupt, truncated, oversized, grey, CMYK, 16-bit and rotated files."""

import io
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from hardening_fuzz import Tally, assert_clean, fuzz_file, run_case, wall_limit
from PIL import Image

from core.capture.photos import PhotoError, read_photo
from core.data.video import read_frames
from core.io import FileFormatError, read_image_rgb


def _photo(size=(48, 64)) -> Image.Image:
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1).astype(np.uint8)
    return Image.fromarray(rgb)


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_bit_flipped_and_truncated_photos_give_photo_errors(tmp_path, fmt):
    src = tmp_path / f"photo.{fmt}"
    _photo().save(src, quality=90) if fmt == "jpg" else _photo().save(src)
    assert read_photo(src).shape == (48, 64, 3)
    # Cuts that only lose PNG's checksums and IEND chunk, or JPEG's end marker, lose no pixel and may load.
    end = src.stat().st_size - (20 if fmt == "png" else 2)
    tallies = fuzz_file(
        src, tmp_path / "cases", read_photo, (PhotoError,), input_kind=f"photo .{fmt} (capture read_photo)",
        seed=41 + len(fmt), flips=30, truncations=15, header_bytes=200, payload_end=end,
    )  # fmt: skip
    assert_clean(tallies)


def test_bit_flipped_and_truncated_frames_give_file_format_errors(tmp_path):
    src = tmp_path / "frame.png"
    _photo().save(src)
    tallies = fuzz_file(
        src, tmp_path / "cases", lambda p: read_frames(p), (FileFormatError,),
        input_kind="image frame .png (core.data.video.read_frames)", seed=47, flips=20, truncations=10,
        header_bytes=200, payload_end=src.stat().st_size - 20,
    )  # fmt: skip
    assert_clean(tallies)


def _png_declaring(w: int, h: int) -> bytes:
    """A PNG whose header declares w x h pixels (16-bit RGBA: 8 bytes a pixel) with one tiny compressed row."""
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 6, 0, 0, 0)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _jpeg_declaring(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    _photo((8, 8)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


@pytest.fixture(scope="module")
def hostile():
    t = Tally("photo (read_image_rgb / read_photo)", "declared 16K x 16K and 65K x 65K (bombs)")
    yield t
    t.record()


@pytest.mark.parametrize(
    "name, content",
    [
        ("png_16k", _png_declaring(16384, 16384)),
        ("png_65k", _png_declaring(65535, 65535)),
        ("jpeg_16k", _jpeg_declaring(16384, 16384)),
        ("jpeg_65k", _jpeg_declaring(65535, 65535)),
    ],
)
def test_decompression_bombs_are_refused_before_allocation(tmp_path, hostile, name, content):
    p = tmp_path / f"{name}.{'png' if name.startswith('png') else 'jpg'}"
    p.write_bytes(content)
    tracemalloc.start()
    t0 = time.perf_counter()
    err = run_case(hostile, p, read_photo, (PhotoError,), time_limit=1.0, what=name)
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert not hostile.failures, hostile.failures
    assert isinstance(err, PhotoError) and "limit" in str(err) and p.name in str(err), err
    assert peak < 32 << 20, f"{name}: {peak / 2**20:.0f} MiB traced while refusing"
    assert dt < wall_limit(1.0)  # the CPU-time bound is checked by run_case
    with pytest.raises(FileFormatError, match="megapixel"):
        read_frames(p)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16"])
def test_grey_palette_alpha_cmyk_and_16_bit_photos_become_rgb(tmp_path, mode):
    img = _photo((20, 30))
    if mode == "I;16":
        a = (np.asarray(img.convert("L"), np.uint16) * 257).astype(np.uint16)
        img = Image.fromarray(a)
    else:
        img = img.convert(mode)
    p = tmp_path / ("p.jpg" if mode in ("L", "CMYK") else "p.png")
    img.save(p)
    rgb = read_photo(p)
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    assert rgb.std() > 10, f"{mode}: the picture was lost in conversion"
    if mode in ("L", "I;16"):
        grey = np.asarray(_photo((20, 30)).convert("L"), np.float64)
        assert np.abs(rgb[..., 0].astype(np.float64) - grey).mean() < 8


def test_exif_rotation_is_honoured(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide, 20 tall: red left half, blue right half
    a[:, :20, 0] = 255
    a[:, 20:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    p = tmp_path / "rotated.jpg"
    Image.fromarray(a).save(p, exif=exif, quality=95)
    rgb = read_photo(p)
    assert rgb.shape == (40, 20, 3)
    assert rgb[:15, :, 0].mean() > 200 and rgb[:15, :, 2].mean() < 60  # the left (red) half is now on top
    assert rgb[-15:, :, 2].mean() > 200
    assert np.array_equal(read_frames(p)[0], rgb)


def test_missing_and_non_image_files_give_clear_errors(tmp_path):
    with pytest.raises(PhotoError, match="nope.jpg"):
        read_photo(tmp_path / "nope.jpg")
    p = tmp_path / "notes.png"
    p.write_text("hello, not an image")
    with pytest.raises(FileFormatError, match="notes.png"):
        read_image_rgb(p)
