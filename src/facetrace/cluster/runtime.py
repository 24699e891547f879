"""Connecting to a Ray cluster: the one place facetrace imports ``ray`` for the first time.

Where the cluster is comes from ``--ray ADDRESS|auto`` (a command's option) or else ``FACETRACE_RAY_ADDRESS``;
neither set means no cluster — the embedded default, which never imports ``ray``. ``auto`` joins the cluster
this machine is part of (``ray start`` ran here); ``ray://host:10001`` goes through Ray Client (e.g. the
head service of a KubeRay ``RayCluster``); ``host:6379`` joins as a driver on a cluster node.

Every facetrace actor and job lives in one Ray namespace (``NAMESPACE``) so that named actors (one per stream
processor) are found again by any server or CLI connected to the same cluster.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from facetrace.errors import InvalidParameterError, StreamError

__all__ = ["ADDRESS_ENV", "NAMESPACE", "RayCluster", "configured_address", "connect"]

ADDRESS_ENV = "FACETRACE_RAY_ADDRESS"
NAMESPACE = "facetrace"

_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class RayCluster:
    """A connection to a Ray cluster (``ray.init`` has run in this process). ``address`` is what was asked
    for (``auto``, ``ray://…``, ``host:port``); ``namespace`` the namespace of facetrace's named actors."""

    address: str
    namespace: str = NAMESPACE

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes as Ray reports them (``ray.nodes()``): alive or dead, resources, address."""
        import ray

        return list(ray.nodes())  # type: ignore[no-untyped-call]

    def alive_nodes(self) -> list[dict[str, Any]]:
        return [n for n in self.nodes() if n.get("Alive")]


def configured_address(address: str | None = None) -> str | None:
    """The cluster to use: ``address`` (``--ray``) if given, else ``$FACETRACE_RAY_ADDRESS``, else None (no
    cluster: run in-process). Blank values count as unset."""
    chosen = address if address is not None else os.environ.get(ADDRESS_ENV)
    if chosen is None or not chosen.strip():
        return None
    chosen = chosen.strip()
    if len(chosen) > 1024 or any(c.isspace() for c in chosen):
        raise InvalidParameterError(f"invalid Ray address {chosen[:64]!r}")
    return chosen


def connect(address: str | None, *, namespace: str = NAMESPACE) -> RayCluster:
    """Connect this process to the Ray cluster at ``address`` (None: ``$FACETRACE_RAY_ADDRESS``, else the
    connection this process already has), once: connecting again returns the same connection.

    ``InvalidParameterError`` when no cluster is configured or ``ray`` is not installed (the ``ray`` extra);
    ``StreamError`` when the cluster cannot be reached. Ray's own log lines are kept to warnings."""
    chosen = configured_address(address)
    try:
        import ray
    except ImportError:
        raise InvalidParameterError(
            "running on a Ray cluster needs the ray extra: pip install 'facetrace[ray]'"
        ) from None
    if chosen is None:
        if ray.is_initialized():  # a Ray job's driver, a test's cluster: the connection this process has
            return RayCluster("auto", namespace)
        raise InvalidParameterError(f"no Ray cluster configured: pass --ray ADDRESS|auto or set {ADDRESS_ENV}")
    with _lock:
        if ray.is_initialized():
            return RayCluster(chosen, namespace)
        try:
            ray.init(
                address=chosen,
                namespace=namespace,
                logging_level=logging.WARNING,
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise StreamError(f"cannot connect to the Ray cluster at {chosen}: {exc}") from None
    return RayCluster(chosen, namespace)
