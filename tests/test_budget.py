"""Issue 9, item 8: decoding takes at most the decode budget at once; an image that can never fit is refused,
one that has to wait too long is throttled."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image as PILImage

from facetrace.budget import DECODE_BYTES_PER_PIXEL, DecodeBudget, configure_decode_budget
from facetrace.errors import ImageTooLargeError, ThrottlingError
from facetrace.imaging import load_image


@pytest.fixture
def restore() -> Iterator[None]:
    yield
    configure_decode_budget(None)


@pytest.fixture(scope="module")
def big_png(photos: dict[str, Path]) -> bytes:
    with PILImage.open(photos["obama.jpg"]) as img:
        buffer = io.BytesIO()
        img.convert("RGB").resize((1200, 1000)).save(buffer, format="PNG")
    return buffer.getvalue()


COST = 1200 * 1000 * DECODE_BYTES_PER_PIXEL  # 24 MB


def test_an_image_over_the_whole_budget_is_refused_before_decoding(big_png: bytes, restore: None) -> None:
    budget = configure_decode_budget(COST - 1)
    with pytest.raises(ImageTooLargeError, match="decode budget"):
        load_image(big_png)
    assert budget.peak == 0  # refused from the header, nothing held


def test_concurrent_decodes_stay_within_the_budget(big_png: bytes, restore: None) -> None:
    budget = configure_decode_budget(2 * COST + COST // 2, wait=60)  # room for two at once, not three
    errors: list[BaseException] = []

    def decode() -> None:
        try:
            assert load_image(big_png).width == 1200
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=decode) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert COST <= budget.peak <= 2 * COST
    assert budget.in_use == 0


def test_waiting_too_long_is_throttled() -> None:
    budget = DecodeBudget(100, wait=0.2)
    with budget.hold(80):
        started = time.monotonic()
        with pytest.raises(ThrottlingError), budget.hold(30):
            pass
        assert time.monotonic() - started >= 0.2
    with budget.hold(100):  # released: the whole budget is free again
        assert budget.in_use == 100


def test_a_waiting_decode_goes_ahead_when_room_is_freed() -> None:
    budget = DecodeBudget(100, wait=10)
    release = threading.Event()
    done = threading.Event()

    def first() -> None:
        with budget.hold(80):
            release.wait(10)

    def second() -> None:
        with budget.hold(50):
            done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    time.sleep(0.1)
    threads[1].start()
    assert not done.wait(0.3)  # 80 + 50 > 100: it waits
    release.set()
    assert done.wait(5)
    for thread in threads:
        thread.join()
    assert budget.peak == 80
