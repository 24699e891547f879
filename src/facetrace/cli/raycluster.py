"""`facetrace ray status`: the Ray cluster that runs stream processors — its nodes, the processors on
each, the CPU they reserved and use, and the frames they dropped (docs/scale.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from facetrace.cli import add_command
from facetrace.cli.output import emit
from facetrace.errors import InvalidParameterError


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(subparsers, "ray", description="See docs/scale.md.")
    commands = parser.add_subparsers(dest="cluster_command", metavar="COMMAND", required=True)
    status = commands.add_parser(
        "status",
        parents=[common],
        help="nodes, processors per node, CPU reserved/used, frames dropped",
        description="Needs the processors' PostgreSQL database (--database-url) and the cluster (--ray).",
    )
    status.add_argument("--ray", metavar="ADDRESS|auto", help="the cluster (default: $FACETRACE_RAY_ADDRESS)")
    status.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from facetrace.app import open_gallery
    from facetrace.cluster.processors import RayStreamProcessors
    from facetrace.cluster.runtime import configured_address, connect
    from facetrace.store import database_url, open_store, records_of

    address = configured_address(args.ray)
    if address is None:
        raise InvalidParameterError("no Ray cluster: pass --ray ADDRESS|auto or set FACETRACE_RAY_ADDRESS")
    url = database_url(args.database_url)
    if url is None:
        raise InvalidParameterError("stream processors on Ray keep their state in PostgreSQL: pass --database-url")
    store = open_store(Path(args.home) if args.home else None, url=url, listen=False)
    try:
        records = records_of(store)
        if records is None:  # pragma: no cover - PostgreSQL keeps records
            raise InvalidParameterError("this store keeps no stream processors")
        gallery = open_gallery(args.home, store=store)
        connect(address)
        processors = RayStreamProcessors(gallery, repository=records.processors, database_url=url)
        status = processors.cluster_status()
    finally:
        store.close()

    def render(console: Any) -> None:
        for node in status["Nodes"]:
            state = "alive" if node["Alive"] else "dead"
            console.print(
                f"{node['NodeId'][:12]}  {node['Address']:<15} {state:<5}  cpus {node['Cpus']:>5.1f}  "
                f"reserved {node['CpuReserved']:>5.2f}  used {node['CpuUsed']:>5.2f}  "
                f"analysed {node['FramesAnalysed']:>7}  dropped {node['FramesDropped']:>6}  "
                f"{', '.join(node['Processors']) or '-'}",
                markup=False,
            )
        if status["Unplaced"]:
            console.print(f"waiting for a node: {', '.join(status['Unplaced'])}", markup=False)

    emit(args, status, render)
    return 0
