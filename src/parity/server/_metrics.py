"""Prometheus metrics of one server process (its own registry, so several servers can coexist).

Exposed at ``GET /metrics``. Labels: ``model`` (``_unknown`` for names the server does not
serve, so clients cannot blow up label cardinality), ``version``, ``protocol`` (``rest``,
``v1``, ``grpc``) and ``status`` (HTTP status code for REST, gRPC code name for gRPC).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["UNKNOWN_MODEL", "Metrics"]

UNKNOWN_MODEL = "_unknown"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)

LakeStats = Callable[[], tuple[int, int, int]]
QueueDepths = Callable[[], list[tuple[str, str, int]]]


class _Callbacks(Collector):
    """Values read at scrape time from the lake writer and the batchers."""

    def __init__(self) -> None:
        self.lake: LakeStats | None = None
        self.queues: QueueDepths | None = None

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Yield the lake counters and the queue depth gauge."""
        written, dropped, queued = self.lake() if self.lake is not None else (0, 0, 0)
        yield CounterMetricFamily("parity_lake_rows_written", "Rows written to the prediction lake.", value=written)
        yield CounterMetricFamily(
            "parity_lake_rows_dropped", "Rows the prediction lake dropped (queue full or write failed).", value=dropped
        )
        yield GaugeMetricFamily("parity_lake_rows_queued", "Rows waiting for the next lake flush.", value=queued)
        depth = GaugeMetricFamily("parity_queue_depth", "Requests waiting for a batch.", labels=["model", "version"])
        for model, version, n in self.queues() if self.queues is not None else []:
            depth.add_metric([model, version], n)
        yield depth


class Metrics:
    """All metrics of one server process."""

    def __init__(self) -> None:
        # The *_created series double the exposition size and no dashboard reads them.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "parity_requests", "Inference requests.", ["model", "version", "protocol", "status"], registry=r
        )
        self.errors = Counter(
            "parity_request_errors",
            "Failed inference requests.",
            ["model", "version", "protocol", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "parity_request_latency_seconds",
            "Inference request latency inside the server.",
            ["model", "version", "protocol"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter("parity_rows_predicted", "Rows predicted.", ["model", "version"], registry=r)
        self.batch_rows = Histogram(
            "parity_batch_size_rows", "Rows per model run.", ["model", "version"], buckets=_SIZE_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "parity_batch_size_requests",
            "Requests merged into one model run.",
            ["model", "version"],
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.reload_failures = Counter(
            "parity_reload_failures", "Hot reloads refused (load or smoke check failed).", ["model"], registry=r
        )
        self.reloads = Counter("parity_reloads", "Hot reloads that swapped the served version.", ["model"], registry=r)
        self.active_version = Gauge(
            "parity_model_active_version", "Version served when a request names none.", ["model"], registry=r
        )
        self._children: dict[tuple[str, str, str, str], tuple[Any, Any, Any]] = {}
        self._callbacks = _Callbacks()
        r.register(self._callbacks)

    def bind(self, *, lake: LakeStats | None = None, queues: QueueDepths | None = None) -> None:
        """Read lake counters and queue depths from these callables at scrape time."""
        if lake is not None:
            self._callbacks.lake = lake
        if queues is not None:
            self._callbacks.queues = queues

    def observe_batch(self, model: str, version: str) -> Callable[[int, int], None]:
        """Return a batch observer (rows, requests) bound to one model version's label values."""
        rows_h = self.batch_rows.labels(model, version)
        reqs_h = self.batch_requests.labels(model, version)
        rows_c = self.rows.labels(model, version)

        def observe(rows: int, requests: int) -> None:
            rows_h.observe(rows)
            reqs_h.observe(requests)
            rows_c.inc(rows)

        return observe

    def record(self, model: str, version: str, protocol: str, status: str, seconds: float | None, ok: bool) -> None:
        """Count one finished request."""
        key = (model, version, protocol, status)
        children = self._children.get(key)
        if children is None:
            # labels() takes a lock and builds tuples: resolve each label set once.
            children = (
                self.requests.labels(*key),
                None if ok else self.errors.labels(*key),
                self.latency.labels(model, version, protocol),
            )
            self._children[key] = children
        children[0].inc()
        if children[1] is not None:
            children[1].inc()
        if seconds is not None:
            children[2].observe(seconds)

    def render(self) -> bytes:
        """Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
