"""Redaction of real photos and of a video made from them: faces obscured, the rest untouched, audio kept."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from facetrace.cli import main
from facetrace.cli.output import EXIT_FAILURE
from facetrace.engine import FaceEngine
from facetrace.imaging import Image
from facetrace.redaction import Box, PhotoRedaction, RedactionSettings, padded_box, redact_photo, redaction_engine
from facetrace.types import Detection
from facetrace.video.redact import VideoRedactionSettings
from tests.store.conftest import accept_audit_appends, refuse_audit_appends


def _region_change(a: np.ndarray, b: np.ndarray, det: Detection) -> float:
    x0, y0 = max(0, int(det.x)), max(0, int(det.y))
    x1, y1 = min(a.shape[1], int(det.x + det.w)), min(a.shape[0], int(det.y + det.h))
    return float(np.abs(a[y0:y1, x0:x1].astype(np.int16) - b[y0:y1, x0:x1].astype(np.int16)).mean())


def _obscured(result: PhotoRedaction, settings: RedactionSettings, shape: tuple[int, ...]) -> np.ndarray:
    """Where ``redact_photo`` obscured: the union of its hidden boxes, padded as ``obscure`` pads them."""
    mask = np.zeros(shape[:2], dtype=bool)
    for box in result.hidden:
        x0, y0, x1, y1 = padded_box(box, settings.padding, shape[1], shape[0])
        mask[y0:y1, x0:x1] = True
    return mask


def test_every_face_of_a_group_photo_is_obscured_and_nothing_else(engine: FaceEngine, photos: dict) -> None:
    image = engine.load(photos["t1.jpg"])
    faces = engine.find_faces(image)
    assert len(faces) == 6
    settings = RedactionSettings()
    pixels, result = redact_photo(redaction_engine(engine, settings), image, settings)
    assert len(result.hidden) >= 6
    assert result.kept == ()
    for face in faces:
        assert _region_change(image.pixels, pixels, face) > 8.0  # the face region is wiped, not nudged
    # outside every padded box the photo is byte for byte the same
    mask = _obscured(result, settings, image.pixels.shape[:2])
    assert mask.mean() < 0.5
    assert np.array_equal(image.pixels[~mask], pixels[~mask])
    # irreversible: nothing the detector or the recognizer could use is left
    from facetrace.imaging import Image

    redacted = Image(pixels)
    for face in engine.describe(redacted, faces):
        original = engine.describe(image, [face.detection])[0]
        assert original.vector is not None
        assert face.vector is not None
        assert engine.similarity(original.vector, face.vector) < 50.0


WIDER_PROFILE = "2_Demonstration_Demonstrators_2_195.jpg"
WIDER_PROFILE_HEIGHT = 740  # its original height (WIDER photos are 1024 wide; estimate_source_height found it)


@pytest.mark.shared
def test_centerface_hides_a_crowd_face_yunet_misses(engine: FaceEngine, shared: Path) -> None:
    """A WIDER FACE demonstration photo, its aspect restored (416×301): the man in profile at the right edge,
    28×55 px, is not found by YuNet even at score 0.1 with 2× tiles, so YuNet alone (on the picture as it
    is, not stretched) leaves him visible; with CenterFace beside it he is hidden, and so is every other
    official face ≥ 16 px (and with the default, stretched passes included)."""
    folder = shared / "wider_val200"
    entry = next(
        e for e in json.loads((folder / "annotations.json").read_text()) if e["file"].endswith(WIDER_PROFILE)
    )
    scale = 416 / 1024
    squashed = engine.load(folder / entry["file"])
    image = Image(
        cv2.resize(squashed.pixels, (416, round(WIDER_PROFILE_HEIGHT * scale)), interpolation=cv2.INTER_AREA)
    )
    official = [(x * scale, y * scale, w * scale, h * scale) for x, y, w, h in entry["boxes_xywh"]]
    profile = max(official, key=lambda box: box[0])

    def covered(settings: RedactionSettings) -> list[float]:
        _, result = redact_photo(redaction_engine(engine, settings), image, settings)
        mask = _obscured(result, settings, image.pixels.shape)
        return [float(mask[round(y) : round(y + h), round(x) : round(x + w)].mean()) for x, y, w, h in official]

    yunet_alone = covered(RedactionSettings(centerface_confidence=None, aspects=()))
    assert yunet_alone[official.index(profile)] < 0.5
    for settings in (RedactionSettings(aspects=()), RedactionSettings()):
        both = covered(settings)
        assert both[official.index(profile)] >= 0.9
        assert all(c >= 0.5 for c, box in zip(both, official, strict=True) if box[3] >= 16)


def _side_by_side(left: Path, right: Path, out: Path) -> None:
    a, b = cv2.imread(str(left)), cv2.imread(str(right))
    height = 400
    a = cv2.resize(a, (round(a.shape[1] * height / a.shape[0]), height))
    b = cv2.resize(b, (round(b.shape[1] * height / b.shape[0]), height))
    cv2.imwrite(str(out), np.concatenate([a, b], axis=1))


def _covered(result: PhotoRedaction, settings: RedactionSettings, shape: tuple[int, ...], box: Box) -> float:
    """Share of ``box`` (x, y, w, h) inside the obscured regions."""
    mask = _obscured(result, settings, shape)
    x0, y0, x1, y1 = padded_box(box, 0.0, shape[1], shape[0])
    return float(mask[y0:y1, x0:x1].mean())


@pytest.mark.parametrize(
    ("name", "wide", "tall"),
    [("t1.jpg", 4, 1), ("t1.jpg", 1, 4), ("Tom_Hanks_54745.png", 1, 3)],
    ids=["group-4x-narrow", "group-4x-flat", "portrait-3x-flat"],
)
def test_faces_of_a_squashed_picture_are_hidden(
    engine: FaceEngine, photos: dict, name: str, wide: int, tall: int
) -> None:
    """A real picture stored squashed (anamorphic, resized to a square): t1's six faces narrowed 4× (or
    flattened 4×), a portrait flattened 3×. Without the stretched passes (``aspects=()``) YuNet, CenterFace and
    the 2× tiles leave some of those faces mostly visible (t1 narrowed: 3–4 of 6; flattened: 1–3); with the
    default every one is covered."""
    image = engine.load(photos[name])
    faces = engine.find_faces(image)
    squashed = Image(
        cv2.resize(image.pixels, (image.width // wide, image.height // tall), interpolation=cv2.INTER_AREA)
    )
    sx, sy = squashed.width / image.width, squashed.height / image.height
    boxes = [(d.x * sx, d.y * sy, d.w * sx, d.h * sy) for d in faces]
    plain, default = RedactionSettings(aspects=()), RedactionSettings()
    _, before = redact_photo(redaction_engine(engine, plain), squashed, plain)
    _, after = redact_photo(redaction_engine(engine, default), squashed, default)
    shape = squashed.pixels.shape
    assert any(_covered(before, plain, shape, box) < 0.5 for box in boxes)
    assert all(_covered(after, default, shape, box) >= 0.9 for box in boxes)


def test_keep_collection_leaves_the_enrolled_person_visible(
    capsys: pytest.CaptureFixture[str], engine: FaceEngine, photos: dict, home: Path, tmp_path: Path
) -> None:
    both = tmp_path / "obama-biden.png"
    _side_by_side(photos["obama.jpg"], photos["biden.jpg"], both)
    assert main(["collections", "create", "staff"]) == 0
    assert main(["index", "staff", str(photos["obama2.jpg"]), "--json"]) == 0
    capsys.readouterr()
    out = tmp_path / "released.png"
    assert main(["redact", str(both), str(out), "--keep-collection", "staff", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["FacesKept"] == 1
    assert report["FacesHidden"] >= 1
    before, after = engine.load(both), engine.load(out)
    obama, biden = sorted(engine.find_faces(before), key=lambda d: d.x)
    assert _region_change(before.pixels, after.pixels, obama) == 0.0
    assert _region_change(before.pixels, after.pixels, biden) > 8.0
    # the same photo with --only-collection: only Obama hidden
    only = tmp_path / "only.png"
    assert main(["redact", str(both), str(only), "--only-collection", "staff", "--json"]) == 0
    capsys.readouterr()
    after_only = engine.load(only)
    assert _region_change(before.pixels, after_only.pixels, obama) > 8.0
    assert _region_change(before.pixels, after_only.pixels, biden) == 0.0
    assert main(["audit", "list", "--json"]) == 0
    records = [r for r in json.loads(capsys.readouterr().out)["Records"] if r["Operation"] == "RedactMedia"]
    assert [r["Detail"]["mode"] for r in records] == ["keep", "only"]
    assert all(len(r["MatchedFaceIds"]) == 1 for r in records)
    # refuses to overwrite without --force
    assert main(["redact", str(both), str(out), "--json"]) == 1


def _make_clip(photo: Path, out: Path, frames: int = 24) -> list[np.ndarray]:
    """A 640×360 H.264 clip panning slowly across a real photo, with a 440 Hz AAC audio track."""
    source = cv2.imread(str(photo))
    scale = 360 / source.shape[0] * 1.1
    big = cv2.resize(source, (round(source.shape[1] * scale), round(source.shape[0] * scale)))
    big = cv2.copyMakeBorder(big, 0, 0, 0, max(0, 700 - big.shape[1]), cv2.BORDER_REPLICATE)
    pictures = [np.ascontiguousarray(big[10:370, 2 * i : 2 * i + 640]) for i in range(frames)]
    with av.open(str(out), "w") as container:
        video = container.add_stream("libx264", rate=Fraction(24))
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        audio = container.add_stream("aac", rate=44100)
        audio.layout = "mono"
        for index, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
            frame.pts = index
            container.mux(video.encode(frame))
        samples = (np.sin(2 * np.pi * 440 * np.arange(44100 * frames // 24) / 44100) * 0.3).astype(np.float32)
        for start in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = 44100, start
            container.mux(audio.encode(chunk))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return pictures


@pytest.mark.slow
def test_video_every_frame_obscured_audio_kept(
    capsys: pytest.CaptureFixture[str], engine: FaceEngine, photos: dict, tmp_path: Path
) -> None:
    clip, out = tmp_path / "clip.mp4", tmp_path / "released.mp4"
    pictures = _make_clip(photos["t1.jpg"], clip)
    # the defaults: YuNet on every 2nd frame, CenterFace beside it on every 30th (here only the first): the
    # faces of the frames no detector saw are hidden by their tracks' interpolated and carried boxes
    assert VideoRedactionSettings().detect_every == 2
    assert main(["redact", str(clip), str(out), "--json", "--home", str(tmp_path / "h")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["Frames"] == len(pictures)
    assert report["Audio"] is True
    assert report["FacesHidden"] >= 6
    with av.open(str(out)) as container:
        assert container.streams.audio, "the audio track is kept"
        assert container.streams.audio[0].codec_context.name == "aac"
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(decoded) == len(pictures)
    from facetrace.imaging import Image

    for index, (original, redacted) in enumerate(zip(pictures, decoded, strict=True)):
        faces = engine.find_faces(Image(original))
        assert len(faces) >= 5, index
        for face in faces:  # every face in every frame, detected or carried between detections
            assert _region_change(original, redacted, face) > 8.0, (index, face.x)
        corner = (slice(0, 40), slice(0, 40))  # no face there: only the encoder's noise
        assert np.abs(original[corner].astype(int) - redacted[corner].astype(int)).mean() < 8.0


@pytest.mark.slow
def test_video_keep_collection_shows_the_enrolled_person_in_every_frame(
    capsys: pytest.CaptureFixture[str], engine: FaceEngine, photos: dict, home: Path, tmp_path: Path
) -> None:
    both, clip, out = tmp_path / "both.png", tmp_path / "both.mp4", tmp_path / "released.mp4"
    _side_by_side(photos["obama.jpg"], photos["biden.jpg"], both)
    pictures = _make_clip(both, clip, frames=12)
    assert main(["collections", "create", "staff"]) == 0
    assert main(["index", "staff", str(photos["obama2.jpg"]), "--json"]) == 0
    capsys.readouterr()
    assert main(["redact", str(clip), str(out), "--keep-collection", "staff", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["FacesKept"] == 1
    assert report["FacesHidden"] >= 1
    with av.open(str(out)) as container:
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    with av.open(str(clip)) as container:  # the input as a decoder sees it: only our re-encoding differs
        source = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    from facetrace.imaging import Image

    assert len(decoded) == len(source) == len(pictures)
    for original, redacted in zip(source, decoded, strict=True):
        obama, biden = sorted(engine.find_faces(Image(original))[:2], key=lambda d: d.x)
        kept, hidden = _region_change(original, redacted, obama), _region_change(original, redacted, biden)
        assert kept < 4.0, (kept, hidden)  # only the encoder's noise
        assert hidden > 8.0, (kept, hidden)


@pytest.mark.parametrize("kind", ["photo", pytest.param("video", marks=pytest.mark.slow)])
def test_no_output_without_its_audit_record(
    capsys: pytest.CaptureFixture[str], photos: dict, home: Path, tmp_path: Path, kind: str
) -> None:
    """Fail closed: with a collection the act is audited before the output is renamed into place, so an audit
    trail that refuses the record leaves no output (and an old one given with --force untouched)."""
    both = tmp_path / "both.png"
    _side_by_side(photos["obama.jpg"], photos["biden.jpg"], both)
    source = both if kind == "photo" else tmp_path / "both.mp4"
    if kind == "video":
        _make_clip(both, source, frames=6)
    out = tmp_path / f"released{source.suffix}"
    assert main(["collections", "create", "staff"]) == 0
    assert main(["index", "staff", str(photos["obama2.jpg"]), "--json"]) == 0
    refuse_audit_appends(home / "facetrace.db")
    capsys.readouterr()
    before = set(tmp_path.iterdir())
    assert main(["redact", str(source), str(out), "--keep-collection", "staff", "--json"]) == EXIT_FAILURE
    captured = capsys.readouterr()
    assert captured.out == ""
    error = json.loads(captured.err)["error"]
    assert (error["type"], "disk is full" in error["message"]) == ("StoreError", True)
    assert set(tmp_path.iterdir()) == before  # no output, no partial file
    out.write_bytes(b"an earlier release")
    assert main(["redact", str(source), str(out), "--keep-collection", "staff", "--force"]) == EXIT_FAILURE
    assert out.read_bytes() == b"an earlier release"  # not replaced by an unaudited one
    assert set(tmp_path.iterdir()) == before | {out}
    accept_audit_appends(home / "facetrace.db")
    assert main(["redact", str(source), str(out), "--keep-collection", "staff", "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["FacesKept"] == 1  # healed: the same command does its work
    assert out.read_bytes() != b"an earlier release"


def test_bad_inputs_are_refused(capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    assert main(["redact", str(junk), str(tmp_path / "out.mp4"), "--json"]) == 1
    assert main(["redact", str(tmp_path / "missing.jpg"), str(tmp_path / "out.jpg"), "--json"]) == 1
    assert main(["redact", str(junk), str(tmp_path / "out.jpg"), "--json"]) == 1  # video in, photo out
    assert main(["redact", str(junk), str(tmp_path / "o.mp4"), "--padding", "9", "--json"]) == 1
    assert main(["redact", str(junk), str(tmp_path / "o.mp4"), "--keep-collection", "nobody", "--json"]) == 1
    capsys.readouterr()
    assert {p.name for p in tmp_path.iterdir()} <= {"home", "junk.mp4"}  # nothing half-written left behind
