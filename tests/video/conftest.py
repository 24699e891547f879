"""Test videos made from the registry photos, so every identity, track and time span is known.

``scene`` is a 4-second 640×360 clip: Obama (obama.jpg) crosses from the left during 0–2.6 s, Biden
(biden.jpg) from the right during 1.4–4.0 s, and a stranger (a face from t1.jpg, in no collection) stands
still during 0.5–3.5 s. The collection ``people`` holds *other* photos where there is one (obama2.jpg), so
identification is tested across photos, not against the pasted pixels.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.store import MemoryStore

SIZE = (640, 360)
FPS = 15
SECONDS = 4.0
THRESHOLD = 90.0  # the collection holds other photos of Obama than the one in the video


@dataclass(frozen=True)
class Actor:
    name: str  # the ExternalImageId expected for this face ("" for a stranger)
    sprite: npt.NDArray[np.uint8]
    start: float
    end: float
    origin: tuple[float, float]
    destination: tuple[float, float]

    def position(self, t: float) -> tuple[int, int] | None:
        if not self.start <= t < self.end:
            return None
        k = (t - self.start) / (self.end - self.start)
        x = self.origin[0] + k * (self.destination[0] - self.origin[0])
        y = self.origin[1] + k * (self.destination[1] - self.origin[1])
        return int(x), int(y)


def sprite(engine: FaceEngine, path: Path, face_px: int, index: int = 0) -> npt.NDArray[np.uint8]:
    """The ``index``-th largest face of a photo with a margin, scaled so the face is ``face_px`` wide."""
    image, faces = engine.analyze(path, embed=False)
    det = faces[index].detection
    scale = face_px / det.w
    margin_x, margin_y = 0.35 * det.w, 0.35 * det.h
    x0, y0 = int(max(0, det.x - margin_x)), int(max(0, det.y - margin_y))
    x1 = int(min(image.width, det.x + det.w + margin_x))
    y1 = int(min(image.height, det.y + det.h + margin_y))
    crop = image.pixels[y0:y1, x0:x1]
    return np.ascontiguousarray(cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))


def background() -> npt.NDArray[np.uint8]:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 255, (SIZE[1] // 8, SIZE[0] // 8, 3), dtype=np.uint8)
    base = cv2.resize(noise, SIZE, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray((base * 0.35 + 60).astype(np.uint8))


def render(t: float, actors: Sequence[Actor], canvas: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    frame = canvas.copy()
    for actor in actors:
        where = actor.position(t)
        if where is None:
            continue
        x, y = where
        h, w = actor.sprite.shape[:2]
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(SIZE[0], x + w), min(SIZE[1], y + h)
        if x1 > x0 and y1 > y0:
            frame[y0:y1, x0:x1] = actor.sprite[y0 - y : y1 - y, x0 - x : x1 - x]
    return frame


def codec() -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def add_stream(container: av.container.OutputContainer, fps: int) -> av.video.stream.VideoStream:
    stream = container.add_stream(codec(), rate=fps)
    stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
    if codec() == "libx264":
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(fps)}
    else:
        stream.bit_rate = 2_000_000
        stream.gop_size = fps
    return stream


def write_video(path: Path, actors: Sequence[Actor], seconds: float = SECONDS, fps: int = FPS) -> Path:
    canvas = background()
    with av.open(str(path), mode="w") as container:
        stream = add_stream(container, fps)
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(render(i / fps, actors, canvas), format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class UdpSender:
    """Streams a scene as MPEG-TS over UDP to 127.0.0.1 in real time, in a thread, for a bounded time."""

    def __init__(self, port: int, actors: Sequence[Actor], *, seconds: float, loop: float = SECONDS) -> None:
        self.port, self.actors, self.seconds, self.loop = port, actors, seconds, loop
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> UdpSender:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def wait(self) -> None:
        self._thread.join(self.seconds + 10)

    def _run(self) -> None:
        canvas = background()
        url = f"udp://127.0.0.1:{self.port}?pkt_size=1316"
        with av.open(url, mode="w", format="mpegts") as container:
            stream = add_stream(container, FPS)
            began = time.perf_counter()
            for i in range(int(self.seconds * FPS)):
                if self._stop.is_set():
                    break
                t = (i / FPS) % self.loop
                frame = av.VideoFrame.from_ndarray(render(t, self.actors, canvas), format="bgr24")
                frame.pts = i
                for packet in stream.encode(frame):
                    container.mux(packet)
                self.sent += 1
                delay = began + (i + 1) / FPS - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def actors(engine: FaceEngine, photos: dict[str, Path]) -> list[Actor]:
    return [
        Actor("obama", sprite(engine, photos["obama.jpg"], 80), 0.0, 2.6, (40, 20), (300, 30)),
        Actor("biden", sprite(engine, photos["biden.jpg"], 80), 1.4, 4.0, (500, 40), (360, 30)),
        Actor("", sprite(engine, photos["t1.jpg"], 60), 0.5, 3.5, (20, 215), (30, 215)),
    ]


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory, actors: list[Actor]) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "scene.mp4", actors)


@pytest.fixture(scope="session")
def gallery(engine: FaceEngine, photos: dict[str, Path]) -> Gallery:
    gallery = Gallery(engine, MemoryStore())
    gallery.create_collection("people")
    gallery.index_faces("people", photos["obama2.jpg"], external_image_id="obama", max_faces=1)
    gallery.index_faces("people", photos["biden.jpg"], external_image_id="biden", max_faces=1)
    return gallery
