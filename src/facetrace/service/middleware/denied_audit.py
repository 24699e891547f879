"""Refused requests (bad or missing signature, AccessDenied) leave an audit record, rate limited
(``service/access_audit.DeniedAttempts``); the refusal itself is still answered by ``ErrorMiddleware``."""

from __future__ import annotations

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from facetrace.errors import AccessDeniedError, AuthenticationError
from facetrace.service.access_audit import DeniedAttempts
from facetrace.service.dispatch import KEY_SCOPE


class DeniedAuditMiddleware:
    def __init__(self, app: ASGIApp, denied: DeniedAttempts) -> None:
        self.app = app
        self.denied = denied

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except (AccessDeniedError, AuthenticationError) as exc:
            error_type = getattr(exc, "code", None) or type(exc).__name__
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            key = scope.get(KEY_SCOPE)
            client = scope.get("client")

            def record() -> None:
                self.denied.record(
                    error_type,
                    key_id=getattr(key, "access_key_id", None),
                    authorization=headers.get("authorization"),
                    target=headers.get("x-amz-target") or scope.get("path"),
                    client=client[0] if client else None,
                )

            await anyio.to_thread.run_sync(record)
            raise
