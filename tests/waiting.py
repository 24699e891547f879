"""Waiting on a condition instead of a clock: tests of live pipelines, servers and Ray actors poll what they
expect until a generous deadline, so a loaded machine makes them slower, never red."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], object], seconds: float = 20.0, *, interval: float = 0.05) -> bool:
    """Whether ``condition()`` became true within ``seconds``, polled every ``interval`` seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False
