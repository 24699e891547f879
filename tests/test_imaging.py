"""Images in: every input kind and format a caller may send, EXIF orientation, and every way it can fail."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from facetrace.engine import FaceEngine
from facetrace.errors import (
    FacetraceError,
    ImageFileError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageFormatError,
    InvalidParameterError,
)
from facetrace.imaging import Image, ImageLimits, load_image


@pytest.fixture(scope="module")
def portrait(photos: dict[str, Path]) -> PILImage.Image:
    """obama.jpg as an RGB Pillow image, shrunk to 364×455 to keep encoding fast."""
    with PILImage.open(photos["obama.jpg"]) as image:
        return image.convert("RGB").resize((364, 455), PILImage.Resampling.LANCZOS)


def encode(image: PILImage.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def one_face(engine: FaceEngine, image: Image) -> None:
    faces = engine.find_faces(image)
    assert len(faces) == 1
    assert faces[0].score > 0.8


# -- input kinds -------------------------------------------------------------------------------------


def test_path_str_and_pathlike_give_the_same_pixels(photos: dict[str, Path]) -> None:
    from_path = load_image(photos["obama.jpg"])
    from_str = load_image(str(photos["obama.jpg"]))
    assert from_path.format == "JPEG"
    assert (from_path.width, from_path.height) == (910, 1137)
    assert from_path.pixels.shape == (1137, 910, 3)
    assert from_path.pixels.dtype == np.uint8
    assert from_path.pixels.flags.c_contiguous
    np.testing.assert_array_equal(from_path.pixels, from_str.pixels)


def test_bytes_bytearray_memoryview(photos: dict[str, Path]) -> None:
    data = photos["obama.jpg"].read_bytes()
    reference = load_image(photos["obama.jpg"]).pixels
    for source in (data, bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(load_image(source).pixels, reference)


def test_decoded_pixels_are_bgr(portrait: PILImage.Image) -> None:
    rgb = np.asarray(portrait)
    image = load_image(encode(portrait, "PNG"))
    np.testing.assert_array_equal(image.pixels, rgb[:, :, ::-1])


def test_bgr_array_passes_through(portrait: PILImage.Image) -> None:
    bgr = np.ascontiguousarray(np.asarray(portrait)[:, :, ::-1])
    image = load_image(bgr)
    assert image.format is None
    np.testing.assert_array_equal(image.pixels, bgr)


def test_non_contiguous_array_is_copied(portrait: PILImage.Image) -> None:
    view = np.asarray(portrait)[:, :, ::-1]  # a negative-stride view
    image = load_image(view)
    assert image.pixels.flags.c_contiguous
    np.testing.assert_array_equal(image.pixels, view)


@pytest.mark.parametrize("shape", ["hw", "hw1"])
def test_gray_array_is_repeated_into_three_channels(portrait: PILImage.Image, shape: str) -> None:
    gray = np.asarray(portrait.convert("L"))
    image = load_image(gray if shape == "hw" else gray[:, :, None])
    assert image.pixels.shape == (*gray.shape, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image.pixels[:, :, channel], gray)


def test_bgra_array_is_composited_over_white(portrait: PILImage.Image) -> None:
    bgr = np.asarray(portrait)[:, :, ::-1]
    alpha = np.full((*bgr.shape[:2], 1), 255, dtype=np.uint8)
    alpha[:50] = 0  # a transparent band at the top
    image = load_image(np.concatenate([bgr, alpha], axis=2))
    assert (image.pixels[:50] == 255).all()
    np.testing.assert_array_equal(image.pixels[50:], bgr[50:])


def test_uint16_array_is_scaled_not_clipped(portrait: PILImage.Image) -> None:
    bgr = np.asarray(portrait)[:, :, ::-1]
    wide = bgr.astype(np.uint16) * 257  # 0–255 → 0–65535
    image = load_image(wide)
    np.testing.assert_array_equal(image.pixels, bgr)


def test_an_image_passes_through_but_is_still_checked(portrait: PILImage.Image) -> None:
    image = load_image(encode(portrait, "PNG"))
    assert load_image(image) is image
    with pytest.raises(ImageTooSmallError):
        load_image(image, ImageLimits(min_side=1000))


# -- formats -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode", "options"),
    [
        ("JPEG", "RGB", {"quality": 90}),
        ("JPEG", "L", {}),
        ("PNG", "RGB", {}),
        ("PNG", "L", {}),
        ("PNG", "P", {}),
        ("WEBP", "RGB", {"quality": 90}),
        ("BMP", "RGB", {}),
    ],
)
def test_supported_formats_decode_and_show_the_face(
    engine: FaceEngine, portrait: PILImage.Image, fmt: str, mode: str, options: dict[str, object]
) -> None:
    source = portrait.convert(mode) if mode != "P" else portrait.quantize(colors=256)
    image = load_image(encode(source, fmt, **options))
    assert image.format == fmt
    assert image.pixels.shape == (455, 364, 3)
    one_face(engine, image)


def test_png_with_alpha_is_composited_over_white(engine: FaceEngine, portrait: PILImage.Image) -> None:
    rgba = portrait.convert("RGBA")
    alpha = np.full((455, 364), 255, dtype=np.uint8)
    alpha[:, :40] = 0  # transparent left strip
    rgba.putalpha(PILImage.fromarray(alpha))
    image = load_image(encode(rgba, "PNG"))
    assert (image.pixels[:, :40] == 255).all()
    np.testing.assert_array_equal(image.pixels[:, 40:], np.asarray(portrait)[:, 40:, ::-1])
    one_face(engine, image)


def test_palette_png_with_transparency(portrait: PILImage.Image) -> None:
    palette = portrait.quantize(colors=64)
    data = encode(palette, "PNG", transparency=0)
    image = load_image(data)
    transparent = np.asarray(palette) == 0
    assert transparent.any()
    assert (image.pixels[transparent] == 255).all()


def test_16_bit_grayscale_png_is_scaled_to_8_bits(engine: FaceEngine, portrait: PILImage.Image) -> None:
    gray8 = np.asarray(portrait.convert("L")).astype(np.uint16)
    wide = PILImage.fromarray(gray8 * 257)  # 16-bit values 0–65535
    assert wide.mode.startswith("I;16")
    image = load_image(encode(wide, "PNG"))
    np.testing.assert_array_equal(image.pixels[:, :, 0], gray8.astype(np.uint8))
    one_face(engine, image)


def test_32_bit_png_from_face_recognition_decodes(photos: dict[str, Path]) -> None:
    image = load_image(photos["32bit.png"])
    assert image.format == "PNG"
    assert image.pixels.ndim == 3
    assert image.pixels.shape[2] == 3


@pytest.mark.parametrize(("orientation", "rotate"), [(6, 90), (8, 270), (3, 180)])
def test_exif_orientation_is_applied(
    engine: FaceEngine, portrait: PILImage.Image, orientation: int, rotate: int
) -> None:
    # Store the pixels rotated and tag them so that a viewer rotates them back upright.
    stored = portrait.rotate(rotate, expand=True)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    raw = load_image(encode(stored, "JPEG", quality=95))  # the same pixels without the tag
    image = load_image(data)
    assert (image.width, image.height) == (364, 455)
    if rotate != 180:
        assert (raw.width, raw.height) == (455, 364)
    difference = np.abs(image.pixels.astype(np.int16) - np.asarray(portrait)[:, :, ::-1]).mean()
    assert difference < 4.0
    _, faces = engine.analyze(image)
    assert len(faces) == 1
    assert abs(faces[0].detail.pose.roll) < 15.0


# -- errors ------------------------------------------------------------------------------------------


def test_not_an_image() -> None:
    with pytest.raises(InvalidImageFormatError):
        load_image(b"this is plain text, not a picture" * 10)


def test_empty() -> None:
    with pytest.raises(InvalidImageFormatError):
        load_image(b"")


def test_truncated_jpeg(photos: dict[str, Path]) -> None:
    data = photos["obama.jpg"].read_bytes()
    with pytest.raises(InvalidImageFormatError):
        load_image(data[: len(data) // 2])


def test_truncated_header() -> None:
    with pytest.raises(InvalidImageFormatError):
        load_image(b"\x89PNG\r\n\x1a\n\x00\x00")


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "ICO"])
def test_unsupported_formats(portrait: PILImage.Image, fmt: str) -> None:
    data = encode(portrait.resize((128, 160)), fmt)
    with pytest.raises(InvalidImageFormatError, match="supported format"):
        load_image(data)


def test_too_many_bytes(photos: dict[str, Path]) -> None:
    limits = ImageLimits(max_bytes=10_000)
    with pytest.raises(ImageTooLargeError):
        load_image(photos["obama.jpg"].read_bytes(), limits)
    with pytest.raises(ImageTooLargeError):
        load_image(photos["obama.jpg"], limits)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # 10,000 × 5,000 = 50 MP of one-bit white: a few KB on disk, 150 MB once decoded to BGR.
    bomb = encode(PILImage.new("1", (10_000, 5_000), 1), "PNG")
    assert len(bomb) < 100_000
    with pytest.raises(ImageTooLargeError, match="pixel"):
        load_image(bomb)


def test_forged_png_header_claiming_huge_dimensions() -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = (60_000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])  # 60,000² RGB, 8 bits
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    with pytest.raises(ImageTooLargeError):
        load_image(data)


def test_too_many_pixels_for_custom_limits(photos: dict[str, Path]) -> None:
    with pytest.raises(ImageTooLargeError):
        load_image(photos["obama.jpg"], ImageLimits(max_pixels=100_000))
    with pytest.raises(ImageTooLargeError):
        load_image(np.zeros((400, 400, 3), np.uint8), ImageLimits(max_pixels=100_000))


def test_too_small(portrait: PILImage.Image) -> None:
    with pytest.raises(ImageTooSmallError):
        load_image(encode(portrait.resize((60, 75)), "PNG"))
    with pytest.raises(ImageTooSmallError):
        load_image(np.zeros((79, 500, 3), np.uint8))


def test_missing_path_and_directory(tmp_path: Path) -> None:
    # A path that cannot be read is not a format problem: its own type, the path in the message.
    with pytest.raises(ImageFileError, match=r"missing\.jpg: no such file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageFileError, match=r"directory|regular file"):
        load_image(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(InvalidImageFormatError):
        load_image(path)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((100, 100, 2), np.uint8),
        np.zeros((100, 100, 3, 1), np.uint8),
        np.zeros(100, np.uint8),
        np.zeros((100, 100, 3), np.float32),
        np.zeros((100, 100, 3), np.int64),
    ],
    ids=["two-channels", "4-d", "1-d", "float32", "int64"],
)
def test_bad_arrays(array: np.ndarray) -> None:
    with pytest.raises(InvalidImageFormatError):
        load_image(array)


def test_unsupported_source_type() -> None:
    with pytest.raises(InvalidParameterError):
        load_image(12345)  # type: ignore[arg-type]


def test_limits_must_be_positive() -> None:
    with pytest.raises(InvalidParameterError):
        ImageLimits(max_bytes=0)


def test_every_error_is_a_facetrace_error(photos: dict[str, Path], tmp_path: Path) -> None:
    data = photos["obama.jpg"].read_bytes()
    garbage = [b"", b"GIF89a" + bytes(100), data[:200], data[:-5000], bytes(range(256)) * 40, tmp_path]
    for source in garbage:
        with pytest.raises(FacetraceError):
            load_image(source)
