"""Video sources: files, live streams, webcams and image sequences, decoded with FFmpeg through PyAV.

One class, ``VideoSource``, reads any of them; ``frames()`` yields decoded frames. What differs is decided
once from the URL (``classify``):

- files (mp4, mkv, avi, mov, …) and image sequences (``frames/%05d.jpg`` or a glob) end at their end;
- live sources (RTSP over TCP or UDP, HTTP(S) and HLS, UDP/TCP MPEG-TS, RTMP, SRT, ``/dev/video*``) never end
  on their own: when one drops, stalls or ends, ``frames()`` reports it and reconnects with exponential
  backoff until it is stopped (or ``max_attempts`` runs out).

A stalled source never hangs the caller: PyAV's interrupt callback (``timeout=(open, read)``) aborts a blocked
open or read after ``open_timeout`` / ``stall_timeout`` seconds, and a source that keeps sending packets but
yields no picture for ``stall_timeout`` is treated as stalled too. PyAV's errors are translated into
``SourceOpenError`` / ``StreamStalledError`` / ``StreamError`` here and nowhere else.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import cv2
import numpy as np
import numpy.typing as npt

from facetrace.errors import InvalidParameterError, SourceOpenError, StreamError, StreamStalledError
from facetrace.video.events import StreamState

__all__ = [
    "FILE_EXTENSIONS",
    "Frame",
    "SourceCounters",
    "SourceKind",
    "SourceSettings",
    "VideoMetadata",
    "VideoSource",
    "classify",
    "redact",
]

log = logging.getLogger(__name__)

FILE_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".ts", ".mts", ".mpg", ".mpeg", ".flv", ".wmv")
_LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "rtp", "tcp", "srt")
_GLOB = re.compile(r"[*?\[]")
_PRINTF = re.compile(r"%0?\d*d")


class SourceKind(enum.StrEnum):
    FILE = "FILE"
    STREAM = "STREAM"
    DEVICE = "DEVICE"
    IMAGES = "IMAGES"


def classify(url: str) -> SourceKind:
    """What kind of source ``url`` names (a path, a URL, a device or an image pattern)."""
    if url.startswith("/dev/video") or url.startswith("video="):
        return SourceKind.DEVICE
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in _LIVE_SCHEMES:
        return SourceKind.STREAM
    if scheme in ("http", "https"):
        path = urlsplit(url).path.lower()
        return SourceKind.FILE if path.endswith(FILE_EXTENSIONS) else SourceKind.STREAM
    if scheme not in ("", "file"):
        return SourceKind.STREAM
    if _PRINTF.search(url) or _GLOB.search(Path(url).name):
        return SourceKind.IMAGES
    return SourceKind.FILE


_USERINFO = re.compile(r"(?<=://)[^/?#\s]*@")


def redact(url: str) -> str:
    """``url`` (or any text holding URLs) without user and password, for answers, logs, events and errors.

    The user part runs to the *last* ``@`` before the path, as FFmpeg reads it, so ``rtsp://a@b:pw@host`` does
    not leak ``pw``."""
    return _USERINFO.sub("***@", url)


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """How to open and keep reading one source.

    ``live``: None decides from the URL (``classify``); live sources reconnect, files end.
    ``realtime``: pace a file to its frame rate, as if it came from a camera (``loop`` restarts it at its end).
    ``decoder_threads``: FFmpeg decoding threads for this source (1 suits many streams on few cores).
    ``max_side``: scale pictures whose longer side is larger down to this many pixels as they are converted
    to BGR (FFmpeg's swscale, area averaging, in the same pass as the colour conversion), so a 1080p camera is
    analysed at the detector's size without converting and then shrinking 2 million pixels per frame; 0
    keeps the decoded size. Faces lose detail with the pixels: keep 0 where small faces must be named.
    """

    url: str
    live: bool | None = None
    format: str | None = None
    rtsp_transport: str = "tcp"
    open_timeout: float = 10.0
    stall_timeout: float = 5.0
    reconnect: bool = True
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_attempts: int = 0  # consecutive failed connections before giving up; 0 = never give up
    realtime: bool = False
    loop: bool = False
    decoder_threads: int = 1
    options: tuple[tuple[str, str], ...] = ()
    max_side: int = 0

    def __post_init__(self) -> None:
        if not self.url or len(self.url) > 4096:
            raise InvalidParameterError("a video source needs a URL or path of at most 4096 characters")
        if self.rtsp_transport not in ("tcp", "udp"):
            raise InvalidParameterError("rtsp_transport must be tcp or udp")
        if not 0.1 <= self.open_timeout <= 600 or not 0.1 <= self.stall_timeout <= 600:
            raise InvalidParameterError("open and stall timeouts must be between 0.1 and 600 seconds")
        if not 0.0 < self.backoff_initial <= self.backoff_max <= 3600:
            raise InvalidParameterError("backoff must satisfy 0 < initial <= max <= 3600 seconds")
        if self.max_attempts < 0 or not 0 <= self.decoder_threads <= 16:
            raise InvalidParameterError("max_attempts must be >= 0 and decoder_threads 0-16")
        if self.max_side != 0 and not 32 <= self.max_side <= 16384:
            raise InvalidParameterError("max_side must be 0 (the decoded size) or 32-16384 pixels")

    @property
    def kind(self) -> SourceKind:
        return classify(self.url)

    @property
    def is_live(self) -> bool:
        if self.live is not None:
            return self.live
        return self.kind in (SourceKind.STREAM, SourceKind.DEVICE)


@dataclass(frozen=True, slots=True)
class VideoMetadata:
    """Rekognition's VideoMetadata for an opened source."""

    codec: str
    format: str
    frame_rate: float
    width: int
    height: int
    duration_ms: int | None = None
    color_range: str = "LIMITED"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "Codec": self.codec,
            "Format": self.format,
            "FrameRate": round(self.frame_rate, 3),
            "FrameHeight": self.height,
            "FrameWidth": self.width,
            "ColorRange": self.color_range,
        }
        if self.duration_ms is not None:
            data["DurationMillis"] = self.duration_ms
        return data


_PLANAR_YUV = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21"})
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG
_LIMITED_TO_FULL = np.clip((np.arange(256) - 16) * 255.0 / 219.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass(slots=True, eq=False)
class Frame:
    """One decoded picture. ``bgr()`` converts (once) to a (H, W, 3) uint8 array; skipped frames never pay it."""

    index: int  # frames decoded since the source started, across reconnections
    stream_time: float  # seconds from the start of the source
    arrived: float  # unix seconds when it was decoded (the "capture" time latency is measured from)
    width: int
    height: int
    _picture: Any = field(repr=False)
    _pixels: npt.NDArray[np.uint8] | None = field(default=None, repr=False)

    def bgr(self) -> npt.NDArray[np.uint8]:
        if self._pixels is None:
            picture = self._picture
            if (picture.width, picture.height) == (self.width, self.height):
                array = picture.to_ndarray(format="bgr24")
            else:  # scaled to the analysis size in the conversion itself (SourceSettings.max_side)
                array = picture.reformat(
                    width=self.width, height=self.height, format="bgr24", interpolation="AREA"
                ).to_ndarray()
            self._pixels = np.ascontiguousarray(array, dtype=np.uint8)
            self._picture = None
        return self._pixels

    def gray(self) -> npt.NDArray[np.uint8]:
        """The picture in grey levels (0–255), (H, W). A planar YUV picture not yet converted gives its luma
        plane, stretched to full range when it is limited (16–235), without converting the colour: the
        motion gate and the scene-cut detector look at nothing else, so a frame whose detection is skipped
        never pays the BGR conversion (about 1.5 ms per 640×360 frame)."""
        picture = self._picture
        if (
            self._pixels is None
            and picture is not None
            and (picture.width, picture.height) == (self.width, self.height)
            and picture.format.name in _PLANAR_YUV
        ):
            plane = picture.planes[0]
            luma = np.frombuffer(plane, np.uint8).reshape(self.height, plane.line_size)[:, : self.width]
            full = picture.format.name.startswith("yuvj") or picture.color_range == _FULL_RANGE
            return luma if full else np.asarray(cv2.LUT(luma, _LIMITED_TO_FULL), dtype=np.uint8)
        return np.asarray(cv2.cvtColor(self.bgr(), cv2.COLOR_BGR2GRAY), dtype=np.uint8)

    @classmethod
    def from_array(cls, pixels: npt.NDArray[np.uint8], index: int, stream_time: float) -> Frame:
        """A frame from pixels already in memory (tests, callers with their own capture)."""
        height, width = pixels.shape[:2]
        return cls(index, stream_time, time.time(), width, height, None, np.ascontiguousarray(pixels))


@dataclass(slots=True)
class SourceCounters:
    """Counted by the reading thread; read by anyone (ints under the GIL)."""

    received: int = 0  # video packets read from the source
    decoded: int = 0  # pictures decoded
    corrupt: int = 0  # packets the decoder rejected
    connections: int = 0  # successful opens
    failures: int = 0  # failed opens, drops and stalls


StatusCallback = Callable[[StreamState, str, int], None]


class VideoSource:
    """Reads one source. ``frames()`` is a generator; set ``stop`` (or call ``close``) to end it from outside."""

    def __init__(
        self,
        settings: SourceSettings,
        *,
        stop: threading.Event | None = None,
        on_status: StatusCallback | None = None,
    ) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.counters = SourceCounters()
        self.metadata: VideoMetadata | None = None
        self._on_status = on_status
        self._closed = threading.Event()

    @property
    def is_live(self) -> bool:
        return self.settings.is_live

    def close(self) -> None:
        self._closed.set()

    def _stopped(self) -> bool:
        return self.stop.is_set() or self._closed.is_set()

    def _status(self, state: StreamState, message: str, attempt: int) -> None:
        message = redact(message)  # whatever FFmpeg put in it, the status event and log never hold credentials
        log.info("source %s: %s %s", redact(self.settings.url), state.value, message)
        if self._on_status is not None:
            self._on_status(state, message, attempt)

    # -- opening -----------------------------------------------------------------------------------------

    def open_container(self) -> Any:
        """Open the source once; ``SourceOpenError`` when it cannot be opened or has no video."""
        settings, kind = self.settings, self.settings.kind
        url, fmt = settings.url, settings.format
        options = dict(settings.options)
        if kind is SourceKind.FILE and "://" not in url and not Path(url).is_file():
            raise SourceOpenError(f"{redact(url)}: no such video file")
        if url.startswith(("rtsp://", "rtsps://")):
            options.setdefault("rtsp_transport", settings.rtsp_transport)
        elif url.startswith("udp://"):
            fmt = fmt or "mpegts"
            options.setdefault("fifo_size", "1000000")
            options.setdefault("overrun_nonfatal", "1")
        elif kind is SourceKind.DEVICE and url.startswith("/dev/"):
            fmt = fmt or "v4l2"
        elif kind is SourceKind.IMAGES:
            fmt = fmt or "image2"
            if _GLOB.search(Path(url).name):
                options.setdefault("pattern_type", "glob")
        if self.is_live:
            # Probe briefly: FFmpeg's default reads 5 s of a live stream before the first frame comes out.
            options.setdefault("analyzeduration", "1000000")
            options.setdefault("probesize", "1000000")
        timeout = (
            None
            if kind is SourceKind.FILE and "://" not in url
            else (settings.open_timeout, settings.stall_timeout)
        )
        try:
            container = av.open(url, mode="r", format=fmt, options=options, timeout=timeout)
        except av.error.ExitError:
            raise SourceOpenError(
                f"{redact(url)}: no data within the {settings.open_timeout:g} s open timeout"
            ) from None
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise SourceOpenError(f"{redact(url)}: cannot open ({_reason(exc)})") from None
        if not container.streams.video:
            container.close()
            raise SourceOpenError(f"{redact(url)}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_count = settings.decoder_threads
        stream.thread_type = "SLICE" if self.is_live else "AUTO"
        self.metadata = _metadata(container, stream)
        return container

    # -- reading -----------------------------------------------------------------------------------------

    def frames(self) -> Iterator[Frame]:
        """Every decoded frame until the source ends (files) or ``stop`` is set (live sources)."""
        settings, live = self.settings, self.is_live
        started = time.time()
        attempt = 0
        offset = 0.0  # stream seconds before this connection / pass
        index = 0
        while not self._stopped():
            try:
                container = self.open_container()
            except SourceOpenError as exc:
                self.counters.failures += 1
                if not (live and settings.reconnect):
                    self._status(StreamState.FAILED, exc.message, attempt)
                    raise
                attempt += 1
                self._status(StreamState.DISCONNECTED, exc.message, attempt)
                if not self._backoff(attempt):
                    return
                continue
            self.counters.connections += 1
            self._status(StreamState.CONNECTED, "", attempt)
            if live and attempt:
                offset = max(offset, time.time() - started)
            produced = 0
            last = offset
            try:
                for frame in self._decode(container, offset, index):
                    produced += 1
                    index = frame.index + 1
                    last = frame.stream_time
                    if produced == 1:
                        attempt = 0
                    yield frame
                if self._stopped():
                    return
                if not live:
                    if settings.loop and produced:
                        offset = last + 1.0 / max(1.0, self.metadata.frame_rate if self.metadata else 30.0)
                        continue
                    self._status(StreamState.ENDED, "end of the video", attempt)
                    return
                message = "the stream ended"
                state = StreamState.DISCONNECTED
            except StreamStalledError as exc:
                if not live:
                    self._status(StreamState.FAILED, exc.message, attempt)
                    raise
                message, state = exc.message, StreamState.STALLED
            except StreamError as exc:
                if not live:
                    self._status(StreamState.FAILED, exc.message, attempt)
                    raise
                message, state = exc.message, StreamState.DISCONNECTED
            finally:
                container.close()
            self.counters.failures += 1
            offset = max(last, time.time() - started)
            if not settings.reconnect:
                self._status(StreamState.FAILED, message, attempt)
                raise StreamError(message)
            attempt += 1
            self._status(state, message, attempt)
            if not self._backoff(attempt):
                return

    def _backoff(self, attempt: int) -> bool:
        """Wait before reconnection ``attempt``; False when stopped or out of attempts."""
        settings = self.settings
        if settings.max_attempts and attempt > settings.max_attempts:
            message = f"gave up after {settings.max_attempts} failed attempts"
            self._status(StreamState.FAILED, message, attempt)
            raise StreamError(f"{redact(settings.url)}: {message}")
        delay = min(settings.backoff_max, settings.backoff_initial * 2 ** max(0, attempt - 1))
        deadline = time.monotonic() + delay
        while not self._stopped():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            self.stop.wait(min(remaining, 0.1))
        return False

    def _decode(self, container: Any, offset: float, index: int) -> Iterator[Frame]:
        settings, live, counters = self.settings, self.is_live, self.counters
        stream = container.streams.video[0]
        base: float | None = None
        fps = self.metadata.frame_rate if self.metadata and self.metadata.frame_rate > 0 else 30.0
        start_time = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        paced_from = time.monotonic()
        last_picture = time.monotonic()
        packets = container.demux(stream)
        while True:
            if self._stopped():
                return
            try:
                packet = next(packets)
                if packet.size:
                    counters.received += 1
                pictures = packet.decode()
            except StopIteration:
                return
            except av.error.ExitError:
                raise StreamStalledError(
                    f"{redact(settings.url)}: no data for {settings.stall_timeout:g} s (stalled)"
                ) from None
            except av.error.InvalidDataError:
                counters.corrupt += 1
                continue
            except (av.FFmpegError, OSError) as exc:
                raise StreamError(f"{redact(settings.url)}: read failed ({_reason(exc)})") from None
            now = time.monotonic()
            if not pictures:
                if live and now - last_picture > settings.stall_timeout:
                    raise StreamStalledError(
                        f"{redact(settings.url)}: no picture for {settings.stall_timeout:g} s (stalled)"
                    )
                continue
            last_picture = now
            for picture in pictures:
                counters.decoded += 1
                pts = picture.time
                if live:
                    if base is None:
                        base = pts if pts is not None else 0.0
                    elapsed = (pts - base) if pts is not None else (counters.decoded / fps)
                else:
                    elapsed = (pts - start_time) if pts is not None else (index / fps) - offset
                stream_time = offset + max(0.0, elapsed)
                if settings.realtime and not live:
                    wait = paced_from + (stream_time - offset) - time.monotonic()
                    if wait > 0 and self.stop.wait(wait):
                        return
                width, height = _scaled(picture.width, picture.height, settings.max_side)
                yield Frame(index, stream_time, time.time(), width, height, picture)
                index += 1


def _scaled(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size a ``width`` × ``height`` picture is analysed at: the longer side at most ``max_side`` (0: any),
    even dimensions, the aspect ratio kept."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _metadata(container: Any, stream: Any) -> VideoMetadata:
    ctx = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    duration_ms: int | None = None
    if container.duration:
        duration_ms = int(container.duration // 1000)
    elif stream.duration is not None and stream.time_base is not None:
        duration_ms = int(stream.duration * stream.time_base * 1000)
    color_range = "FULL" if int(getattr(ctx, "color_range", 0) or 0) == 2 else "LIMITED"
    return VideoMetadata(
        codec=ctx.name,
        format=container.format.long_name or container.format.name,
        frame_rate=float(rate) if rate else 0.0,
        width=int(ctx.width),
        height=int(ctx.height),
        duration_ms=duration_ms,
        color_range=color_range,
    )


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return redact(str(text))[:200]
