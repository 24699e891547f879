"""Images in: paths, bytes or arrays become one validated BGR uint8 array, or a typed error.

Decoding goes through Pillow because it checks the declared pixel count *before* decoding (our guard against
decompression bombs), reads EXIF orientation, and handles palette, alpha, grayscale and 16-bit images; the
result is handed to the rest of facetrace in OpenCV's BGR order, which the models expect.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from facetrace.budget import DECODE_BYTES_PER_PIXEL, decode_budget
from facetrace.errors import (
    ImageFileError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageFormatError,
    InvalidParameterError,
)

__all__ = ["SUPPORTED_FORMATS", "Image", "ImageLimits", "ImageSource", "load_image"]

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
_ORIENTATION = 0x0112  # the EXIF tag

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | npt.NDArray[np.generic]
"""What ``load_image`` accepts: a file path, encoded bytes, or a decoded array (BGR / gray / BGRA, uint8)."""


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """Bounds on what a caller may hand us. Defaults follow Rekognition (5 MB, 80 px minimum side)."""

    max_bytes: int = 5 * 1024 * 1024
    min_side: int = 80
    max_pixels: int = 40_000_000  # 40 MP: about 120 MB decoded, the decompression-bomb cap

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.min_side < 1 or self.max_pixels < 1:
            raise InvalidParameterError("image limits must be positive")


@dataclass(frozen=True, slots=True, eq=False)
class Image:
    """A decoded image: ``pixels`` is a C-contiguous (H, W, 3) uint8 array in BGR order."""

    pixels: npt.NDArray[np.uint8]
    format: str | None = None  # JPEG, PNG, WEBP, BMP; None for arrays

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def load_image(source: ImageSource | Image, limits: ImageLimits | None = None) -> Image:
    """Decode and validate ``source``.

    Raises ``ImageFileError`` (a path that cannot be read), ``InvalidImageFormatError`` (not an image,
    truncated, empty, unsupported), ``ImageTooLargeError``
    (bytes or pixels over the limits) or ``ImageTooSmallError``; never a third-party exception.
    """
    limits = limits or ImageLimits()
    if isinstance(source, Image):
        _check_dimensions(source.width, source.height, limits)
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, limits)
    if isinstance(source, bytes | bytearray | memoryview):
        return _decode(bytes(source), limits)
    if isinstance(source, str | os.PathLike):
        return _decode(_read_file(Path(source), limits), limits)
    raise InvalidParameterError(f"cannot read an image from a {type(source).__name__}")


def _read_file(path: Path, limits: ImageLimits) -> bytes:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ImageFileError(f"{path}: not a regular file")
        if size > limits.max_bytes:
            raise ImageTooLargeError(f"{path}: {size} bytes exceeds the {limits.max_bytes}-byte limit")
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageFileError(f"{path}: no such file") from None
    except PermissionError:
        raise ImageFileError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise ImageFileError(f"{path}: is a directory") from None
    except OSError as exc:
        raise ImageFileError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _decode(data: bytes, limits: ImageLimits) -> Image:
    if not data:
        raise InvalidImageFormatError("the image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(f"{len(data)} bytes exceeds the {limits.max_bytes}-byte limit")
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) between 1x and 2x MAX_IMAGE_PIXELS; we check the size ourselves below.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            pil = PILImage.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
            fmt = pil.format
            _check_dimensions(pil.width, pil.height, limits)
            # the header is read, no pixel yet: hold the decode's peak memory in the process-wide budget
            with decode_budget().hold(pil.width * pil.height * DECODE_BYTES_PER_PIXEL):
                pil.load()
                # exif_transpose copies the whole image even when there is nothing to turn: ask first.
                oriented = pil.getexif().get(_ORIENTATION, 1) not in (1, None)
                upright: PILImage.Image = (ImageOps.exif_transpose(pil) or pil) if oriented else pil
                pixels = _to_bgr(upright)
    except UnidentifiedImageError:
        raise InvalidImageFormatError(
            "not an image in a supported format (" + ", ".join(SUPPORTED_FORMATS) + ")"
        ) from None
    except PILImage.DecompressionBombError:
        raise ImageTooLargeError(f"the image has more than {limits.max_pixels} pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageFormatError(f"the image is damaged or truncated ({exc})") from None
    return Image(pixels=pixels, format=fmt)


def _check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    if width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"{width}x{height} is {width * height} pixels, over the {limits.max_pixels}-pixel limit"
        )
    if min(width, height) < limits.min_side:
        raise ImageTooSmallError(f"{width}x{height} is smaller than the {limits.min_side}-pixel minimum side")


def _to_bgr(pil: PILImage.Image) -> npt.NDArray[np.uint8]:
    """Convert any Pillow mode to BGR uint8, compositing transparency over white."""
    mode = pil.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: scale to 8 bits instead of clipping, which would turn most photos white.
        wide = np.asarray(pil, dtype=np.uint32)
        top = 65535 if mode.startswith("I;16") or wide.max(initial=0) > 255 else 255
        gray = (wide * 255 // top).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "P" and "transparency" in pil.info:
        pil = pil.convert("RGBA")
    if pil.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = pil.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        pil = PILImage.alpha_composite(background, rgba)
    rgb = np.asarray(pil if pil.mode == "RGB" else pil.convert("RGB"), dtype=np.uint8)
    # OpenCV's channel swap is one vectorised pass; a reversed-stride numpy copy is several times slower.
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), dtype=np.uint8)


def _from_array(array: npt.NDArray[np.generic], limits: ImageLimits) -> Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidImageFormatError(f"an image array must be HxW, HxWx3 or HxWx4, not {array.shape}")
    if array.dtype == np.uint16:
        array = (array.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    if array.dtype != np.uint8:
        raise InvalidImageFormatError(f"an image array must be uint8 or uint16, not {array.dtype}")
    height, width = int(array.shape[0]), int(array.shape[1])
    _check_dimensions(width, height, limits)
    if array.ndim == 2:
        bgr = np.repeat(array[:, :, None], 3, axis=2)
    elif array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        bgr = (array[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    else:
        bgr = array
    return Image(pixels=np.ascontiguousarray(bgr, dtype=np.uint8), format=None)
