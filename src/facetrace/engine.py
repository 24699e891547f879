"""The face engine: image → faces → identity vectors, composed from the models it is given.

The engine owns no storage and speaks no HTTP. It decides *where* to look for faces (a ~640 px copy for
large faces, optional full-resolution tiles for small ones), aligns every face on the full-resolution
pixels, and embeds the crops. Measured (``benchmarks/bench_pipeline.py --section large``): at full resolution
YuNet still finds large faces but returns boxes about 40% too small for faces ~1,000 px tall (LFW ×8), and
costs 8× more at 1080p; detecting on a ≤640 px copy and aligning on the original gives the same identity
vectors (Obama 240p…1080p: similarity ≥ 99.8 to obama.jpg either way).

Detector and embedder instances are not thread-safe, so each thread that uses the engine builds its own
from the factories (``threading.local``); the server and the video pipeline call it from worker threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from facetrace import geometry, quality
from facetrace.calibration import Calibration, load_calibration, pair_quality
from facetrace.errors import InvalidParameterError, ModelMismatchError, NoFaceError
from facetrace.imaging import Image, ImageLimits, ImageSource, load_image, read_source
from facetrace.models import Detector, Embedder, create_detector, create_embedder
from facetrace.models.batching import BatchingEmbedder
from facetrace.types import BoundingBox, Detection, FaceDetail, Landmark, ModelInfo, Vector

__all__ = ["LANDMARK_NAMES", "AnalyzedFace", "Comparison", "DetectionSettings", "FaceEngine"]

log = logging.getLogger(__name__)

LANDMARK_NAMES = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")
MAX_FACES_LIMIT = 100
ROLL_REFINE_DEGREES = 5.0
"""Faces whose eye line is tilted more than this get their landmarks re-detected on an upright copy."""
REFINE_PATCH = 320
"""Longest side of the upright copy used for that (the face fills about half of it)."""
REDUCED_MAX_ALIGN_SCALE = 1.0
"""A reduced decode is kept when every face has at least the aligned crop's resolution in it (``geometry.
alignment_scale`` ≤ this): its crop is then a reduction, never an enlargement. Measured on the shared photos
(``benchmarks/bench_pipeline.py --section reduced``): such faces' vectors agree with the full decode's to a
cosine of ≥ 0.97 (≥ 0.99 at ≤ 0.7, where ``align_face`` shrinks the face anyway), about the agreement
between two JPEG encodings of one photo."""


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    """Where and how hard to look for faces.

    ``max_side``: the detector sees a copy whose longer side is at most this many pixels (large faces).
    ``small_faces``: also scan the image at full resolution (upscaled ``upscale``×) in overlapping
    ``tile``-pixel tiles, for faces only a few dozen pixels tall in large frames (CCTV). It costs one
    detector pass per tile; see ``benchmarks/bench_pipeline.py``.
    ``min_confidence``: detections below this score (0–1) are dropped.
    ``reduced_decode``: decode encoded images larger than ``max_side`` at a reduced size (JPEG DCT scaling)
    when the faces found there are large enough for recognition (``FaceEngine.locate``); not with
    ``small_faces``, whose tiles need every pixel.
    """

    max_side: int = 640
    small_faces: bool = False
    tile: int = 640
    upscale: float = 1.0
    min_confidence: float = 0.5
    reduced_decode: bool = True

    def __post_init__(self) -> None:
        if not 64 <= self.max_side <= 4096 or not 128 <= self.tile <= 4096:
            raise InvalidParameterError("max_side and tile must be between 64/128 and 4096 pixels")
        if not 1.0 <= self.upscale <= 4.0:
            raise InvalidParameterError("upscale must be between 1 and 4")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise InvalidParameterError("min_confidence must be between 0 and 1")


@dataclass(frozen=True, slots=True, eq=False)
class AnalyzedFace:
    """One face found in an image: Rekognition-style details, the raw detection, and (optionally) its vector."""

    detail: FaceDetail
    detection: Detection  # pixels of the full-resolution image
    vector: Vector | None = None
    crop: npt.NDArray[np.uint8] | None = field(default=None, repr=False)  # the aligned crop, BGR

    @property
    def quality_score(self) -> float:
        """0–100 quality for recognition (``quality.face_quality``): picks the calibration curve of its pairs."""
        return quality.face_quality(self.detection)


@dataclass(frozen=True, slots=True)
class Comparison:
    """CompareFaces: the source's largest face against every face in the target."""

    source: AnalyzedFace
    matches: tuple[tuple[AnalyzedFace, float], ...]  # (target face, similarity) at or above the threshold
    unmatched: tuple[tuple[AnalyzedFace, float], ...]


class FaceEngine:
    """Detects, aligns and embeds faces. Thread-safe: model instances are per thread."""

    def __init__(
        self,
        detector_factory: Callable[[], Detector],
        embedder_factory: Callable[[], Embedder],
        *,
        settings: DetectionSettings | None = None,
        calibration: Calibration | None = None,
        limits: ImageLimits | None = None,
        tile_detector_factory: Callable[[], Detector] | None = None,
    ) -> None:
        self._detector_factory = detector_factory
        self._tile_detector_factory = tile_detector_factory
        self._embedder_factory = embedder_factory
        self._local = threading.local()
        self.settings = settings or DetectionSettings()
        self.limits = limits or ImageLimits()
        # Build one embedder now: it fails fast on a missing model and tells us which model this engine runs.
        self._info = self._embedder().info
        self.calibration = calibration or load_calibration(self._info.key)
        if self.calibration.model != self._info.key:
            raise ModelMismatchError(
                f"calibration is for {self.calibration.model}, the embedder is {self._info.key}"
            )

    @classmethod
    def create(
        cls,
        detector: str = "yunet",
        embedder: str = "sface",
        *,
        detector_options: dict[str, object] | None = None,
        embedder_options: dict[str, object] | None = None,
        settings: DetectionSettings | None = None,
        calibration: Calibration | None = None,
        limits: ImageLimits | None = None,
        embed_runners: int | None = None,
        embed_batch: int = 1,
    ) -> FaceEngine:
        """An engine over registered models by name (defaults: YuNet + SFace).

        ``embed_runners``: share one ``BatchingEmbedder`` with that many model instances between every
        thread (at most that many recognitions at once, first come first served, batches of up to
        ``embed_batch`` faces) instead of an embedder per thread; the server runs one per core.
        """
        det_opts, emb_opts = dict(detector_options or {}), dict(embedder_options or {})
        make_embedder: Callable[[], Embedder] = lambda: create_embedder(embedder, **emb_opts)  # noqa: E731
        if embed_runners is not None:
            shared = BatchingEmbedder(make_embedder, runners=embed_runners, max_batch=embed_batch)
            make_embedder = lambda: shared  # noqa: E731
        return cls(
            lambda: create_detector(detector, **det_opts),
            make_embedder,
            settings=settings,
            calibration=calibration,
            limits=limits,
        )

    @property
    def model(self) -> ModelInfo:
        """The recognizer whose vectors this engine produces."""
        return self._info

    @property
    def detector_name(self) -> str:
        return self._detector().name

    def _detector(self) -> Detector:
        detector: Detector | None = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = self._detector_factory()
        return detector

    def _tile_detector(self) -> Detector:
        if self._tile_detector_factory is None:
            return self._detector()
        detector: Detector | None = getattr(self._local, "tile_detector", None)
        if detector is None:
            detector = self._local.tile_detector = self._tile_detector_factory()
        return detector

    def _embedder(self) -> Embedder:
        embedder: Embedder | None = getattr(self._local, "embedder", None)
        if embedder is None:
            embedder = self._local.embedder = self._embedder_factory()
        return embedder

    def warm(self) -> None:
        """Build the calling thread's models and run each once on a blank input.

        A detector is built per thread on first use (loading the ONNX file, rewriting and optimising the
        graph, then onnxruntime's first-run allocations); the server calls this on every worker before it
        accepts requests, so the first requests do not all pay for it at once while others queue behind them."""
        self._detector().detect(np.zeros((480, self.settings.max_side, 3), dtype=np.uint8))
        size = self._embedder().input_size
        self._embedder().embed(np.zeros((1, size, size, 3), dtype=np.uint8))

    def load(self, source: ImageSource | Image) -> Image:
        """Decode and validate an image with this engine's limits (at full size)."""
        return load_image(source, self.limits)

    def locate(
        self, source: ImageSource | Image, max_faces: int = MAX_FACES_LIMIT
    ) -> tuple[Image, list[Detection]]:
        """Decode ``source`` and find its faces (``find_faces``): the image, and detections in its pixels.

        The detector only ever sees a ≤ ``max_side`` copy, so an encoded image larger than that is first
        decoded reduced (``load_image(reduce_to=max_side)``: a JPEG by libjpeg's DCT scaling, at 1/2, 1/4 or
        1/8). That image is kept when every face found has at least the aligned crop's resolution in it
        (``REDUCED_MAX_ALIGN_SCALE``): its crop is then a reduction of the face either way. Otherwise the
        image is decoded again at full size, the detections are scaled to it and tilted faces' landmarks are
        refined on it (``_upright_landmarks``), so a small face's crop has every pixel it has; only the
        detector's ≤ ``max_side`` view came from the reduced decode (as good a reduction as resizing the
        full image, and one detector pass saved). The returned
        image's ``reduction`` says which; ``describe`` reports detections in full-size pixels either way.
        """
        settings = self.settings
        if isinstance(source, Image | np.ndarray) or settings.small_faces or not settings.reduced_decode:
            image = source if isinstance(source, Image) else self.load(source)  # an Image is taken as it is
            return image, self.find_faces(image, max_faces)
        data = read_source(source, self.limits)
        image = load_image(data, self.limits, reduce_to=settings.max_side)
        found = self.find_faces(image, max_faces, upright=False)
        size = self._embedder().input_size
        if image.reduction == 1 or all(
            geometry.alignment_scale(d.landmarks, size) <= REDUCED_MAX_ALIGN_SCALE for d in found
        ):
            return image, [self._upright_landmarks(image.pixels, d) for d in found]
        full = load_image(data, self.limits)
        factor = float(image.reduction)
        return full, [self._upright_landmarks(full.pixels, geometry.rescaled(d, factor)) for d in found]

    # -- detection ---------------------------------------------------------------------------------------

    def with_detector(
        self,
        detector_factory: Callable[[], Detector],
        settings: DetectionSettings,
        *,
        tiles: Callable[[], Detector] | None = None,
    ) -> FaceEngine:
        """This engine's recognizer and calibration with another detector or detection settings (redaction
        looks harder for faces than identification does). ``tiles``: another detector for the
        ``small_faces`` tiles (redaction's extra whole-picture passes would only add false faces there)."""
        return FaceEngine(
            detector_factory, self._embedder_factory, settings=settings, calibration=self.calibration,
            limits=self.limits, tile_detector_factory=tiles,
        )  # fmt: skip

    def find_faces(
        self, image: Image, max_faces: int = MAX_FACES_LIMIT, *, upright: bool = True, scale: float = 1.0
    ) -> list[Detection]:
        """Detections in full-resolution pixels, largest first, at most ``max_faces``.

        ``scale`` (0-1]: the whole-picture pass sees the picture at most this size (video analysis detects
        at half size while every tracked face is large); the boxes come back in the picture's pixels.

        ``upright=False`` leaves the landmarks of tilted faces as the detector gave them: a caller that will
        describe only a few of the faces (video analysis) refines those with ``upright_landmarks`` and saves
        the two extra detector passes on every other tilted face."""
        if not 1 <= max_faces <= MAX_FACES_LIMIT:
            raise InvalidParameterError(f"max_faces must be between 1 and {MAX_FACES_LIMIT}")
        found = self.find_all_faces(image, scale=scale)[:max_faces]
        if not upright:
            return found
        return [self._upright_landmarks(image.pixels, d) for d in found]

    def find_all_faces(self, image: Image, *, scale: float = 1.0) -> list[Detection]:
        """Every detection, largest first, with no cap on their number and the detector's own landmarks
        (for hiding faces: a crowd may hold far more than the 100 a search reports)."""
        settings = self.settings
        pixels = image.pixels
        height, width = pixels.shape[:2]
        if not 0.0 < scale <= 1.0:
            raise InvalidParameterError("a detection scale must be above 0 and at most 1")
        scale = min(scale, settings.max_side / max(width, height))
        view: npt.NDArray[np.uint8] = (
            pixels
            if scale == 1.0
            else np.asarray(cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8)
        )
        found = [geometry.rescaled(d, 1.0 / scale) for d in self._detector().detect(view)]
        if settings.small_faces:
            found = geometry.merge_detections(found + self._tiled(pixels))
        found = [d for d in found if d.score >= settings.min_confidence and d.w > 1 and d.h > 1]
        found.sort(key=lambda d: d.area, reverse=True)
        return found

    def upright_landmarks(self, image: Image, detection: Detection) -> Detection:
        """``detection`` with the landmarks ``find_faces`` gives by default (for ``upright=False`` ones)."""
        return self._upright_landmarks(image.pixels, detection)

    def _upright_landmarks(self, pixels: npt.NDArray[np.uint8], detection: Detection) -> Detection:
        """Re-locate the landmarks of a tilted face on a copy turned upright.

        YuNet's landmarks lean towards upright: on a face rotated 20° in the image the eye line reads about
        14°, which skews the reported roll and the aligned crop. For faces tilted more than
        ``ROLL_REFINE_DEGREES`` the region is rotated by the measured tilt and detected again, twice; the
        box is kept, the landmarks are replaced (``tests/test_engine.py`` checks roll on rotated photos).
        """
        landmarks = detection.landmarks
        angle = _eye_line_degrees(landmarks)
        if abs(angle) < ROLL_REFINE_DEGREES:
            return detection
        cx, cy = detection.x + detection.w / 2.0, detection.y + detection.h / 2.0
        side = 2.2 * max(detection.w, detection.h)
        scale = min(1.0, REFINE_PATCH / side)
        out = max(32, round(side * scale))
        detector = self._detector()
        for _ in range(2):
            matrix = cv2.getRotationMatrix2D((cx, cy), angle, scale)
            matrix[:, 2] += np.array([out / 2.0 - cx, out / 2.0 - cy])
            patch = np.asarray(
                cv2.warpAffine(pixels, matrix, (out, out), borderMode=cv2.BORDER_REPLICATE), np.uint8
            )
            candidates = [d for d in detector.detect(patch) if d.score >= self.settings.min_confidence]
            if not candidates:
                break
            best = min(candidates, key=lambda d: (d.x + d.w / 2 - out / 2) ** 2 + (d.y + d.h / 2 - out / 2) ** 2)
            if max(abs(best.x + best.w / 2 - out / 2), abs(best.y + best.h / 2 - out / 2)) > out / 8:
                break  # not this face (a neighbour in a crowd): keep what we have
            inverse = cv2.invertAffineTransform(matrix)
            landmarks = (best.landmarks @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)
            angle = _eye_line_degrees(landmarks)
        return Detection(
            x=detection.x, y=detection.y, w=detection.w, h=detection.h, score=detection.score, landmarks=landmarks
        )

    def _tiled(self, pixels: npt.NDArray[np.uint8]) -> list[Detection]:
        settings = self.settings
        if settings.upscale > 1.0:
            pixels = np.asarray(
                cv2.resize(pixels, None, fx=settings.upscale, fy=settings.upscale, interpolation=cv2.INTER_LINEAR),
                dtype=np.uint8,
            )
        height, width = pixels.shape[:2]
        step = int(settings.tile * 0.75)  # 25% overlap so a face on a seam is whole in some tile
        detector = self._tile_detector()
        results: list[Detection] = []
        for top in _starts(height, settings.tile, step):
            for left in _starts(width, settings.tile, step):
                tile = pixels[top : top + settings.tile, left : left + settings.tile]
                # A box touching a tile edge inside the image is a face cut by the seam: it is whole in the
                # neighbouring tile (the overlap is wider than the faces tiling is for) or in the full view.
                inner = (left > 0, top > 0, left + tile.shape[1] < width, top + tile.shape[0] < height)
                for detection in detector.detect(np.ascontiguousarray(tile)):
                    if _cut_by_seam(detection, tile.shape[1], tile.shape[0], inner):
                        continue
                    # Tile offsets are in upscaled pixels: shift first, then scale back to the original.
                    factor = 1.0 / settings.upscale
                    results.append(geometry.rescaled(detection, factor, None, left * factor, top * factor))
        return results

    # -- analysis ----------------------------------------------------------------------------------------

    def analyze(
        self,
        source: ImageSource | Image,
        *,
        max_faces: int = MAX_FACES_LIMIT,
        embed: bool = True,
        keep_crops: bool = False,
    ) -> tuple[Image, list[AnalyzedFace]]:
        """Every face in ``source`` with details and (when ``embed``) its identity vector, largest first.

        The image is decoded at full size, so its pixels and the faces' detections share coordinates (callers
        crop it). Callers that need only the faces use ``locate`` and ``describe``: a reduced decode where the
        faces allow it (the gallery's searches, IndexFaces and DetectFaces do).
        """
        image = source if isinstance(source, Image) else self.load(source)
        detections = self.find_faces(image, max_faces)
        return image, self.describe(image, detections, embed=embed, keep_crops=keep_crops)

    def describe(
        self, image: Image, detections: Sequence[Detection], *, embed: bool = True, keep_crops: bool = False
    ) -> list[AnalyzedFace]:
        """Details (and vectors) for detections already found in ``image`` (in its pixels). The faces'
        ``detection`` is in pixels of the full-size image, also when ``image`` is a reduced decode."""
        if not detections:
            return []
        factor = float(image.reduction)
        size = self._embedder().input_size
        crops = np.stack([geometry.align_face(image.pixels, d.landmarks, size) for d in detections])
        vectors = self._embedder().embed(crops) if embed else None
        faces = []
        for index, detection in enumerate(detections):
            faces.append(
                AnalyzedFace(
                    detail=_detail(image, detection, crops[index]),
                    detection=geometry.rescaled(detection, factor),
                    vector=None if vectors is None else vectors[index],
                    crop=crops[index] if keep_crops else None,
                )
            )
        return faces

    def embed_crops(self, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Identity vectors for aligned crops (N, S, S, 3) BGR, e.g. mirrored copies for test-time averaging."""
        return self._embedder().embed(crops)

    def largest_face(self, source: ImageSource | Image) -> tuple[Image, AnalyzedFace]:
        """The largest face with its vector, or ``NoFaceError``."""
        image, faces = self.analyze(source, max_faces=1)
        if not faces:
            raise NoFaceError("there are no faces in the image")
        return image, faces[0]

    # -- comparison --------------------------------------------------------------------------------------

    def similarity(self, a: Vector, b: Vector, quality: float | None = None) -> float:
        """Calibrated similarity (0–100) between two vectors of this engine's model, on the curve of the pair's
        quality (``calibration.pair_quality``; None: unknown, the most conservative curve)."""
        if a.shape != b.shape or a.shape != (self._info.dim,):
            raise ModelMismatchError(f"vectors must both be {self._info.dim}-d {self._info.key} vectors")
        return self.calibration.similarity(float(np.dot(a, b)), quality)

    def compare(
        self, source: ImageSource | Image, target: ImageSource | Image, threshold: float = 80.0
    ) -> Comparison:
        """CompareFaces: the source's largest face against up to 100 faces in the target."""
        if not 0.0 <= threshold <= 100.0:
            raise InvalidParameterError("threshold must be between 0 and 100")
        _, source_face = self.largest_face(source)
        _, target_faces = self.analyze(target)
        assert source_face.vector is not None
        matches: list[tuple[AnalyzedFace, float]] = []
        unmatched: list[tuple[AnalyzedFace, float]] = []
        for face in target_faces:
            assert face.vector is not None
            pair = pair_quality(source_face.quality_score, face.quality_score)
            score = self.similarity(source_face.vector, face.vector, pair)
            (matches if score >= threshold else unmatched).append((face, score))
        matches.sort(key=lambda pair: pair[1], reverse=True)
        return Comparison(source=source_face, matches=tuple(matches), unmatched=tuple(unmatched))


def _cut_by_seam(detection: Detection, width: int, height: int, inner: tuple[bool, bool, bool, bool]) -> bool:
    # YuNet's box for a cut face ends a few pixels short of the cut; 2.5% of the tile (16 px of 640) still
    # leaves every face smaller than the overlap minus twice this whole and clear of the edges of some tile.
    margin = max(4.0, 0.025 * max(width, height))
    return (
        (inner[0] and detection.x <= margin)
        or (inner[1] and detection.y <= margin)
        or (inner[2] and detection.x + detection.w >= width - margin)
        or (inner[3] and detection.y + detection.h >= height - margin)
    )


def _eye_line_degrees(landmarks: npt.NDArray[np.float32]) -> float:
    dx, dy = landmarks[1] - landmarks[0]
    return float(np.degrees(np.arctan2(float(dy), float(dx))))


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _detail(image: Image, detection: Detection, crop: npt.NDArray[np.uint8]) -> FaceDetail:
    width, height = image.width, image.height
    x0, y0 = max(0.0, detection.x), max(0.0, detection.y)
    x1, y1 = min(float(width), detection.x + detection.w), min(float(height), detection.y + detection.h)
    box = BoundingBox.from_pixels(x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0), width, height)
    landmarks = tuple(
        Landmark(type=name, x=float(point[0]) / width, y=float(point[1]) / height)
        for name, point in zip(LANDMARK_NAMES, detection.landmarks, strict=True)
    )
    return FaceDetail(
        bounding_box=box,
        confidence=round(min(1.0, max(0.0, detection.score)) * 100.0, 4),
        landmarks=landmarks,
        pose=quality.estimate_pose(detection.landmarks, width, height),
        quality=quality.estimate_quality(image.pixels, detection, crop),
    )
