"""Composition: the Starlette app, its routes, and the middleware stack, assembled in one place.

Request path, outermost first: request id → metrics → errors → body deadline → body limit → auth (SigV4:
header shape and key before the body, unverified bytes capped) → rate limit →
``POST /`` (``dispatch.Dispatcher``: handler table, permissions, worker pool). ``GET /healthz`` and
``GET /metrics`` need no signature; routes that handler modules add (``operations.route``, e.g. the video
events feed) sit behind the same stack as ``POST /``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from facetrace.budget import configure_decode_budget
from facetrace.errors import FacetraceError
from facetrace.gallery import Gallery
from facetrace.service.access_audit import DeniedAttempts
from facetrace.service.config import ServiceConfig
from facetrace.service.dispatch import Dispatcher, WorkerPool
from facetrace.service.idempotency import Idempotency
from facetrace.service.keys import KeyStore
from facetrace.service.metrics import Metrics
from facetrace.service.middleware.auth import AuthMiddleware
from facetrace.service.middleware.body_limit import BodyLimitMiddleware
from facetrace.service.middleware.denied_audit import DeniedAuditMiddleware
from facetrace.service.middleware.errors import ErrorMiddleware
from facetrace.service.middleware.metrics import MetricsMiddleware
from facetrace.service.middleware.rate_limit import RateLimitMiddleware, TokenBuckets
from facetrace.service.middleware.request_id import RequestIdMiddleware
from facetrace.service.operations import Resources, RouteEndpoint, extra_routes, load_handlers, startup_hooks
from facetrace.service.protocol import TARGET_PREFIX
from facetrace.service.slow_clients import BodyDeadlineMiddleware, UnverifiedBytes
from facetrace.service.validation import service_model
from facetrace.store import records_of
from facetrace.store.records import MemoryTokens

__all__ = ["body_limits", "create_app", "middleware_stack"]

log = logging.getLogger(__name__)

MAX_LISTED_COLLECTIONS = 1000  # /metrics reports at most this many collections


def body_limits(config: ServiceConfig) -> Callable[[str | None], int]:
    """The body limit for an X-Amz-Target: the per-image limit times the images the operation takes."""
    model = service_model()
    images: dict[str, int] = {}
    for name in model.operation_names:
        shape = model.operation_model(name).input_shape
        members = shape.members.values() if shape is not None else ()
        images[name] = max(1, sum(1 for member in members if member.name == "Image"))

    def limit_for(target: str | None) -> int:
        name = target[len(TARGET_PREFIX) :] if target and target.startswith(TARGET_PREFIX) else ""
        return config.max_body_bytes * images.get(name, 1)

    return limit_for


def middleware_stack(
    keys: KeyStore, config: ServiceConfig, metrics: Metrics, denied: DeniedAttempts | None = None
) -> list[Middleware]:
    """The middleware, outermost first (``denied``: where refused requests are audited)."""
    audit_denied = [] if denied is None else [Middleware(DeniedAuditMiddleware, denied=denied)]
    return [
        Middleware(RequestIdMiddleware),
        Middleware(MetricsMiddleware, metrics=metrics),
        Middleware(ErrorMiddleware),
        Middleware(BodyDeadlineMiddleware, seconds=config.body_timeout),
        *audit_denied,
        Middleware(BodyLimitMiddleware, limit_for=body_limits(config)),
        Middleware(
            AuthMiddleware,
            keys=keys,
            max_skew=config.max_clock_skew,
            unverified=UnverifiedBytes(config.max_unverified_bytes),
        ),
        Middleware(RateLimitMiddleware, buckets=TokenBuckets(config.rate, config.burst)),
    ]


def create_app(
    gallery: Gallery,
    keys: KeyStore,
    config: ServiceConfig | None = None,
    *,
    handler_modules: Iterable[str] = (),
    on_shutdown: Callable[[], None] | None = None,
    home: Path | None = None,
    dashboard: bool = True,
) -> Starlette:
    """The Rekognition-compatible ASGI app over ``gallery``, authenticating with ``keys``.

    ``handler_modules`` are imported besides ``facetrace.service.handlers.*``; ``on_shutdown`` runs after the
    last in-flight request has finished (close the store and the audit log there). ``home`` is where handler
    modules keep their own state (video jobs, stream processors); default ``$FACETRACE_HOME``. ``dashboard``:
    serve the operator's dashboard under ``/ui/`` (``facetrace.service.ui``).
    """
    config = config or ServiceConfig()
    configure_decode_budget(config.decode_budget_mb * 2**20, config.decode_wait)  # all requests together
    load_handlers(handler_modules)
    pool = WorkerPool(config.workers, config.max_pending, config.max_queue_wait)
    resources = Resources()
    if home is not None:
        resources.put("home", home)
    # Long-lived responses (/events) re-read their caller's key. The lookup, not the KeyStore: resources are
    # closed at shutdown, and the key store belongs to the caller.
    resources.put("keys.get", keys.get)
    resources.put("config", config)
    metrics = Metrics()
    records = records_of(gallery.store)
    tokens = records.tokens if records is not None else MemoryTokens()  # kept in the database when it can
    dispatcher = Dispatcher(gallery, config, pool, resources, Idempotency(tokens))

    async def healthz(request: Request) -> Response:
        try:
            await anyio.to_thread.run_sync(lambda: gallery.list_collections(limit=1))
        except FacetraceError as exc:
            return JSONResponse({"status": "unhealthy", "reason": exc.message}, status_code=503)
        try:
            # Every change and every search needs an audit record written: a database that takes no writes
            # means the server can only answer listings, so it is not ready for traffic.
            await anyio.to_thread.run_sync(gallery.store.check_writable)
        except FacetraceError as exc:
            return JSONResponse({"status": "degraded", "reason": exc.message}, status_code=503)
        return JSONResponse({"status": "ok", "in_flight": pool.in_flight, "model": gallery.model})

    def collection_sizes() -> list[tuple[str, int, int]]:
        if not config.metrics_collections:
            return []
        sizes = []
        for name in gallery.list_collections(limit=MAX_LISTED_COLLECTIONS).items:
            info = gallery.describe_collection(name)
            sizes.append((name, info.face_count, info.user_count))
        return sizes

    async def metrics_endpoint(request: Request) -> Response:
        try:
            sizes = await anyio.to_thread.run_sync(collection_sizes)
        except FacetraceError:
            sizes = []
        text = metrics.render(in_flight=pool.in_flight, collections=sizes)
        extras: list[Callable[[], str]] = resources.get("metrics.extra", list)  # e.g. a Ray cluster's nodes
        for extra in list(extras):
            try:
                text += await anyio.to_thread.run_sync(extra)
            except FacetraceError:
                continue
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Every worker builds its models before the first request (uvicorn listens once this returns).
        started = time.monotonic()
        await anyio.to_thread.run_sync(pool.warm, gallery.engine.warm)
        log.info("%d workers ready in %.1f s", config.workers, time.monotonic() - started)
        for hook in startup_hooks():
            await anyio.to_thread.run_sync(hook, resources, gallery)
        yield
        await anyio.to_thread.run_sync(pool.shutdown)
        resources.close()
        if on_shutdown is not None:
            on_shutdown()

    ui_mount = []
    if dashboard:  # its own sessions: /ui never passes the API's SigV4 middleware, nor the API /ui's
        from facetrace.service.ui import UiMount, create_ui

        ui_mount = [Middleware(UiMount, ui=create_ui(gallery, keys, config, resources))]
    return Starlette(
        routes=[
            Route("/", dispatcher.__call__, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *(
                Route(path, _bind(endpoint, resources, gallery), methods=["GET"])
                for path, endpoint in extra_routes().items()
            ),
        ],
        middleware=[
            *ui_mount,
            *middleware_stack(keys, config, metrics, DeniedAttempts(gallery.store.audit)),
        ],
        lifespan=lifespan,
    )


def _bind(
    endpoint: RouteEndpoint, resources: Resources, gallery: Gallery
) -> Callable[[Request], Awaitable[Response]]:
    async def bound(request: Request) -> Response:
        return await endpoint(request, resources, gallery)

    return bound
