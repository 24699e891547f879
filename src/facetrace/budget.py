"""A process-wide budget for the memory that decoding images takes at once (decompression bombs, issue 9).

A small file can hold a huge picture: a 201 KB PNG of 39.7 MP costs about 0.8 GB while Pillow decodes it and
it is converted to BGR (measured by ``benchmarks/bench_decode_budget.py``), and four at once peaked at 2.6 GB.
``ImageLimits.max_pixels`` bounds one image; this bounds them all together. ``load_image`` estimates an
image's peak from its header (``DECODE_BYTES_PER_PIXEL`` × pixels, before any pixel is decoded), then holds
that much of the budget while it decodes:

- an image that could never fit (more than the whole budget) is refused at once: ``ImageTooLargeError``;
- otherwise it waits (FIFO-fair enough: whoever fits first) up to ``wait`` seconds for others to finish, then
  gives up with ``ThrottlingError`` — the server answers ThrottlingException instead of running out of memory.

The budget is unlimited until ``configure_decode_budget`` sets one (``facetrace serve`` does, from
``ServiceConfig.decode_budget_mb``); a library caller that decodes in many threads can set one too.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from facetrace.errors import ImageTooLargeError, InvalidParameterError, ThrottlingError

__all__ = ["DECODE_BYTES_PER_PIXEL", "DecodeBudget", "configure_decode_budget", "decode_budget"]

DECODE_BYTES_PER_PIXEL = 20
"""Peak bytes per pixel while decoding: Pillow's 4-byte buffer, an alpha composite, RGB and BGR copies."""


class DecodeBudget:
    """At most ``total`` bytes of decoding at once (None: unlimited); ``wait`` seconds to get a share."""

    def __init__(self, total: int | None = None, wait: float = 10.0) -> None:
        if (total is not None and total < 1) or wait < 0:
            raise InvalidParameterError("a decode budget needs a positive size and a non-negative wait")
        self.total = total
        self.wait = wait
        self._used = 0
        self._peak = 0
        self._cond = threading.Condition()

    @property
    def in_use(self) -> int:
        return self._used

    @property
    def peak(self) -> int:
        """The most bytes held at once since this budget was made (for tests and metrics)."""
        return self._peak

    @contextlib.contextmanager
    def hold(self, cost: int) -> Iterator[None]:
        """Hold ``cost`` bytes of the budget for the duration of the block."""
        if self.total is None:
            yield
            return
        if cost > self.total:
            raise ImageTooLargeError(
                f"decoding this image takes about {cost // 2**20} MiB, over the server's decode budget of"
                f" {self.total // 2**20} MiB"
            )
        deadline = time.monotonic() + self.wait
        with self._cond:
            while self._used + cost > self.total:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ThrottlingError("too many large images are being decoded at once; retry later")
                self._cond.wait(left)
            self._used += cost
            self._peak = max(self._peak, self._used)
        try:
            yield
        finally:
            with self._cond:
                self._used -= cost
                self._cond.notify_all()


_budget = DecodeBudget()


def decode_budget() -> DecodeBudget:
    """The process's decode budget (unlimited unless configured)."""
    return _budget


def configure_decode_budget(total: int | None, wait: float = 10.0) -> DecodeBudget:
    """Replace the process's decode budget; returns the new one."""
    global _budget
    _budget = DecodeBudget(total, wait)
    return _budget
