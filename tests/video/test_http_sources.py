"""HTTP and HLS sources, served from a stdlib HTTP server on loopback; failures end typed and bounded in time.

The server runs in a thread on a free port of 127.0.0.1 and is shut down by its fixture. It answers byte
ranges as real file servers do: FFmpeg seeks with them (PyAV writes the MP4 index after the pictures).
"""

from __future__ import annotations

import functools
import io
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import pytest

from facetrace.errors import InvalidParameterError, SourceOpenError, StreamError, StreamStalledError
from facetrace.gallery import Gallery
from facetrace.store import SQLiteStore
from facetrace.video.events import StreamState
from facetrace.video.jobs import JobStatus, VideoJobs
from facetrace.video.source import SourceKind, SourceSettings, VideoSource
from tests.video.conftest import FPS, SECONDS, SIZE, THRESHOLD

FRAMES = int(SECONDS * FPS)
QUICK: dict[str, Any] = {"open_timeout": 1.0, "stall_timeout": 1.0, "backoff_initial": 0.05, "backoff_max": 0.1}


class Server(ThreadingHTTPServer):
    ranges = True  # answer Range requests with 206 (False: always the whole file, as a naive server does)
    cut_at: int | None = None  # a response that covers this byte stops there (the connection then closes)
    stall_at_cut = False  # ... or holds the connection open, sending nothing, until ``release`` is set
    release: threading.Event


class Handler(SimpleHTTPRequestHandler):
    """Static files with single byte ranges; HTTP/1.0, so each response closes its connection."""

    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self) -> io.BytesIO | None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        data = path.read_bytes()
        start, end = 0, len(data) - 1
        spec = self.headers.get("Range", "")
        if self.server.ranges and spec.startswith("bytes=") and "," not in spec:
            first, _, last = spec[len("bytes=") :].partition("-")
            start = int(first) if first else max(0, len(data) - int(last))
            end = min(int(last), end) if first and last else end
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        if self.server.ranges:
            self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        cut = self.server.cut_at
        if cut is not None and start < cut < end:
            self.wfile.write(data[start:cut])
            self.wfile.flush()
            if self.server.stall_at_cut:
                self.server.release.wait(10)
            return None
        return io.BytesIO(data[start : end + 1])


@contextmanager
def serving(directory: Path, **behaviour: Any) -> Iterator[Server]:
    server = Server(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    server.release = threading.Event()
    for name, value in behaviour.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def url(server: Server, name: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"


@contextmanager
def raw_server(answer: bool) -> Iterator[int]:
    """A TCP server that reads each request and then closes the connection (``answer``) or never replies."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    done = threading.Event()

    def run() -> None:
        held: list[socket.socket] = []
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(1.0)
            with suppress(OSError):
                conn.recv(4096)
            if answer:
                conn.close()
            else:
                held.append(conn)
        for conn in held:
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        done.set()
        thread.join(5)
        listener.close()


def read(
    settings: SourceSettings, limit: int = 10 * FRAMES
) -> tuple[list[Any], list[tuple[StreamState, str, int]]]:
    """The frames (at most ``limit``) and status reports of a source; its error propagates."""
    statuses: list[tuple[StreamState, str, int]] = []
    source = VideoSource(
        settings, on_status=lambda state, message, attempt: statuses.append((state, message, attempt))
    )
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) >= limit:
            source.close()
    return frames, statuses


def outcome(settings: SourceSettings) -> tuple[BaseException | None, list[tuple[StreamState, str, int]], int]:
    """Read a source to its end in a thread that must finish in time: (error, statuses, frames decoded)."""
    statuses: list[tuple[StreamState, str, int]] = []
    source = VideoSource(
        settings, on_status=lambda state, message, attempt: statuses.append((state, message, attempt))
    )
    error: list[BaseException] = []

    def drain() -> None:
        try:
            for _ in source.frames():
                pass
        except BaseException as exc:  # the test checks what it was
            error.append(exc)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    reader.join(15)
    hung = reader.is_alive()
    source.close()
    assert not hung, "the source hung"
    return (error[0] if error else None), statuses, source.counters.decoded


@pytest.fixture(scope="module")
def site(scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the scene and an HLS VOD copy of it (packets copied, 1 s segments)."""
    folder = tmp_path_factory.mktemp("www")
    shutil.copy(scene, folder / "scene.mp4")
    options = {"hls_time": "1", "hls_playlist_type": "vod", "hls_segment_filename": str(folder / "segment%d.ts")}
    with (
        av.open(str(scene)) as source,
        av.open(str(folder / "index.m3u8"), "w", format="hls", options=options) as hls,
    ):
        video = source.streams.video[0]
        copy = hls.add_stream_from_template(video)
        for packet in source.demux(video):
            if packet.dts is None:  # the demuxer's final flush packet
                continue
            packet.stream = copy
            hls.mux(packet)
    return folder


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[Server]:
    with serving(site) as running:
        yield running


# -- plain HTTP ----------------------------------------------------------------------------------------------


def test_an_http_file_decodes_every_frame(server: Server) -> None:
    settings = SourceSettings(url(server, "scene.mp4"), open_timeout=5.0, stall_timeout=5.0)
    assert settings.kind is SourceKind.FILE
    assert not settings.is_live
    frames, statuses = read(settings)
    assert len(frames) == FRAMES
    assert [f.index for f in frames] == list(range(FRAMES))
    assert frames[0].stream_time == 0.0
    assert frames[-1].stream_time == pytest.approx((FRAMES - 1) / FPS, abs=1e-3)
    assert frames[0].bgr().shape == (SIZE[1], SIZE[0], 3)
    assert [s[0] for s in statuses] == [StreamState.CONNECTED, StreamState.ENDED]


def test_an_http_file_has_the_same_metadata_and_pictures_as_the_file(server: Server, scene: Path) -> None:
    local, remote = VideoSource(SourceSettings(str(scene))), VideoSource(SourceSettings(url(server, "scene.mp4")))
    pairs = list(zip(local.frames(), remote.frames(), strict=True))
    assert remote.metadata is not None
    assert local.metadata is not None
    assert (remote.metadata.width, remote.metadata.height) == SIZE
    assert remote.metadata.frame_rate == pytest.approx(FPS)
    assert remote.metadata.to_dict()["DurationMillis"] == pytest.approx(SECONDS * 1000, abs=150)
    assert remote.metadata == local.metadata
    for mine, theirs in pairs[:: FPS // 2]:
        assert mine.stream_time == theirs.stream_time
        assert (mine.bgr() == theirs.bgr()).all()


# -- HLS ---------------------------------------------------------------------------------------------------------


def test_the_hls_copy_is_a_vod_playlist_of_segments(site: Path) -> None:
    playlist = (site / "index.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist
    assert "#EXT-X-ENDLIST" in playlist
    assert len(list(site.glob("segment*.ts"))) >= 3


def test_hls_read_as_a_file_gives_every_frame(server: Server) -> None:
    frames, statuses = read(SourceSettings(url(server, "index.m3u8"), live=False, **QUICK))
    assert len(frames) == FRAMES
    assert frames[0].stream_time == 0.0  # MPEG-TS starts at 1.4 s; times count from the first picture
    assert frames[-1].stream_time == pytest.approx((FRAMES - 1) / FPS, abs=1e-3)
    assert (frames[0].width, frames[0].height) == SIZE
    assert [s[0] for s in statuses] == [StreamState.CONNECTED, StreamState.ENDED]


def test_hls_is_live_by_url_and_reconnects_at_the_end_of_the_playlist(server: Server) -> None:
    settings = SourceSettings(url(server, "index.m3u8"), **QUICK)
    assert settings.kind is SourceKind.STREAM
    assert settings.is_live
    statuses: list[tuple[StreamState, int]] = []
    source = VideoSource(settings, on_status=lambda state, message, attempt: statuses.append((state, attempt)))
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == FRAMES + FPS:  # into the second pass: a live source does not end
            source.close()
    assert len(frames) == FRAMES + FPS
    assert source.metadata is not None
    assert (source.metadata.width, source.metadata.height) == SIZE
    assert source.metadata.frame_rate == pytest.approx(FPS)
    assert source.metadata.format == "Apple HTTP Live Streaming"
    assert [f.index for f in frames] == list(range(len(frames)))
    times = [f.stream_time for f in frames]
    assert times == sorted(times)  # the clock keeps running across the reconnection
    assert statuses[:3] == [(StreamState.CONNECTED, 0), (StreamState.DISCONNECTED, 1), (StreamState.CONNECTED, 1)]
    assert source.counters.connections == 2


def test_a_live_hls_source_gives_up_when_its_server_goes_away(site: Path) -> None:
    statuses: list[StreamState] = []
    with serving(site) as running:
        settings = SourceSettings(url(running, "index.m3u8"), max_attempts=2, **QUICK)
        source = VideoSource(settings, on_status=lambda state, message, attempt: statuses.append(state))
        frames = source.frames()
        first = next(frames)
    began = time.monotonic()
    with pytest.raises(StreamError, match="gave up after 2 failed attempts"):
        for _ in frames:
            pass
    assert time.monotonic() - began < 5
    assert first.width == SIZE[0]
    assert statuses[0] is StreamState.CONNECTED
    assert statuses[-4:] == [StreamState.DISCONNECTED] * 3 + [StreamState.FAILED]


# -- face search over HTTP --------------------------------------------------------------------------------------


@pytest.fixture
def jobs(gallery: Gallery, tmp_path: Path) -> Iterator[VideoJobs]:
    manager = VideoJobs(gallery, repository=SQLiteStore(tmp_path / "facetrace.db").records.jobs)
    yield manager
    manager.close(wait=True)


def _people(jobs: VideoJobs, video: str | Path) -> list[tuple[int, str, int]]:
    job = jobs.wait(jobs.start_face_search(video, "people", threshold=THRESHOLD), timeout=60)
    assert job.status is JobStatus.SUCCEEDED, job.message
    return [
        (item["Timestamp"], item["FaceMatches"][0]["Face"]["ExternalImageId"], item["Person"]["Index"])
        for item in jobs.get_face_search(job.job_id).items
    ]


def test_a_face_search_over_http_finds_the_same_people_as_over_the_file(
    jobs: VideoJobs, server: Server, scene: Path
) -> None:
    remote = _people(jobs, url(server, "scene.mp4"))
    assert {name for _, name, _ in remote} == {"obama", "biden"}
    assert remote == _people(jobs, scene)
    # An HLS playlist is live for a stream worker, but a job reads it as recorded footage, to its end.
    assert {name for _, name, _ in _people(jobs, url(server, "index.m3u8"))} == {"obama", "biden"}
    with pytest.raises(InvalidParameterError, match="live"):  # a truly live source is not stored video
        jobs.start_face_search("udp://127.0.0.1:9/", "people", threshold=THRESHOLD)


# -- failures: typed, reported, bounded ---------------------------------------------------------------------------


def test_a_missing_http_file_is_a_source_open_error(server: Server) -> None:
    port = server.server_address[1]
    error, statuses, decoded = outcome(SourceSettings(f"http://viewer:s3cret@127.0.0.1:{port}/gone.mp4", **QUICK))
    assert isinstance(error, SourceOpenError)
    assert "404" in error.message
    assert "s3cret" not in error.message
    assert [s[0] for s in statuses] == [StreamState.FAILED]
    assert all("s3cret" not in s[1] for s in statuses)
    assert decoded == 0


def test_a_missing_hls_playlist_is_retried_then_given_up(server: Server) -> None:
    error, statuses, _ = outcome(SourceSettings(url(server, "gone.m3u8"), max_attempts=2, **QUICK))
    assert isinstance(error, StreamError)
    assert [(s[0], s[2]) for s in statuses] == [
        (StreamState.DISCONNECTED, 1),
        (StreamState.DISCONNECTED, 2),
        (StreamState.DISCONNECTED, 3),
        (StreamState.FAILED, 3),
    ]
    assert "404" in statuses[0][1]
    error, statuses, _ = outcome(SourceSettings(url(server, "gone.m3u8"), reconnect=False, **QUICK))
    assert isinstance(error, SourceOpenError)
    assert [s[0] for s in statuses] == [StreamState.FAILED]


@pytest.mark.parametrize("name", ["scene.mp4", "live/index.m3u8"])
def test_a_server_that_closes_the_connection(name: str) -> None:
    with raw_server(answer=True) as port:
        error, statuses, _ = outcome(SourceSettings(f"http://127.0.0.1:{port}/{name}", max_attempts=1, **QUICK))
    assert isinstance(error, SourceOpenError if name.endswith(".mp4") else StreamError)
    assert statuses[-1][0] is StreamState.FAILED
    if name.endswith(".m3u8"):
        assert [s[0] for s in statuses] == [StreamState.DISCONNECTED] * 2 + [StreamState.FAILED]


def test_a_server_that_never_answers_times_out() -> None:
    with raw_server(answer=False) as port:
        began = time.monotonic()
        error, statuses, _ = outcome(SourceSettings(f"http://127.0.0.1:{port}/scene.mp4", **QUICK))
        elapsed = time.monotonic() - began
    assert isinstance(error, SourceOpenError)
    assert "open timeout" in error.message
    assert elapsed < 4
    assert [s[0] for s in statuses] == [StreamState.FAILED]


@pytest.mark.parametrize("stall", [False, True])
def test_a_file_cut_off_mid_download_fails_typed(site: Path, stall: bool) -> None:
    cut = (site / "scene.mp4").stat().st_size // 2
    with serving(site, cut_at=cut, stall_at_cut=stall) as running:
        began = time.monotonic()
        error, statuses, decoded = outcome(SourceSettings(url(running, "scene.mp4"), **QUICK))
        elapsed = time.monotonic() - began
    assert isinstance(error, StreamStalledError if stall else StreamError)
    assert type(error) is (StreamStalledError if stall else StreamError)
    assert decoded < FRAMES
    assert elapsed < 4
    assert [s[0] for s in statuses] == [StreamState.CONNECTED, StreamState.FAILED]


def test_a_server_without_byte_ranges_fails_typed(site: Path) -> None:
    """PyAV writes the MP4 index last; without ranges FFmpeg cannot seek back to the pictures."""
    with serving(site, ranges=False) as running:
        error, statuses, decoded = outcome(SourceSettings(url(running, "scene.mp4"), **QUICK))
    assert isinstance(error, StreamError)
    assert decoded == 0
    assert [s[0] for s in statuses] == [StreamState.CONNECTED, StreamState.FAILED]
