"""The operator's dashboard: server-rendered pages under ``/ui/`` of ``facetrace serve`` (docs/dashboard.md).

It is another door into the library, like the API and the CLI: pages call ``Gallery`` with the signed-in key as
the caller, so searches and changes are audited by the library; listings of enrolment data are audited here
(``pages.audited_read``). Requests under ``/ui`` never reach the API's SigV4 middleware (``UiMount``) and
API requests never reach the dashboard: the two authenticate separately, and neither weakens the other.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from facetrace.service.ui.pages import create_ui

__all__ = ["UI_PREFIX", "UiMount", "create_ui"]

UI_PREFIX = "/ui"


class UiMount:
    """Send ``/ui`` and ``/ui/...`` to the dashboard app, everything else to the API's middleware stack."""

    def __init__(self, app: ASGIApp, ui: ASGIApp) -> None:
        self.app = app
        self.ui = ui

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == UI_PREFIX or path.startswith(UI_PREFIX + "/"):
            await self.ui(scope, receive, send)
        else:
            await self.app(scope, receive, send)
