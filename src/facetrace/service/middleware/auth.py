"""Verify the SigV4 signature of every request except the open paths, and attach the caller's key."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from facetrace.errors import AuthenticationError
from facetrace.service import sigv4
from facetrace.service.dispatch import KEY_SCOPE
from facetrace.service.keys import KeyStore
from facetrace.service.protocol import read_body

_THREAD_HASH_BYTES = 256 * 1024  # hash big bodies off the event loop


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        keys: KeyStore,
        *,
        max_skew: float = 900.0,
        open_paths: frozenset[str] = frozenset({"/healthz", "/metrics"}),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.keys = keys
        self.max_skew = max_skew
        self.open_paths = open_paths
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"] == "GET" and scope["path"] in self.open_paths):
            await self.app(scope, receive, send)
            return
        body = await read_body(scope, receive)
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value

        def check() -> sigv4.Credential:
            return sigv4.verify(
                method=scope["method"],
                raw_path=scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?")[0],
                query_string=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
                body=body,
                lookup_secret=self.keys.secret,
                now=self.clock(),
                max_skew=self.max_skew,
            )

        credential = check() if len(body) < _THREAD_HASH_BYTES else await anyio.to_thread.run_sync(check)
        key = self.keys.get(credential.access_key_id)
        if key is None:
            raise AuthenticationError("The security token included in the request is invalid.")
        scope[KEY_SCOPE] = key
        await self.app(scope, receive, send)
