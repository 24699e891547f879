"""Verify the SigV4 signature of every request except the open paths, and attach the caller's key.

The Authorization header's shape and its access key id are checked before the body is read; the body bytes
then held for the signature check count against ``UnverifiedBytes`` (shared by every request).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facetrace.errors import AuthenticationError
from facetrace.service import sigv4
from facetrace.service.dispatch import KEY_SCOPE
from facetrace.service.keys import KeyStore
from facetrace.service.protocol import read_body
from facetrace.service.slow_clients import UnverifiedBytes

_THREAD_HASH_BYTES = 256 * 1024  # hash big bodies off the event loop


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        keys: KeyStore,
        *,
        max_skew: float = 900.0,
        open_paths: frozenset[str] = frozenset({"/healthz"}),
        loopback_paths: frozenset[str] = frozenset({"/metrics"}),
        clock: Callable[[], float] = time.time,
        unverified: UnverifiedBytes | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.max_skew = max_skew
        self.open_paths = open_paths
        self.loopback_paths = loopback_paths
        self.clock = clock
        self.unverified = unverified or UnverifiedBytes(64 * 1024 * 1024)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"] == "GET" and scope["path"] in self.open_paths):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET" and scope["path"] in self.loopback_paths and _local_unsigned(scope):
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        # Before a byte of body is read: a well-formed Authorization header naming a key that exists.
        if self.keys.get(sigv4.claimed_credential(headers).access_key_id) is None:
            raise AuthenticationError(
                "The security token included in the request is invalid.", "UnrecognizedClientException"
            )
        held = 0

        async def counted_receive() -> Message:
            nonlocal held
            message = await receive()
            size = len(message.get("body", b""))
            if size:
                self.unverified.take(size)
                held += size
            return message

        try:
            body = await read_body(scope, counted_receive)
        finally:
            self.unverified.give(held)  # read whole (or given up): it is the request's own from here on

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


_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def _local_unsigned(scope: Scope) -> bool:
    """An unsigned request from this machine that names this machine in its Host header. The Host check stops
    DNS rebinding: a web page in a local browser reaches loopback under its own host name, not 127.0.0.1."""
    client = scope.get("client")
    if client is None or client[0] not in ("127.0.0.1", "::1"):
        return False
    host = ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return False  # signed: verified like any request
        if name == b"host":
            host = value.decode("latin-1").lower()
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return host in _LOCAL_HOSTS
