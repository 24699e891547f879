"""Exceptions become AWS error responses here, and only here (``service.errors.aws_error`` picks the type)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facetrace.service.errors import aws_error
from facetrace.service.protocol import error_response


class ErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        body_read = False

        async def tracking_receive() -> Message:
            nonlocal body_read
            message = await receive()
            body_read = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, tracking_receive, tracking_send)
        except Exception as exc:
            if started:  # too late to answer with an error; let the server close the connection
                raise
            response = error_response(aws_error(exc))
            if not body_read and _declares_body(scope):
                # Refused before its body was read (no key, too slow, too big): close rather than wait for the
                # rest of a body nobody will read.
                response.headers["Connection"] = "close"
            await response(scope, receive, send)


def _declares_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.strip() not in (b"", b"0"):
            return True
        if name == b"transfer-encoding":
            return True
    return False
