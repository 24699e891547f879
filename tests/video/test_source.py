"""Decoding files and image sequences; telling sources apart; keeping secrets out of messages."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from facetrace.errors import InvalidParameterError, SourceOpenError
from facetrace.video.events import StreamState
from facetrace.video.source import SourceKind, SourceSettings, VideoSource, classify, redact
from tests.video.conftest import FPS, SECONDS, SIZE, Actor, background, render


@pytest.mark.parametrize(
    ("url", "kind", "live"),
    [
        ("clip.mp4", SourceKind.FILE, False),
        ("/data/cam/2024-05-01.mkv", SourceKind.FILE, False),
        ("frames/%05d.jpg", SourceKind.IMAGES, False),
        ("frames/*.png", SourceKind.IMAGES, False),
        ("rtsp://user:pw@10.0.0.5:554/stream1", SourceKind.STREAM, True),
        ("udp://0.0.0.0:5000", SourceKind.STREAM, True),
        ("https://cams.example.com/live/index.m3u8", SourceKind.STREAM, True),
        ("https://example.com/footage.mp4", SourceKind.FILE, False),
        ("/dev/video0", SourceKind.DEVICE, True),
    ],
)
def test_classify(url: str, kind: SourceKind, live: bool) -> None:
    assert classify(url) is kind
    assert SourceSettings(url).is_live is live


def test_redact_hides_credentials() -> None:
    assert redact("rtsp://admin:hunter2@10.0.0.5/s") == "rtsp://***@10.0.0.5/s"
    assert redact("udp://0.0.0.0:5000") == "udp://0.0.0.0:5000"


def test_settings_are_validated() -> None:
    with pytest.raises(InvalidParameterError):
        SourceSettings("x.mp4", rtsp_transport="sctp")
    with pytest.raises(InvalidParameterError):
        SourceSettings("x.mp4", stall_timeout=0)
    with pytest.raises(InvalidParameterError):
        SourceSettings("")


def test_a_file_decodes_every_frame_with_metadata(scene: Path) -> None:
    states: list[StreamState] = []
    source = VideoSource(
        SourceSettings(str(scene)), on_status=lambda state, message, attempt: states.append(state)
    )
    frames = list(source.frames())
    assert len(frames) == int(SECONDS * FPS)
    assert [f.index for f in frames] == list(range(len(frames)))
    assert frames[-1].stream_time == pytest.approx((len(frames) - 1) / FPS, abs=1e-3)
    assert frames[0].bgr().shape == (SIZE[1], SIZE[0], 3)
    meta = source.metadata
    assert meta is not None
    assert (meta.width, meta.height) == SIZE
    assert meta.frame_rate == pytest.approx(FPS)
    assert meta.codec in ("h264", "mpeg4")
    assert meta.to_dict()["DurationMillis"] == pytest.approx(SECONDS * 1000, abs=150)
    assert states == [StreamState.CONNECTED, StreamState.ENDED]
    assert source.counters.decoded == len(frames)


def test_a_looping_file_continues_its_clock(scene: Path) -> None:
    source = VideoSource(SourceSettings(str(scene), loop=True))
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == int(SECONDS * FPS) + 5:
            source.close()
    times = [f.stream_time for f in frames]
    assert times == sorted(times)
    assert times[-1] > SECONDS


def test_an_image_sequence(tmp_path: Path, actors: list[Actor]) -> None:
    canvas = background()
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"frame_{i:03d}.jpg"), render(i / FPS, actors, canvas))
    for pattern in ("frame_%03d.jpg", "frame_*.jpg"):
        frames = list(VideoSource(SourceSettings(str(tmp_path / pattern))).frames())
        assert len(frames) == 6
        assert frames[0].bgr().shape == (SIZE[1], SIZE[0], 3)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(SourceOpenError, match="no such video file"):
        list(VideoSource(SourceSettings(str(tmp_path / "missing.mp4"))).frames())
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SourceOpenError):
        list(VideoSource(SourceSettings(str(junk))).frames())
    with pytest.raises(SourceOpenError) as caught:
        list(
            VideoSource(
                SourceSettings("rtsp://admin:hunter2@127.0.0.1:1/x", open_timeout=1, reconnect=False)
            ).frames()
        )
    assert "hunter2" not in caught.value.message


def test_decoding_at_the_analysis_size(scene: Path) -> None:
    """``max_side`` scales in the BGR conversion: the picture is the full one, area-averaged, not a crop."""
    full = [frame.bgr() for frame in VideoSource(SourceSettings(str(scene))).frames()]
    small = list(VideoSource(SourceSettings(str(scene), max_side=320)).frames())
    assert len(small) == len(full)
    assert (small[0].width, small[0].height) == (320, 180)
    for frame, original in zip(small[::10], full[::10], strict=True):
        pixels = frame.bgr()
        assert pixels.shape == (180, 320, 3)
        expected = cv2.resize(original, (320, 180), interpolation=cv2.INTER_AREA)
        # swscale and OpenCV place chroma samples a little differently: a few levels, where a crop is far off
        assert float(abs(pixels.astype(float) - expected).mean()) < 5.0
        assert float(abs(pixels.astype(float) - original[:180, :320]).mean()) > 15.0
    same = next(iter(VideoSource(SourceSettings(str(scene), max_side=640)).frames()))
    assert (same.width, same.height) == SIZE  # never scaled up
    with pytest.raises(InvalidParameterError):
        SourceSettings(str(scene), max_side=8)
