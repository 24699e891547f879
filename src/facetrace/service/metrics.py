"""Prometheus text exposition (format 0.0.4) without a client library: counters, a latency histogram, gauges.

Series:
- ``facetrace_requests_total{operation,status}``: requests answered, by HTTP status
- ``facetrace_errors_total{operation,type}``: error answers, by Rekognition error type
- ``facetrace_request_duration_seconds{operation}``: histogram of time to answer
- ``facetrace_in_flight_requests``: admitted to the worker pool now
- ``facetrace_collection_faces{collection}``, ``facetrace_collection_users{collection}``: sizes, at scrape time

Operation labels are limited to names in Rekognition's model (anything else is ``unknown``), so a hostile
client cannot grow the label set.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable

from facetrace.service.validation import service_model

__all__ = ["BUCKETS", "Metrics"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known = frozenset(service_model().operation_names)
        self._requests: dict[tuple[str, int], int] = defaultdict(int)
        self._errors: dict[tuple[str, str], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)

    def observe(self, operation: str, status: int, error: str, seconds: float) -> None:
        operation = operation if operation in self._known else "unknown"
        with self._lock:
            self._requests[(operation, status)] += 1
            if error:
                self._errors[(operation, error[:64])] += 1
            counts = self._buckets.setdefault(operation, [0] * len(BUCKETS))
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[index] += 1
            self._sums[operation] += seconds
            self._counts[operation] += 1

    def render(self, *, in_flight: int, collections: Iterable[tuple[str, int, int]] = ()) -> str:
        lines: list[str] = []
        with self._lock:
            lines += [
                "# HELP facetrace_requests_total Requests answered, by operation and HTTP status.",
                "# TYPE facetrace_requests_total counter",
            ]
            for (op, status), n in sorted(self._requests.items()):
                lines.append(f'facetrace_requests_total{{operation="{op}",status="{status}"}} {n}')
            lines += [
                "# HELP facetrace_errors_total Error answers, by operation and Rekognition error type.",
                "# TYPE facetrace_errors_total counter",
            ]
            for (op, kind), n in sorted(self._errors.items()):
                lines.append(f'facetrace_errors_total{{operation="{op}",type="{_label(kind)}"}} {n}')
            lines += [
                "# HELP facetrace_request_duration_seconds Time to answer, by operation.",
                "# TYPE facetrace_request_duration_seconds histogram",
            ]
            for op in sorted(self._buckets):
                for bound, n in zip(BUCKETS, self._buckets[op], strict=True):
                    lines.append(f'facetrace_request_duration_seconds_bucket{{operation="{op}",le="{bound}"}} {n}')
                lines.append(
                    f'facetrace_request_duration_seconds_bucket{{operation="{op}",le="+Inf"}} {self._counts[op]}'
                )
                lines.append(f'facetrace_request_duration_seconds_sum{{operation="{op}"}} {self._sums[op]:.6f}')
                lines.append(f'facetrace_request_duration_seconds_count{{operation="{op}"}} {self._counts[op]}')
        lines += [
            "# HELP facetrace_in_flight_requests Requests admitted to the worker pool.",
            "# TYPE facetrace_in_flight_requests gauge",
            f"facetrace_in_flight_requests {in_flight}",
            "# HELP facetrace_collection_faces Faces stored, by collection.",
            "# TYPE facetrace_collection_faces gauge",
        ]
        users = []
        for name, faces, user_count in collections:
            lines.append(f'facetrace_collection_faces{{collection="{_label(name)}"}} {faces}')
            users.append(f'facetrace_collection_users{{collection="{_label(name)}"}} {user_count}')
        lines += [
            "# HELP facetrace_collection_users Users, by collection.",
            "# TYPE facetrace_collection_users gauge",
        ]
        lines += users
        return "\n".join(lines) + "\n"
