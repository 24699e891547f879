"""`facetrace serve`: Amazon Rekognition's face API on the wire, over the embedded store or PostgreSQL."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import time
from pathlib import Path
from typing import Any

from facetrace.cli import add_command
from facetrace.cli.common import open_engine, with_recognizer
from facetrace.cli.output import stderr
from facetrace.errors import InvalidParameterError, StoreError

log = logging.getLogger(__name__)


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        subparsers,
        "serve",
        parents=[with_recognizer(common)],
        description="Serve Amazon Rekognition's face operations, authenticated with `facetrace keys` (SigV4). "
        "See docs/server.md.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8089, help="TCP port (default 8089)")
    parser.add_argument(
        "--bucket",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="serve the files under PATH as S3 bucket NAME for Image.S3Object (repeatable)",
    )
    parser.add_argument(
        "--camera-allow",
        action="append",
        default=[],
        metavar="PATTERN",
        help="video sources requests may name, e.g. 'rtsp://10.0.0.*/**' (repeatable; * within a path segment, "
        "** across; loopback/link-local hosts only when named literally). Default: none",
    )
    parser.add_argument("--workers", type=int, help="threads running library calls (default: cores + 2)")
    parser.add_argument(
        "--inference-threads", type=int, help="recognizer instances shared by the workers (default: cores)"
    )
    parser.add_argument("--embed-batch", type=int, help="faces of concurrent requests per recognizer call (1)")
    parser.add_argument("--max-pending", type=int, default=32, help="requests that may wait for a worker")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second per access key")
    parser.add_argument("--burst", type=int, default=100, help="burst size per access key")
    parser.add_argument("--max-body-bytes", type=int, help="request body limit per image (default ~6.8 MiB)")
    parser.add_argument(
        "--decode-budget-mb", type=int, help="MiB decoding images may take at once, all requests (default 1536)"
    )
    parser.add_argument("--max-clock-skew", type=float, default=900.0, help="seconds (default 900)")
    parser.add_argument(
        "--collection-metrics", action="store_true", help="name collections and their sizes on /metrics"
    )
    parser.add_argument("--no-collection-metrics", action="store_true", help=argparse.SUPPRESS)  # the default now
    parser.add_argument(
        "--ray",
        metavar="ADDRESS|auto",
        help="run stream processors as actors on this Ray cluster (default: $FACETRACE_RAY_ADDRESS; none: in "
        "this process). Needs --database-url and the ray extra; see docs/scale.md",
    )
    parser.set_defaults(func=_serve)


def _buckets(values: list[str]) -> dict[str, Path]:
    buckets: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise InvalidParameterError(f"--bucket takes NAME=PATH, not {value!r}")
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise InvalidParameterError(f"--bucket {name}: {folder} is not a directory")
        buckets[name] = folder
    return buckets


def _config(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from facetrace.service import ServiceConfig

    settings: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "buckets": _buckets(args.bucket),
        "max_pending": args.max_pending,
        "rate": args.rate,
        "burst": args.burst,
        "max_clock_skew": args.max_clock_skew,
        "metrics_collections": args.collection_metrics and not args.no_collection_metrics,
        "camera_allow": tuple(args.camera_allow),
    }
    if args.decode_budget_mb is not None:
        settings["decode_budget_mb"] = args.decode_budget_mb
    for name in ("workers", "inference_threads", "embed_batch"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    if args.max_body_bytes is not None:
        settings["max_body_bytes"] = args.max_body_bytes
    try:
        return ServiceConfig(**settings)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidParameterError(problems) from None


def _serve(args: argparse.Namespace) -> int:
    import cv2

    from facetrace.app import open_gallery
    from facetrace.home import ensure_home
    from facetrace.service import KeyStore, create_app, run
    from facetrace.store import database_url, open_store, records_of

    config = _config(args)
    cluster = _cluster(args.ray)
    # One OpenCV thread per worker: its own pool on top of the workers would oversubscribe the cores.
    cv2.setNumThreads(1)
    # before the store: a bad --recognizer/--calibration fails fast
    engine = open_engine(args, embed_runners=config.inference_threads, embed_batch=config.embed_batch)
    home = ensure_home(Path(args.home) if args.home else None)
    store = open_store(home, url=database_url(args.database_url))
    preload = getattr(store, "preload", None)
    if preload is not None:  # every collection's vectors in memory before the first request
        started = time.monotonic()
        faces = preload()
        where = getattr(store, "url", "the database")  # the URL with its password masked
        stderr.print(f"facetrace: {faces} faces loaded in {time.monotonic() - started:.1f} s from {where}")
    gallery = open_gallery(home, store=store, engine=engine)  # audited in its own database (store.audit)
    records = records_of(gallery.store)
    if records is None:  # pragma: no cover - open_store gives SQLite or PostgreSQL, both keep keys
        raise StoreError("this store keeps no access keys")
    keys = KeyStore(records.keys)  # in the store's database: on PostgreSQL, shared by every server

    def close() -> None:
        gallery.store.close()
        keys.close()

    app = create_app(gallery, keys, config, on_shutdown=close, home=home)
    if not _is_loopback(config.host):
        stderr.print(f"[yellow]warning:[/] listening on {config.host}: reachable from other machines")
    if not keys.list():
        stderr.print("[yellow]warning:[/] no access keys yet; create one with `facetrace keys create`")
    if args.recognizer or args.calibration:
        stderr.print(f"facetrace: recognizer {engine.model.key}, calibration {args.calibration}")
    if cluster is not None:
        stderr.print(f"facetrace: stream processors run on the Ray cluster at {cluster}")
    stderr.print(f"facetrace: Rekognition API on http://{config.host}:{config.port} (home {home})")
    stderr.print(f"facetrace: dashboard on http://{config.host}:{config.port}/ui/ (sign in with an access key)")
    run(app, config)
    return 0


def _cluster(address: str | None) -> str | None:
    """The Ray cluster for stream processors (``--ray``, else ``$FACETRACE_RAY_ADDRESS``), connected now so
    a wrong address fails before the server starts; the video services find it in the environment."""
    import os

    from facetrace.cluster.runtime import ADDRESS_ENV, configured_address, connect

    chosen = configured_address(address)
    if chosen is None:
        return None
    os.environ[ADDRESS_ENV] = chosen
    connect(chosen)
    return chosen


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
