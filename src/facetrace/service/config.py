"""Server settings: one strict pydantic model, every field described and bounded.

The numeric limits are one table (``LIMITS``: default, range, meaning), the contract kept as data: the model
takes each limit's field from it, so a bound is written once, and the tests walk the table to check every
bound is enforced at both ends with pydantic's usual errors.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["IMAGE_BODY_BYTES", "LIMITS", "Limit", "ServiceConfig"]

IMAGE_BODY_BYTES = 4 * ((5 * 1024 * 1024 + 2) // 3) + 64 * 1024
"""A 5 MB image in base64 (6,990,508 bytes) plus 64 KiB for the rest of the JSON."""


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _workers() -> int:
    return _cores() + 2


@dataclass(frozen=True, slots=True)
class Limit:
    """One numeric setting: its ``default`` (a value, or a function of the machine), its range — ``low``
    inclusive (exclusive with ``above``: the value must be more than ``low``), ``high`` inclusive — and what it
    means. Integer bounds for integer settings, so errors read "at least 1024", not "1024.0"."""

    default: int | float | Callable[[], int]
    low: int | float
    high: int | float
    description: str
    above: bool = False

    def field(self) -> Any:
        """The pydantic field: the same constraints (and so the same errors) a hand-written ``Field`` has."""
        gt, ge = (self.low, None) if self.above else (None, self.low)
        if callable(self.default):
            return Field(default_factory=self.default, gt=gt, ge=ge, le=self.high, description=self.description)
        return Field(default=self.default, gt=gt, ge=ge, le=self.high, description=self.description)


_MIB = 1024 * 1024
LIMITS: dict[str, Limit] = {
    "port": Limit(8089, 0, 65535, "TCP port (0: any free port)"),
    "max_body_bytes": Limit(
        IMAGE_BODY_BYTES, 1024, 256 * _MIB,
        "largest request body per image the operation takes (CompareFaces: twice this)",
    ),
    "workers": Limit(
        _workers, 1, 256,
        "threads running library calls: the cores and two more, so that a request waiting on its audit commit or"
        " the index does not leave a core idle (recognition stays one per core: inference_threads)",
    ),
    "inference_threads": Limit(
        _cores, 1, 64, "recognizer instances shared by the workers (at most this many recognitions at once)"
    ),
    "embed_batch": Limit(1, 1, 256, "faces of concurrent requests recognized in one call (1: measured best)"),
    "max_pending": Limit(32, 0, 10_000, "requests allowed to wait for a worker before ThrottlingException"),
    "max_queue_wait": Limit(
        5.0, 0, 600, "seconds a request may wait for a worker before ThrottlingException", above=True
    ),
    "rate": Limit(50.0, 0, 1_000_000, "requests per second per access key, sustained", above=True),
    "burst": Limit(100, 1, 1_000_000, "requests per access key allowed in a burst"),
    "max_clock_skew": Limit(900.0, 1, 86_400, "seconds a signature's date may be off"),
    "shutdown_timeout": Limit(30.0, 0, 3600, "seconds to finish in-flight requests"),
    "header_timeout": Limit(
        10.0, 0, 600, "seconds a client may take to send a request's headers", above=True
    ),
    "body_timeout": Limit(
        60.0, 0, 3600, "seconds a client may take to send a request's whole body", above=True
    ),
    "keep_alive_timeout": Limit(5, 1, 600, "seconds an idle connection stays open"),
    "max_unverified_bytes": Limit(
        64 * _MIB, _MIB, 4096 * _MIB,
        "request body bytes held, over all requests, while their signatures are not yet checked",
    ),
    "max_event_streams_per_key": Limit(8, 1, 10_000, "open /events streams one access key may hold at once"),
    "events_recheck_seconds": Limit(
        5.0, 0, 5.0, "an open /events stream re-reads its key at least this often", above=True
    ),
    "decode_budget_mb": Limit(
        1536, 64, 1_048_576, "MiB that decoding images may take at once, all requests together (facetrace/budget.py)"
    ),
    "decode_wait": Limit(10.0, 0, 600, "seconds an image waits for decode budget before ThrottlingException"),
}  # fmt: skip
"""Every numeric limit of ``ServiceConfig``, by field name (``facetrace serve --help`` and docs/server.md give
the operator's view)."""


class ServiceConfig(BaseModel):
    """How ``facetrace serve`` listens, limits and maps buckets (the numeric limits: ``LIMITS``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="address to listen on; loopback unless you mean otherwise")
    port: int = LIMITS["port"].field()
    buckets: dict[str, Path] = Field(
        default_factory=dict,
        description="S3Object buckets: bucket name → local folder whose files are its objects",
    )
    max_body_bytes: int = LIMITS["max_body_bytes"].field()
    workers: int = LIMITS["workers"].field()
    inference_threads: int = LIMITS["inference_threads"].field()
    embed_batch: int = LIMITS["embed_batch"].field()
    max_pending: int = LIMITS["max_pending"].field()
    max_queue_wait: float = LIMITS["max_queue_wait"].field()
    rate: float = LIMITS["rate"].field()
    burst: int = LIMITS["burst"].field()
    max_clock_skew: float = LIMITS["max_clock_skew"].field()
    region: str = Field(default="us-east-1", min_length=1, max_length=64, description="region used in ARNs")
    account_id: str = Field(default="000000000000", pattern=r"\d{12}", description="account id used in ARNs")
    shutdown_timeout: float = LIMITS["shutdown_timeout"].field()
    header_timeout: float = LIMITS["header_timeout"].field()
    body_timeout: float = LIMITS["body_timeout"].field()
    keep_alive_timeout: int = LIMITS["keep_alive_timeout"].field()
    max_unverified_bytes: int = LIMITS["max_unverified_bytes"].field()
    max_event_streams_per_key: int = LIMITS["max_event_streams_per_key"].field()
    events_recheck_seconds: float = LIMITS["events_recheck_seconds"].field()
    metrics_collections: bool = Field(
        default=False, description="name collections (and their face counts) on /metrics; off: names stay private"
    )
    decode_budget_mb: int = LIMITS["decode_budget_mb"].field()
    decode_wait: float = LIMITS["decode_wait"].field()
    camera_allow: tuple[str, ...] = Field(
        default=(),
        max_length=256,
        description="video source patterns a request may name (service/sources.py); none: no URL sources",
    )

    @field_validator("camera_allow")
    @classmethod
    def _camera_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from facetrace.service.sources import check_pattern

        return tuple(check_pattern(pattern) for pattern in value)

    @field_validator("buckets")
    @classmethod
    def _bucket_names(cls, value: dict[str, Path]) -> dict[str, Path]:
        from facetrace.service.images import check_bucket_name

        return {check_bucket_name(name): Path(path).expanduser().resolve() for name, path in value.items()}
