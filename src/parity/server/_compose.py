"""Serving a composition like a model: a DataPlane whose one "model" is a :class:`~parity.compose.Composition`.

The REST and gRPC adapters, auth, limits, request ids, metrics and the lake are the model
server's own: :class:`CompositionPlane` only replaces what a request runs. The composition's
inputs are validated by :func:`~parity.server._dataplane.validate_columns` (the model path's
check), then :class:`~parity.compose.Runner` calls the downstreams and applies the rule; its
routes and fallbacks come back as response parameters. Health: ready only once the declaration
was validated against the live downstreams and while every required downstream is ready.
Metrics add, per downstream target, calls by outcome, call latency, breaker state and openings,
fallbacks, routes and shadow calls.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from parity.compose import Composition, Runner
from parity.compose._resilience import BREAKER_STATES
from parity.lake import LakeWriter
from parity.server._config import ServerConfig
from parity.server._dataplane import EXTENSIONS, DataPlane, InferResult, validate_columns
from parity.server._errors import BadRequest, ModelNotFound, ModelNotReady
from parity.server._metrics import UNKNOWN_MODEL, Metrics
from parity.server._repository import ModelHandle

__all__ = ["CompositionPlane", "serve_composition"]


class _CompositionHandle(ModelHandle):
    """What the adapters read of a served model (signature, names, metadata), for a composition."""

    def __init__(self, comp: Composition) -> None:  # no artifact, no batcher: the runner does the work
        self.name = comp.name
        self.version = comp.version
        self.version_str = str(comp.version)
        self.ref = comp.name
        self.ready = True
        self.signature = comp.signature
        self.input_names = frozenset(comp.signature.input_names)
        self.output_names = tuple(comp.signature.output_names)
        self.platform = "parity-composition"
        self.inputs_metadata = [
            {"name": c.name, "datatype": c.datatype, "shape": [-1], "parameters": {"nullable": c.nullable}}
            for c in comp.signature.inputs
        ]
        self.outputs_metadata = [
            {"name": o.name, "datatype": o.datatype, "shape": [-1]} for o in comp.signature.outputs
        ]


class _Collector(Collector):
    """Breaker states and downstream counters, read at scrape time."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Yield the composition's metric families."""
        r = self.runner
        state = GaugeMetricFamily(
            "parity_compose_breaker_state",
            "Circuit breaker state per downstream (1 = current).",
            labels=["downstream", "state"],
        )
        opened = CounterMetricFamily("parity_compose_breaker_opened", "Times a breaker opened.", labels=["downstream"])
        calls = CounterMetricFamily(
            "parity_compose_downstream_calls", "Downstream call attempts by outcome.", labels=["downstream", "outcome"]
        )
        ready = GaugeMetricFamily("parity_compose_downstream_ready", "Last readiness poll.", labels=["downstream"])
        for roles in r.targets.values():
            for t in roles.values():
                current = t.breaker.state
                for s in BREAKER_STATES:
                    state.add_metric([t.key, s], 1.0 if s == current else 0.0)
                opened.add_metric([t.key], t.breaker.opened)
                for outcome, n in t.calls.items():
                    calls.add_metric([t.key, outcome], n)
        for key, ok in r.readiness().items():
            ready.add_metric([key], 1.0 if ok else 0.0)
        fallbacks = CounterMetricFamily("parity_compose_fallbacks", "Fallbacks used.", labels=["endpoint", "kind"])
        for (ep, kind), n in r.fallbacks.items():
            fallbacks.add_metric([ep, kind], n)
        routes = CounterMetricFamily("parity_compose_routes", "Calls per route (split).", labels=["endpoint", "route"])
        for (ep, route), n in r.routes.items():
            routes.add_metric([ep, route], n)
        shadow = CounterMetricFamily("parity_compose_shadow_calls", "Shadow calls by outcome.", labels=["outcome"])
        for outcome, n in r.shadow_stats.items():
            shadow.add_metric([outcome], n)
        yield from (state, opened, calls, ready, fallbacks, routes, shadow)


class CompositionPlane(DataPlane):
    """The data plane of one composition (REST and gRPC adapters use it like a model's)."""

    def __init__(
        self,
        composition: Composition,
        *,
        lake: LakeWriter | None = None,
        metrics: Metrics | None = None,
        request_timeout_s: float = 30.0,
        health_interval_s: float = 1.0,
        max_inflight: int = 512,
    ) -> None:
        super().__init__((), lake=lake, metrics=metrics, request_timeout_s=request_timeout_s, max_inflight=max_inflight)
        self.composition = composition
        self.runner = composition.runner(lake=lake)
        self.runner.health_interval_s = health_interval_s
        self._handle = _CompositionHandle(composition)
        latency = Histogram(
            "parity_compose_downstream_latency_seconds",
            "Downstream call latency.",
            ["downstream", "outcome"],
            registry=self.metrics.registry,
        )
        self.runner.on_call = lambda key, outcome, seconds: latency.labels(key, outcome).observe(seconds)
        self.metrics.registry.register(_Collector(self.runner))

    @classmethod
    def for_config(cls, composition: Composition, config: ServerConfig, lake: LakeWriter | None) -> CompositionPlane:
        """The plane of ``composition`` under a server configuration."""
        return cls(composition, lake=lake, request_timeout_s=config.request_timeout_s, max_inflight=config.max_inflight)

    async def start(self, reload_interval_s: float = 0.0) -> None:
        """Validate the declaration against the live downstreams (DeclarationError stops start-up)."""
        await self.runner.start()
        self._started = True
        self.metrics.active_version.labels(self.composition.name).set(self.composition.version)

    async def stop(self) -> None:
        """Drain shadow calls, stop polling, close downstream connections."""
        self._stopping = True
        await self.runner.drain(timeout_s=5.0)
        await self.runner.aclose()

    def ready(self) -> bool:
        """Started, not draining, and every required downstream ready."""
        return self._started and not self._stopping and self.runner.ready()

    def server_metadata(self) -> dict[str, Any]:
        """OIP server metadata."""
        meta = super().server_metadata()
        meta["extensions"] = [*EXTENSIONS, "composition"]
        return meta

    def handle(self, name: str, version: str | int | None = None) -> ModelHandle:
        """The composition's handle (ModelNotFound for any other name or version)."""
        if name != self.composition.name:
            raise ModelNotFound(f"model {name!r} is not served here; this server serves {self.composition.name!r}")
        if version not in (None, "", self._handle.version_str, self.composition.version):
            raise ModelNotFound(
                f"composition {name!r} has no version {version!r}; it serves {self._handle.version_str}"
            )
        return self._handle

    def model_metadata(self, name: str, version: str | int | None = None) -> dict[str, Any]:
        """OIP model metadata of the composition."""
        h = self.handle(name, version)
        return {
            "name": h.name,
            "versions": [h.version_str],
            "platform": h.platform,
            "inputs": h.inputs_metadata,
            "outputs": h.outputs_metadata,
        }

    def model_ready(self, name: str, version: str | int | None = None) -> bool:
        """Ready as a whole (every required downstream ready)."""
        self.handle(name, version)
        return self.ready()

    def repository_index(self) -> list[dict[str, Any]]:
        """The composition as the one repository entry."""
        ok = self.ready()
        return [
            {
                "name": self.composition.name,
                "version": self._handle.version_str,
                "state": "READY" if ok else "UNAVAILABLE",
                "reason": "" if ok else "a required downstream is not ready",
            }
        ]

    async def load(self, name: str) -> None:
        """Compositions are declared in code, not loaded."""
        raise BadRequest("a composition cannot be loaded or unloaded; restart `parity compose serve`")

    async def unload(self, name: str) -> None:
        """Compositions are declared in code, not unloaded."""
        raise BadRequest("a composition cannot be loaded or unloaded; restart `parity compose serve`")

    def metric_labels(self, name: str, version: str | int | None) -> tuple[str, str]:
        """The composition's labels for its own name; one shared label for any other."""
        return (name, self._handle.version_str) if name == self.composition.name else (UNKNOWN_MODEL, "")

    async def infer(
        self,
        name: str,
        version: str | int | None,
        columns: Mapping[str, Any],
        *,
        request_id: str,
        protocol: str = "v2",
        arrival: float | None = None,
        timeout_s: float | None = None,
        admitted: bool = False,
    ) -> InferResult:
        """Validate the inputs, run the composition, return its decision with routes and fallbacks."""
        start = time.perf_counter() if arrival is None else arrival
        handle = self.handle(name, version)
        if self._stopping or not self._started:
            raise ModelNotReady(f"composition {name!r} is not ready")
        with nullcontext() if admitted else self.admission.slot(handle, handle.name):
            encoded = validate_columns(handle, columns)
            left = None if timeout_s is None else timeout_s - (time.perf_counter() - start)
            decision = await self.runner.execute(encoded, request_id, left)
        return InferResult(
            name,
            self._handle.version_str,
            decision.outputs,
            request_id,
            {o.name: o.datatype for o in self.composition.signature.outputs},
            parameters=decision.parameters,
        )


def serve_composition(composition: Composition, config: ServerConfig) -> None:
    """Serve ``composition`` on the model server stack until SIGTERM (blocking)."""
    from parity.server._app import serve

    serve(config, lambda cfg, lake: CompositionPlane.for_config(composition, cfg, lake))
