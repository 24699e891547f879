"""``facetrace serve``: Amazon Rekognition's face API (JSON 1.1 over HTTP, SigV4) backed by the library.

Build an app with ``create_app(gallery, keys, config)``; add operations with ``register_operation`` or the
``operation`` decorator (see ``facetrace.service.operations``). ``docs/server.md`` is the operator's guide.
"""

from __future__ import annotations

from facetrace.service.app import create_app
from facetrace.service.config import ServiceConfig
from facetrace.service.keys import AccessKey, KeyStore, Permission
from facetrace.service.operations import Context, operation, register_operation
from facetrace.service.server import ServerThread, run

__all__ = [
    "AccessKey",
    "Context",
    "KeyStore",
    "Permission",
    "ServerThread",
    "ServiceConfig",
    "create_app",
    "operation",
    "register_operation",
    "run",
]
