"""Images in: paths, bytes or arrays become one validated BGR uint8 array, or a typed error.

Decoding goes through Pillow because it checks the declared pixel count *before* decoding (our guard against
decompression bombs), reads EXIF orientation, and handles palette, alpha, grayscale and 16-bit images; the
result is handed to the rest of facetrace in OpenCV's BGR order, which the models expect.

``load_image(..., reduce_to=N)`` decodes at a reduced size whose longer side is still at least ``N`` (the
detector's input size): a JPEG through libjpeg's DCT scaling (1/2, 1/4, 1/8: only the low frequencies are
computed, so a 3.3 MP photo decodes in about half the CPU time and a quarter of the memory), other formats by
shrinking in Pillow's own mode before the colour conversions (the full-size RGB and BGR copies never exist).
The engine decides whether the faces it finds are large enough at that size and decodes again at full size
when they are not (``FaceEngine.locate``).
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
from PIL import UnidentifiedImageError

from facetrace.budget import DECODE_BYTES_PER_PIXEL, decode_budget
from facetrace.errors import (
    ImageFileError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageFormatError,
    InvalidParameterError,
)

__all__ = ["REDUCTIONS", "SUPPORTED_FORMATS", "Image", "ImageLimits", "ImageSource", "load_image", "read_source"]

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
_ORIENTATION = 0x0112  # the EXIF tag
REDUCTIONS = (8, 4, 2)
"""Reduction factors a reduced decode may pick, largest first (libjpeg's DCT scales)."""
NATIVE_BYTES_PER_PIXEL = 8
"""Full-size bytes per pixel a reduced decode without DCT scaling holds: Pillow's own buffer (at most 4 bytes
a pixel) and one conversion to a mode that can be averaged (palette or 1-bit to RGBA/L, 16-bit to 32-bit)."""
_TRANSPOSE = {
    2: PILImage.Transpose.FLIP_LEFT_RIGHT,
    3: PILImage.Transpose.ROTATE_180,
    4: PILImage.Transpose.FLIP_TOP_BOTTOM,
    5: PILImage.Transpose.TRANSPOSE,
    6: PILImage.Transpose.ROTATE_270,
    7: PILImage.Transpose.TRANSVERSE,
    8: PILImage.Transpose.ROTATE_90,
}
"""EXIF orientation → the turn that makes the picture upright (as ``ImageOps.exif_transpose``)."""
OPENCV_JPEG = True
"""Decode baseline and progressive RGB/gray JPEGs with OpenCV (identical pixels, less CPU: ``_opencv_jpeg``)."""
_OPENCV_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}

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
    """A decoded image: ``pixels`` is a C-contiguous (H, W, 3) uint8 array in BGR order.

    ``reduction`` > 1: the pixels are the encoded image at 1/``reduction`` of its size (a reduced decode);
    pixel (x, y) here covers pixels [x·r, (x+1)·r) × [y·r, (y+1)·r) of the original, whose size is
    ``original_size``. ``width`` and ``height`` are always those of ``pixels``.
    """

    pixels: npt.NDArray[np.uint8]
    format: str | None = None  # JPEG, PNG, WEBP, BMP; None for arrays
    reduction: int = 1
    original_size: tuple[int, int] | None = None  # (width, height) of the encoded image when reduced

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def original_width(self) -> int:
        return self.original_size[0] if self.original_size else self.width

    @property
    def original_height(self) -> int:
        return self.original_size[1] if self.original_size else self.height


def load_image(
    source: ImageSource | Image, limits: ImageLimits | None = None, *, reduce_to: int | None = None
) -> Image:
    """Decode and validate ``source``.

    ``reduce_to``: decode encoded images at the largest reduction in ``REDUCTIONS`` that leaves the longer
    side at least this many pixels (``Image.reduction`` says which; 1 when none fits). Arrays and ``Image``
    are returned at their own size. Raises ``ImageFileError`` (a path that cannot be read),
    ``InvalidImageFormatError`` (not an image, truncated, empty, unsupported), ``ImageTooLargeError`` (bytes
    or pixels over the limits) or ``ImageTooSmallError``; never a third-party exception.
    """
    limits = limits or ImageLimits()
    if reduce_to is not None and reduce_to < 1:
        raise InvalidParameterError("reduce_to must be a positive number of pixels")
    if isinstance(source, Image):
        _check_dimensions(source.original_width, source.original_height, limits)
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, limits)
    return _decode(read_source(source, limits), limits, reduce_to)


def read_source(source: ImageSource, limits: ImageLimits | None = None) -> bytes:
    """The encoded bytes of a path or bytes-like ``source`` (read once, so it can be decoded twice)."""
    limits = limits or ImageLimits()
    if isinstance(source, bytes):
        return source
    if isinstance(source, bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str | os.PathLike):
        return _read_file(Path(source), limits)
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


def _decode(data: bytes, limits: ImageLimits, reduce_to: int | None = None) -> Image:
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
            original = pil.size
            _check_dimensions(pil.width, pil.height, limits)
            reduction = _reduction(original, reduce_to)
            native = 0  # bytes of the full-size buffers a reduction without DCT scaling goes through first
            if reduction > 1 and fmt == "JPEG":
                pil.draft(None, (pil.width // reduction, pil.height // reduction))  # pil.size is now reduced
                reduction = round(original[0] / pil.width)
                cost = pil.width * pil.height * DECODE_BYTES_PER_PIXEL
            else:
                native = pil.width * pil.height * NATIVE_BYTES_PER_PIXEL if reduction > 1 else 0
                cost = native + pil.width * pil.height * DECODE_BYTES_PER_PIXEL // reduction**2
            # the header is read, no pixel yet: hold the decode's peak memory in the process-wide budget
            with decode_budget().hold(cost):
                pixels_by_opencv = _opencv_jpeg(data, pil, reduction) if fmt == "JPEG" else None
                if pixels_by_opencv is not None:
                    orientation = pil.getexif().get(_ORIENTATION, 1)
                    return _image(_turn(pixels_by_opencv, orientation), fmt, reduction, original, orientation)
                pil.load()
                orientation = pil.getexif().get(_ORIENTATION, 1)
                decoded: PILImage.Image = pil
                if native:
                    decoded = _shrink(pil, reduction)
                    pil.close()  # the full-size buffer goes before the colour conversions
                # (exif_transpose copies the whole image even when there is nothing to turn.)
                transpose = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
                pixels = _to_bgr(decoded if transpose is None else decoded.transpose(transpose))
    except UnidentifiedImageError:
        raise InvalidImageFormatError(
            "not an image in a supported format (" + ", ".join(SUPPORTED_FORMATS) + ")"
        ) from None
    except PILImage.DecompressionBombError:
        raise ImageTooLargeError(f"the image has more than {limits.max_pixels} pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageFormatError(f"the image is damaged or truncated ({exc})") from None
    return _image(pixels, fmt, reduction, original, orientation)


def _image(
    pixels: npt.NDArray[np.uint8], fmt: str | None, reduction: int, original: tuple[int, int], orientation: object
) -> Image:
    if reduction == 1:
        return Image(pixels=pixels, format=fmt)
    turned = orientation in (5, 6, 7, 8)  # a quarter turn swaps width and height
    return Image(
        pixels=pixels, format=fmt, reduction=reduction, original_size=original[::-1] if turned else original
    )


def _opencv_jpeg(data: bytes, pil: PILImage.Image, reduction: int) -> npt.NDArray[np.uint8] | None:
    """The JPEG's BGR pixels (before EXIF orientation) decoded by OpenCV, or None where Pillow must do it.

    Both wrap libjpeg-turbo with the same defaults (integer IDCT, fancy upsampling, DCT scaling), so the pixels
    are identical (``tests/test_decode_paths.py`` on every registry and shared photo), but OpenCV writes BGR
    straight into the array where Pillow fills its own buffer that is then copied out and its channels
    swapped: 20–45% less CPU per decode (``benchmarks/bench_pipeline.py --section decode``). Pillow still
    reads the header (the pixel-count check against decompression bombs, EXIF) and decodes everything else:
    CMYK and other modes, and files that do not end with the end-of-image marker, so a truncated JPEG is
    still refused as Pillow refuses it (libjpeg's warning would otherwise pass a half-grey picture).
    """
    if not OPENCV_JPEG or pil.mode not in ("RGB", "L") or not data.endswith(b"\xff\xd9"):
        return None
    flags = _OPENCV_REDUCED.get(reduction)
    if flags is None:
        return None
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags | cv2.IMREAD_IGNORE_ORIENTATION)
    if pixels is None or pixels.shape != (pil.height, pil.width, 3) or pixels.dtype != np.uint8:
        return None  # (Pillow's draft gave the size libjpeg will produce at this scale)
    return np.ascontiguousarray(pixels)


def _turn(pixels: npt.NDArray[np.uint8], orientation: object) -> npt.NDArray[np.uint8]:
    """``pixels`` turned upright for an EXIF orientation (the same turns as ``_TRANSPOSE`` in Pillow)."""
    if orientation == 2:
        return np.asarray(cv2.flip(pixels, 1), np.uint8)
    if orientation == 3:
        return np.asarray(cv2.rotate(pixels, cv2.ROTATE_180), np.uint8)
    if orientation == 4:
        return np.asarray(cv2.flip(pixels, 0), np.uint8)
    if orientation == 5:
        return np.asarray(cv2.transpose(pixels), np.uint8)
    if orientation == 6:
        return np.asarray(cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE), np.uint8)
    if orientation == 7:
        return np.asarray(cv2.flip(cv2.transpose(pixels), -1), np.uint8)
    if orientation == 8:
        return np.asarray(cv2.rotate(pixels, cv2.ROTATE_90_COUNTERCLOCKWISE), np.uint8)
    return pixels


def _reduction(size: tuple[int, int], reduce_to: int | None) -> int:
    """The largest factor in ``REDUCTIONS`` that leaves the longer side of ``size`` at least ``reduce_to``."""
    if reduce_to is None:
        return 1
    longest = max(size)
    return next((factor for factor in REDUCTIONS if longest // factor >= reduce_to), 1)


def _shrink(pil: PILImage.Image, factor: int) -> PILImage.Image:
    """``pil`` at 1/``factor`` (box filter) in a mode whose colours survive averaging, before any RGB copy."""
    if pil.mode in ("1", "P"):
        pil = pil.convert("RGBA" if "transparency" in pil.info else "L" if pil.mode == "1" else "RGB")
    elif pil.mode in ("I;16", "I;16B", "I;16L"):
        pil = pil.convert("I")
    return pil.reduce(factor)


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
