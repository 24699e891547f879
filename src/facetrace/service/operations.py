"""The handler table: Rekognition operation name → handler, permission and the collection it touches.

Adding operations (the video engineer's stored-video and stream-processor operations, for instance) is one
module with decorated functions; nothing else changes::

    # src/facetrace/service/handlers/video.py   (every module in that package is loaded at start-up)
    from facetrace.service.operations import Context, Permission, operation

    @operation("StartFaceSearch", Permission.WRITE)               # CollectionId is checked for the key
    def start_face_search(ctx: Context, request: dict) -> dict:
        jobs = ctx.resources.get("video.jobs", lambda: JobRunner(ctx.gallery))   # one per server, closed at exit
        return {"JobId": jobs.start(request, caller=ctx.caller)}

    @operation("GetFaceSearch", Permission.READ, collection_param=None)   # no CollectionId in the request
    def get_face_search(ctx: Context, request: dict) -> dict: ...

A module elsewhere can call ``register_operation(name, handler, permission)`` and be listed in
``load_handlers(extra=...)``. The contract for a handler:

- it runs in a worker thread (it may block on inference); it receives the request already validated against
  botocore's model (blobs decoded to ``bytes``) and returns the response as a JSON-ready dict;
- it raises ``FacetraceError`` subclasses (or ``ServiceError``) for failures; ``service.errors`` maps them;
- it stays a translation: the work belongs in the library, called with ``caller=ctx.caller`` so it is audited.

The name must be an operation in botocore's Rekognition model (that is what the request is validated
against); registering a name twice is an error.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from facetrace.audit import Caller
from facetrace.gallery import Gallery
from facetrace.service.config import ServiceConfig
from facetrace.service.images import ImageResolver
from facetrace.service.keys import AccessKey, Permission
from facetrace.service.validation import service_model

__all__ = [
    "Context",
    "Handler",
    "Operation",
    "Permission",
    "Resources",
    "RouteEndpoint",
    "StartupHook",
    "extra_routes",
    "load_handlers",
    "lookup",
    "on_startup",
    "operation",
    "operations",
    "register_operation",
    "route",
    "startup_hooks",
    "unregister_operation",
]

JSON = dict[str, Any]
T = TypeVar("T")


class Resources:
    """Long-lived objects handler modules share (job runners, stream managers): one per server.

    ``get(name, factory)`` builds the object on first use; anything with a ``close()`` is closed, in reverse
    order of creation, when the server shuts down.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()  # a factory may itself ``get`` what it depends on
        self._items: dict[str, Any] = {}

    def get(self, name: str, factory: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._items:
                self._items[name] = factory()
            return self._items[name]  # type: ignore[no-any-return]

    def put(self, name: str, value: object) -> None:
        """Provide ``name`` up front (e.g. the server's home directory) instead of building it on first use."""
        with self._lock:
            self._items[name] = value

    def close(self) -> None:
        with self._lock:
            items, self._items = list(self._items.values()), {}
        for item in reversed(items):
            close = getattr(item, "close", None)
            if callable(close):
                close()


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler may use for one request."""

    gallery: Gallery
    caller: Caller  # the access key id and the X-Facetrace-Purpose header, for the audit log
    key: AccessKey
    images: ImageResolver
    config: ServiceConfig
    resources: Resources
    request_id: str = ""


Handler = Callable[[Context, JSON], JSON]


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    handler: Handler
    permission: Permission
    collection_param: str | None = "CollectionId"  # request member naming the collection, checked per key


_TABLE: dict[str, Operation] = {}
_TABLE_LOCK = threading.Lock()
HANDLER_PACKAGE = "facetrace.service.handlers"


def register_operation(
    name: str, handler: Handler, permission: Permission, *, collection_param: str | None = "CollectionId"
) -> Operation:
    """Add ``name`` to the table. Raises ``ValueError`` for a name Rekognition does not define or one taken."""
    if name not in service_model().operation_names:
        raise ValueError(f"{name} is not an operation in botocore's Rekognition model")
    entry = Operation(name, handler, permission, collection_param)
    with _TABLE_LOCK:
        current = _TABLE.get(name)
        if current is not None and current.handler is not handler:
            raise ValueError(f"{name} is registered already (by {current.handler.__module__})")
        _TABLE[name] = entry
    return entry


def unregister_operation(name: str) -> None:
    """Remove ``name`` from the table (tests, or a module that replaces a handler)."""
    with _TABLE_LOCK:
        _TABLE.pop(name, None)


def operation(
    name: str, permission: Permission, *, collection_param: str | None = "CollectionId"
) -> Callable[[Handler], Handler]:
    """Decorator form of ``register_operation``."""

    def decorate(handler: Handler) -> Handler:
        register_operation(name, handler, permission, collection_param=collection_param)
        return handler

    return decorate


StartupHook = Callable[[Resources, Gallery], None]
RouteEndpoint = Callable[[Request, Resources, Gallery], Awaitable[Response]]
_STARTUP: dict[str, StartupHook] = {}
_ROUTES: dict[str, RouteEndpoint] = {}


def on_startup(hook: StartupHook) -> StartupHook:
    """Run ``hook(resources, gallery)`` (in a worker thread) when the server starts, e.g. to resume work that
    was running before a restart."""
    with _TABLE_LOCK:
        _STARTUP[f"{hook.__module__}.{hook.__qualname__}"] = hook
    return hook


def route(path: str) -> Callable[[RouteEndpoint], RouteEndpoint]:
    """Add ``GET path`` to the app, behind the same middleware (SigV4 included) as ``POST /``. The endpoint
    reads the caller's key from ``request.scope[KEY_SCOPE]`` and checks its permission itself."""

    def decorate(endpoint: RouteEndpoint) -> RouteEndpoint:
        with _TABLE_LOCK:
            if path in ("/", "/healthz", "/metrics"):
                raise ValueError(f"{path} is a built-in route")
            _ROUTES[path] = endpoint
        return endpoint

    return decorate


def startup_hooks() -> list[StartupHook]:
    with _TABLE_LOCK:
        return list(_STARTUP.values())


def extra_routes() -> dict[str, RouteEndpoint]:
    with _TABLE_LOCK:
        return dict(_ROUTES)


def load_handlers(extra: Iterable[str] = ()) -> None:
    """Import every module in ``facetrace.service.handlers`` (and the ``extra`` modules), registering them."""
    package = importlib.import_module(HANDLER_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{HANDLER_PACKAGE}.{info.name}")
    for module in extra:
        importlib.import_module(module)


def lookup(name: str) -> Operation | None:
    return _TABLE.get(name)


def operations() -> dict[str, Operation]:
    """A snapshot of the table."""
    with _TABLE_LOCK:
        return dict(_TABLE)
