"""facetrace on a Ray cluster (optional: ``pip install 'facetrace[ray]'``, docs/scale.md).

Nothing here is imported by the embedded default (threads in one process, SQLite): ``ray`` is imported only
when a command or the server is asked to use a cluster (``--ray ADDRESS|auto`` or ``FACETRACE_RAY_ADDRESS``).

- ``runtime``: ``connect`` to a cluster (the one entry point every Ray feature goes through).
- ``processors``: stream processors as named, detached, restartable Ray actors, fenced by database leases.
- ``review``: their review items and unknown faces, each claimed once under the actor's lease.
"""

from __future__ import annotations

from facetrace.cluster.runtime import ADDRESS_ENV, NAMESPACE, RayCluster, configured_address, connect

__all__ = ["ADDRESS_ENV", "NAMESPACE", "RayCluster", "configured_address", "connect"]
