"""JPEGs decoded by OpenCV (``imaging._opencv_jpeg``) give exactly Pillow's pixels, at every reduction and
EXIF orientation; whatever OpenCV should not decode still goes through Pillow with its errors."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from facetrace import imaging
from facetrace.errors import InvalidImageFormatError
from facetrace.imaging import Image, load_image
from tests.photos import PHOTOS, photo

JPEGS = sorted(name for name in PHOTOS if name.endswith(".jpg"))


def both(data: bytes, reduce_to: int | None, monkeypatch: pytest.MonkeyPatch) -> tuple[Image, Image]:
    """(OpenCV's decode, Pillow's decode) of ``data``."""
    fast = load_image(data, reduce_to=reduce_to)
    with monkeypatch.context() as patch:
        patch.setattr(imaging, "OPENCV_JPEG", False)
        slow = load_image(data, reduce_to=reduce_to)
    return fast, slow


def assert_identical(fast: Image, slow: Image) -> None:
    assert fast.pixels.flags.c_contiguous
    assert fast.pixels.shape == slow.pixels.shape
    assert np.array_equal(fast.pixels, slow.pixels)
    assert (fast.reduction, fast.original_size, fast.format) == (slow.reduction, slow.original_size, slow.format)


def opencv_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the decodes OpenCV did (so a test sees which path ran)."""
    calls: list[int] = []
    real = imaging._opencv_jpeg

    def counted(*args: object) -> object:
        result = real(*args)  # type: ignore[arg-type]
        calls.append(result is not None)
        return result

    monkeypatch.setattr(imaging, "_opencv_jpeg", counted)
    return calls


@pytest.mark.parametrize("name", JPEGS)
@pytest.mark.parametrize("reduce_to", [None, 640, 200])
def test_registry_photos_decode_identically(
    name: str, reduce_to: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = opencv_calls(monkeypatch)
    fast, slow = both(photo(name).read_bytes(), reduce_to, monkeypatch)
    assert calls[0]  # OpenCV decoded it (the second decode was Pillow's)
    assert_identical(fast, slow)


def _reencode(data: bytes, **options: object) -> bytes:
    with PILImage.open(io.BytesIO(data)) as source:
        buffer = io.BytesIO()
        picture = source.convert(str(options.pop("mode", "RGB")))
        picture.save(buffer, format="JPEG", quality=90, **options)  # type: ignore[arg-type]
        return buffer.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientations_turn_the_same_way(orientation: int, monkeypatch: pytest.MonkeyPatch) -> None:
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    data = _reencode(photo("obama3.jpg").read_bytes(), exif=exif.tobytes())
    for reduce_to in (None, 640):
        fast, slow = both(data, reduce_to, monkeypatch)
        assert_identical(fast, slow)
    if orientation in (5, 6, 7, 8):
        assert fast.pixels.shape[0] < fast.pixels.shape[1]  # obama3 is portrait: a quarter turn lays it down


@pytest.mark.parametrize(("mode", "progressive"), [("L", False), ("RGB", True)])
def test_gray_and_progressive_jpegs(mode: str, progressive: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _reencode(photo("biden.jpg").read_bytes(), mode=mode, progressive=progressive)
    calls = opencv_calls(monkeypatch)
    for reduce_to in (None, 640):
        assert_identical(*both(data, reduce_to, monkeypatch))
    assert calls[0]


def test_cmyk_and_truncated_jpegs_stay_with_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    data = photo("obama.jpg").read_bytes()
    cmyk = _reencode(data, mode="CMYK")
    calls = opencv_calls(monkeypatch)
    assert_identical(*both(cmyk, 640, monkeypatch))
    with pytest.raises(InvalidImageFormatError, match="truncated"):
        load_image(data[: len(data) * 2 // 3])
    assert calls
    assert not any(calls)


def _shared_jpegs(shared: Path) -> Iterator[Path]:
    for folder in ("face_recognition", "dlib_faces", "wider_val200", "lfw_subset"):
        yield from sorted((shared / folder).rglob("*.jpg"))


@pytest.mark.shared
def test_shared_photos_decode_identically(shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count = 0
    for path in _shared_jpegs(shared):
        data = path.read_bytes()
        for reduce_to in (None, 640):
            assert_identical(*both(data, reduce_to, monkeypatch))
        count += 1
    assert count >= 300
