"""A real multi-node Ray cluster inside this machine (``ray.cluster_utils.Cluster``), one per test module.

The head (which cannot be killed: it holds the control plane) and ``WORKER_NODES`` more nodes have
``NODE_CPUS`` *logical* CPUs each — logical, so the scheduler's arithmetic is tested without
the machine having that many cores. Node death is detected fast (health checks every 0.5 s, dead after
three misses) so a test of recovery takes seconds, not Ray's production default of ~30 s; docs/scale.md
gives the production figures. Skipped, with the reason, when ``ray`` is not installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.postgres import (
    pg_url,  # noqa: F401
    postgres_server,  # noqa: F401 (the session's PostgreSQL)
)
from tests.video.conftest import actors  # noqa: F401 (known faces moving through the synthetic streams)

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'facetrace[ray]')")

WORKER_NODES = 2
NODE_CPUS = 4
FAST_FAILURE_DETECTION = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


@dataclass
class LocalCluster:
    cluster: Any
    workers: list[Any]

    @property
    def head_id(self) -> str:
        return str(self.cluster.head_node.node_id)

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def node_of(self, node_id: str) -> Any:
        return next(n for n in self.workers if n.node_id == node_id)

    def kill(self, node: Any) -> None:
        """Kill a node's raylet and everything on it, as if the machine died."""
        self.cluster.remove_node(node, allow_graceful=False)
        self.workers.remove(node)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[LocalCluster]:
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": NODE_CPUS,
            "include_dashboard": False,
            "_system_config": FAST_FAILURE_DETECTION,
        },
    )
    workers = [cluster.add_node(num_cpus=NODE_CPUS) for _ in range(WORKER_NODES)]
    cluster.wait_for_nodes()
    try:
        yield LocalCluster(cluster, workers)
    finally:
        ray.shutdown()
        cluster.shutdown()
