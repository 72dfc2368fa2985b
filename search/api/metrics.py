"""Prometheus metrics in the text exposition format (version 0.0.4), without a client library.

Request counters and latency histograms are labelled by route template (``/v1/assets/{asset_id}``,
never the raw path, so labels stay few), method and status. Library gauges (assets, vectors,
index size, jobs) are read from the store when scraped.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    """Counters and histograms of one API process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[Labels, int] = defaultdict(int)
        self._latency: dict[Labels, list[float]] = {}  # per bucket counts, then sum, then count
        self._jobs_started: dict[Labels, int] = defaultdict(int)
        self._jobs_finished: dict[Labels, int] = defaultdict(int)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(("method", method), ("route", route), ("status", str(status)))] += 1
            key = (("method", method), ("route", route))
            series = self._latency.setdefault(key, [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    series[i] += 1
            series[-2] += seconds
            series[-1] += 1

    def job_started(self, kind: str) -> None:
        with self._lock:
            self._jobs_started[(("kind", kind),)] += 1

    def job_finished(self, kind: str, status: str) -> None:
        with self._lock:
            self._jobs_finished[(("kind", kind), ("status", status))] += 1

    def render(self, gauges: Iterable[tuple[str, str, str, list[tuple[Labels, float]]]]) -> str:
        """The exposition text: this process's counters, then ``gauges`` (name, type, help, samples)."""
        lines: list[str] = []

        def family(name: str, kind: str, text: str, samples: Iterable[tuple[Labels, float]]) -> None:
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples)

        with self._lock:
            family(
                "assetlens_http_requests_total",
                "counter",
                "HTTP requests by method, route and status.",
                sorted(self._requests.items()),
            )
            lines.append("# HELP assetlens_http_request_duration_seconds HTTP request latency by route.")
            lines.append("# TYPE assetlens_http_request_duration_seconds histogram")
            for labels, series in sorted(self._latency.items()):
                for bound, count in zip(
                    (*BUCKETS, float("inf")), (*series[: len(BUCKETS)], series[-1]), strict=True
                ):
                    bucket = (*labels, ("le", _number(bound)))
                    lines.append(
                        f"assetlens_http_request_duration_seconds_bucket{_labels(bucket)} {_number(count)}"
                    )
                lines.append(f"assetlens_http_request_duration_seconds_sum{_labels(labels)} {series[-2]!r}")
                lines.append(
                    f"assetlens_http_request_duration_seconds_count{_labels(labels)} {_number(series[-1])}"
                )
            family(
                "assetlens_jobs_started_total",
                "counter",
                "Jobs started by this process, by kind.",
                sorted(self._jobs_started.items()),
            )
            family(
                "assetlens_jobs_finished_total",
                "counter",
                "Jobs finished, by kind and status.",
                sorted(self._jobs_finished.items()),
            )
        for name, kind, text, samples in gauges:
            family(name, kind, text, samples)
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """ASGI middleware recording every HTTP request (status 500 when an exception escapes)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, fixed_paths: Iterable[str] = ()) -> None:
        self.app, self.metrics = app, metrics
        self.fixed_paths = frozenset(fixed_paths)  # routes that do not record their template (docs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # The route template, not the path: /v1/assets/{asset_id} is one series, not one per id.
            path = scope["path"]
            template = getattr(scope.get("route"), "path", None) or (
                path if path in self.fixed_paths else "static" if path.startswith("/static/") else "unmatched"
            )
            self.metrics.observe_request(scope["method"], template, status, time.perf_counter() - started)
