"""``facetrace serve``: Amazon Rekognition's face API (JSON 1.1 over HTTP, SigV4) backed by the library.

Build an app with ``create_app(gallery, keys, config)``; add operations with ``register_operation`` or the
``operation`` decorator (see ``facetrace.service.operations``). ``docs/server.md`` is the operator's guide.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


# Imported on first use (PEP 562): ``facetrace keys`` needs the key store, not the web server.
_LAZY = {
    "create_app": "facetrace.service.app",
    "ServiceConfig": "facetrace.service.config",
    **dict.fromkeys(("AccessKey", "KeyStore", "Permission"), "facetrace.service.keys"),
    **dict.fromkeys(("Context", "operation", "register_operation"), "facetrace.service.operations"),
    **dict.fromkeys(("ServerThread", "run"), "facetrace.service.server"),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'facetrace.service' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
