"""A small local Ray cluster for one test module: two nodes of one logical CPU each, inside this machine.

``ray.cluster_utils.Cluster`` starts real raylets and workers (a head and one more node) in a few seconds;
logical CPUs keep the test cheap on a 2-core machine. The driver (the test process) joins it, so
``facetrace.cluster.runtime.connect`` finds Ray initialised and uses it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def local_cluster(nodes: int = 2, cpus_per_node: int = 1) -> Iterator[str]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": cpus_per_node, "include_dashboard": False, "object_store_memory": 80 << 20},
    )
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=cpus_per_node, object_store_memory=80 << 20)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()
