"""Running the app with uvicorn: in the foreground (``facetrace serve``) or in a thread (tests, benchmarks).

Shutdown is graceful: on SIGINT/SIGTERM uvicorn stops accepting, lets in-flight requests finish (up to
``shutdown_timeout``), then the app's lifespan waits for the worker pool and closes what it was given.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

from facetrace.service.config import ServiceConfig
from facetrace.service.slow_clients import MAX_HEADER_BYTES, header_deadline_protocol

__all__ = ["ServerThread", "run"]


def _uvicorn_config(app: ASGIApp, config: ServiceConfig) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(config.shutdown_timeout),
        server_header=False,
        http=header_deadline_protocol(config.header_timeout),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=config.keep_alive_timeout,
    )


def run(app: ASGIApp, config: ServiceConfig) -> None:
    """Serve until interrupted (blocks)."""
    uvicorn.Server(_uvicorn_config(app, config)).run()


class ServerThread:
    """Serve ``app`` in a background thread; ``with ServerThread(app, config) as s: s.url``.

    With ``config.port`` 0 the server takes a free port; ``port`` and ``url`` are known once started.
    """

    def __init__(self, app: ASGIApp, config: ServiceConfig | None = None) -> None:
        self.config = config or ServiceConfig()
        self._server = uvicorn.Server(_uvicorn_config(app, self.config))
        self._thread = threading.Thread(target=self._server.run, name="facetrace-server", daemon=True)
        self.port = self.config.port
        self.url = ""

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        # (A socket bound by the caller and handed to uvicorn costs ~40 ms per request on loopback; let it bind.)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        self.url = f"http://{self.config.host}:{self.port}"
        return self

    @property
    def stopping(self) -> bool:
        """True once ``stop`` has been asked for (in-flight requests may still be finishing)."""
        return bool(self._server.should_exit)

    def stop(self, timeout: float = 60.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
