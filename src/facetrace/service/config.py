"""Server settings: one strict pydantic model, every field described and bounded."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["IMAGE_BODY_BYTES", "ServiceConfig"]

IMAGE_BODY_BYTES = 4 * ((5 * 1024 * 1024 + 2) // 3) + 64 * 1024
"""A 5 MB image in base64 (6,990,508 bytes) plus 64 KiB for the rest of the JSON."""


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class ServiceConfig(BaseModel):
    """How ``facetrace serve`` listens, limits and maps buckets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="address to listen on; loopback unless you mean otherwise")
    port: int = Field(default=8089, ge=0, le=65535, description="TCP port (0: any free port)")
    buckets: dict[str, Path] = Field(
        default_factory=dict,
        description="S3Object buckets: bucket name → local folder whose files are its objects",
    )
    max_body_bytes: int = Field(
        default=IMAGE_BODY_BYTES,
        ge=1024,
        le=256 * 1024 * 1024,
        description="largest request body per image the operation takes (CompareFaces: twice this)",
    )
    workers: int = Field(
        default_factory=lambda: _cores() + 2,
        ge=1,
        le=256,
        description="threads running library calls: the cores and two more, so that a request waiting on its"
        " audit commit or the index does not leave a core idle (recognition stays one per core: inference_threads)",
    )
    inference_threads: int = Field(
        default_factory=_cores,
        ge=1,
        le=64,
        description="recognizer instances shared by the workers (at most this many recognitions at once)",
    )
    embed_batch: int = Field(
        default=1,
        ge=1,
        le=256,
        description="faces of concurrent requests recognized in one call (1: measured best)",
    )
    max_pending: int = Field(
        default=32, ge=0, le=10_000, description="requests allowed to wait for a worker before ThrottlingException"
    )
    max_queue_wait: float = Field(
        default=5.0, gt=0, le=600, description="seconds a request may wait for a worker before ThrottlingException"
    )
    rate: float = Field(
        default=50.0, gt=0, le=1_000_000, description="requests per second per access key, sustained"
    )
    burst: int = Field(default=100, ge=1, le=1_000_000, description="requests per access key allowed in a burst")
    max_clock_skew: float = Field(
        default=900.0, ge=1, le=86_400, description="seconds a signature's date may be off"
    )
    region: str = Field(default="us-east-1", min_length=1, max_length=64, description="region used in ARNs")
    account_id: str = Field(default="000000000000", pattern=r"\d{12}", description="account id used in ARNs")
    shutdown_timeout: float = Field(
        default=30.0, ge=0, le=3600, description="seconds to finish in-flight requests"
    )
    header_timeout: float = Field(
        default=10.0, gt=0, le=600, description="seconds a client may take to send a request's headers"
    )
    body_timeout: float = Field(
        default=60.0, gt=0, le=3600, description="seconds a client may take to send a request's whole body"
    )
    keep_alive_timeout: int = Field(default=5, ge=1, le=600, description="seconds an idle connection stays open")
    max_unverified_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        le=4 * 1024 * 1024 * 1024,
        description="request body bytes held, over all requests, while their signatures are not yet checked",
    )
    max_event_streams_per_key: int = Field(
        default=8, ge=1, le=10_000, description="open /events streams one access key may hold at once"
    )
    events_recheck_seconds: float = Field(
        default=5.0, gt=0, le=5.0, description="an open /events stream re-reads its key at least this often"
    )
    metrics_collections: bool = Field(
        default=False, description="name collections (and their face counts) on /metrics; off: names stay private"
    )
    decode_budget_mb: int = Field(
        default=1536,
        ge=64,
        le=1_048_576,
        description="MiB that decoding images may take at once, all requests together (facetrace/budget.py)",
    )
    decode_wait: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description="seconds an image waits for decode budget before ThrottlingException",
    )
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
