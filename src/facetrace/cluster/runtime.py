"""Joining a Ray cluster: ``connect(address)`` with ``--ray ADDRESS|auto`` or ``FACETRACE_RAY_ADDRESS``.

Ray is an optional dependency (``pip install 'facetrace[ray]'``); importing this module does not import it.
"""

from __future__ import annotations

import os
from typing import Any

from facetrace.errors import ClusterError, InvalidParameterError

__all__ = ["ENV_ADDRESS", "connect"]

ENV_ADDRESS = "FACETRACE_RAY_ADDRESS"


def connect(address: str | None) -> Any:
    """Join the Ray cluster at ``address`` (``auto``: the one this machine belongs to; ``local``: start one
    here), else at ``$FACETRACE_RAY_ADDRESS``, else start a local one; returns the ``ray`` module. When this
    process is already connected (a test's cluster, a Ray job's driver) that connection is used."""
    try:
        import ray
    except ImportError:
        raise InvalidParameterError("Ray is not installed: pip install 'facetrace[ray]'") from None
    if ray.is_initialized():
        return ray
    chosen = address if address is not None else os.environ.get(ENV_ADDRESS) or None
    try:
        if chosen in (None, "local"):
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=chosen, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot join the Ray cluster at {chosen}: {exc}") from None
    return ray
