"""Which frames a redacted track covers: the rules that keep a face hidden between detections."""

from __future__ import annotations

from facetrace.video.redact import VideoRedactionSettings, _boxes_by_frame, _Path

BOX = (10.0, 20.0, 30.0, 40.0)


def _covered(path: _Path, frames: int, *, hold: bool = True) -> list[int]:
    out = _boxes_by_frame([path], frames, VideoRedactionSettings(), hold=hold)
    return [i for i, boxes in enumerate(out) if boxes]


def test_a_face_only_centerface_finds_stays_hidden_from_one_centerface_frame_to_the_next() -> None:
    """CenterFace runs every 30th frame: a face only it finds (a small profile in a crowd) is seen at 30, 60
    and 90, and must be covered all the way, plus a CenterFace interval before the first and after the last."""
    settings = VideoRedactionSettings()
    assert (settings.detect_every, settings.centerface_every, settings.lead, settings.tail) == (2, 30, 6, 15)
    seen_by_centerface = _Path(boxes={30: BOX, 60: BOX, 90: BOX}, light=False)
    assert _covered(seen_by_centerface, 200) == list(range(0, 121))
    # a face YuNet follows every 2nd frame is held the usual 6 frames before and 15 after
    seen_by_yunet = _Path(boxes={30: BOX, 32: BOX, 34: BOX}, light=True)
    assert _covered(seen_by_yunet, 200) == list(range(24, 50))


def test_boxes_are_interpolated_between_detections() -> None:
    path = _Path(boxes={0: (0.0, 0.0, 10.0, 10.0), 4: (40.0, 0.0, 10.0, 10.0)}, light=True)
    out = _boxes_by_frame([path], 5, VideoRedactionSettings())
    assert [boxes[0][0] for boxes in out] == [0.0, 10.0, 20.0, 30.0, 40.0]


def test_a_kept_face_is_left_untouched_only_where_it_was_seen() -> None:
    """Kept (identified) faces are not held before or after their sightings, nor across a long gap: someone
    else may stand there then, and must not be uncovered."""
    path = _Path(boxes={10: BOX, 12: BOX, 80: BOX}, light=True)
    assert _covered(path, 200, hold=False) == [10, 11, 12, 80]
