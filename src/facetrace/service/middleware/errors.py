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

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late to answer with an error; let the server close the connection
                raise
            await error_response(aws_error(exc))(scope, receive, send)
