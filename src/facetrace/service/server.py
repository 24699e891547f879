"""Running the app with uvicorn: in the foreground (``facetrace serve``) or in a thread (tests, benchmarks).

Shutdown is graceful: on SIGINT/SIGTERM uvicorn stops accepting, lets in-flight requests finish (up to
``shutdown_timeout``), then the app's lifespan waits for the worker pool and closes what it was given.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

from facetrace.service.config import ServiceConfig

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
    )


def run(app: ASGIApp, config: ServiceConfig) -> None:
    """Serve until interrupted (blocks)."""
    uvicorn.Server(_uvicorn_config(app, config)).run()


class ServerThread:
    """Serve ``app`` on ``host``:a free port in a background thread; ``with ServerThread(app) as s: s.url``."""

    def __init__(self, app: ASGIApp, config: ServiceConfig | None = None) -> None:
        self.config = config or ServiceConfig()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((self.config.host, self.config.port))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{self.config.host}:{self.port}"
        self._server = uvicorn.Server(_uvicorn_config(app, self.config))
        self._thread = threading.Thread(target=self._serve, name="facetrace-server", daemon=True)

    def _serve(self) -> None:
        self._server.run(sockets=[self._socket])

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    @property
    def stopping(self) -> bool:
        """True once ``stop`` has been asked for (in-flight requests may still be finishing)."""
        return bool(self._server.should_exit)

    def stop(self, timeout: float = 60.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
