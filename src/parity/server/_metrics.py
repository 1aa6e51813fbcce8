"""Prometheus metrics of one server process (its own registry, so several servers can coexist).

Exposed at ``GET /metrics`` (and on the admin port). Labels: ``model`` (``_unknown`` for names the
server does not serve, so clients cannot blow up label cardinality), ``version``, ``protocol``
(``v2`` for OIP REST, ``v1`` for KServe V1, ``grpc``) and ``code``: the HTTP status of the
answer on every protocol (a gRPC status maps to the HTTP code of the same error class, OK is 200),
so one query covers all protocols. Every answered inference request is counted, refusals (401,
413, 503) and deadlines (504) included, once, by its protocol adapter when the answer is out
(REST: as its last body chunk is handed to the socket; gRPC: once the response message is built).
Latency (by code as well) runs from the request's arrival (REST: its first parsed byte) to that
point; successful requests are also split into queue time (waiting for a batch) and compute time
(the model run). With ``--workers N`` each worker writes its samples to ``$PROMETHEUS_MULTIPROC_DIR`` and a scrape of
any worker returns the sum over all of them (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

import parity

if TYPE_CHECKING:
    from parity.lake import LakeWriter

__all__ = ["MULTIPROC_ENV", "UNKNOWN_MODEL", "Metrics"]

UNKNOWN_MODEL = "_unknown"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)

QueueDepths = Callable[[], list[tuple[str, str, int, int]]]


class _Callbacks(Collector):
    """Values read at scrape time from the lake writer and the batchers (per process)."""

    def __init__(self) -> None:
        self.lake: LakeWriter | None = None
        self.queues: QueueDepths | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the lake counters, queue depth and in-flight gauges."""
        lake = self.lake
        lake_queue = GaugeMetricFamily(
            "parity_lake_rows_queued", "Rows accepted and not yet in a published lake file.", labels=["pid"]
        )
        lake_queue.add_metric([str(os.getpid())], lake.queued if lake is not None else 0)
        yield lake_queue
        depth = GaugeMetricFamily("parity_queue_depth", "Requests waiting for a batch.", labels=["model", "version"])
        inflight = GaugeMetricFamily(
            "parity_requests_in_flight", "Admitted inference requests not answered yet.", labels=["model", "version"]
        )
        for model, version, queued, running in self.queues() if self.queues is not None else []:
            depth.add_metric([model, version], queued)
            inflight.add_metric([model, version], running)
        yield depth
        yield inflight


class Metrics:
    """All metrics of one server process."""

    def __init__(self) -> None:
        # The *_created series double the exposition size and no dashboard reads them.
        disable_created_metrics()
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        labels = ["model", "version", "protocol", "code"]
        self.requests = Counter("parity_requests", "Answered inference requests.", labels, registry=r)
        self.errors = Counter("parity_request_errors", "Inference requests answered with an error.", labels, registry=r)
        self.latency = Histogram(
            "parity_request_latency_seconds",
            "Inference request latency from arrival until the answer was written.",
            labels,  # by code too: fast refusals must not hide slow answers in one distribution
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "parity_request_queue_seconds",
            "Time from arrival until the request's model run started (decode, admission, batching).",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.compute_time = Histogram(
            "parity_request_compute_seconds",
            "Duration of the model run that computed the request.",
            ["model", "version"],
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
            "parity_model_active_version",
            "Version served when a request names none.",
            ["model"],
            registry=r,
            multiprocess_mode="max",
        )
        build = Gauge(
            "parity_build_info",
            "Build information (value 1).",
            ["version", "python"],
            registry=r,
            multiprocess_mode="max",
        )
        build.labels(parity.__version__, platform.python_version()).set(1)
        lake_rows = Counter("parity_lake_rows", "Lake rows by outcome: written, dropped, blocked (waited for room).",
                            ["outcome"], registry=r)  # fmt: skip
        self._lake_rows = {o: lake_rows.labels(o) for o in ("written", "dropped", "blocked")}
        self.lake_last_flush = Gauge(
            "parity_lake_last_flush_timestamp",
            "Unix time of the last successful lake file write.",
            registry=r,
            multiprocess_mode="max",
        )
        if not self.multiprocess:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        self._children: dict[tuple[str, str, str, str], tuple[Any, Any, Any]] = {}
        self._split: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._callbacks = _Callbacks()
        r.register(self._callbacks)

    def bind(self, *, lake: LakeWriter | None = None, queues: QueueDepths | None = None) -> None:
        """Count the lake's row outcomes as they happen; read its queue and the batchers at scrape time."""
        if lake is not None:
            self._callbacks.lake = lake
            lake.observe(self._lake_event)
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

    def record(self, model: str, version: str, protocol: str, code: str, seconds: float | None, ok: bool) -> None:
        """Count one answered request (``seconds``: from arrival until the answer was written)."""
        key = (model, version, protocol, code)
        children = self._children.get(key)
        if children is None:
            # labels() takes a lock and builds tuples: resolve each label set once.
            children = (
                self.requests.labels(*key),
                None if ok else self.errors.labels(*key),
                self.latency.labels(*key),
            )
            self._children[key] = children
        children[0].inc()
        if children[1] is not None:
            children[1].inc()
        if seconds is not None:
            children[2].observe(seconds)

    def _lake_event(self, outcome: str, rows: int) -> None:
        self._lake_rows[outcome].inc(rows)
        if outcome == "written":
            self.lake_last_flush.set_to_current_time()

    def observe_split(self, model: str, version: str, queue_s: float, compute_s: float) -> None:
        """Record the queue-time / compute-time split of one successful request."""
        children = self._split.get((model, version))
        if children is None:
            children = (self.queue_time.labels(model, version), self.compute_time.labels(model, version))
            self._split[(model, version)] = children
        children[0].observe(max(0.0, queue_s))
        children[1].observe(max(0.0, compute_s))

    def render(self) -> bytes:
        """Prometheus text exposition: this process, or the sum over every worker in multiprocess mode."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        # Scrape-time values (lake, queues) are per process: this worker's, labelled with its pid.
        return generate_latest(merged) + generate_latest(_Only(self._callbacks))


class _Only(CollectorRegistry):
    """A registry holding one collector (for rendering it alone)."""

    def __init__(self, collector: Collector) -> None:
        super().__init__(auto_describe=True)
        self.register(collector)
