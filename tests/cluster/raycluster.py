"""A small local Ray cluster for one test module: two nodes of one logical CPU each, inside this machine.

``ray.cluster_utils.Cluster`` starts real raylets and workers (a head and one more node) in a few seconds;
logical CPUs keep the test cheap on a 2-core machine. The driver (the test process) joins it, so
``facetrace.cluster.runtime.connect`` finds Ray initialised and uses it. Ray allows one connection per
process: when one is open already (a cluster another fixture started), it is used as it is.
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

    if ray.is_initialized():  # another module's cluster is still up (one per process): use it
        yield str(ray.get_runtime_context().gcs_address)
        return

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
