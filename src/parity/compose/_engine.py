"""Running a composition: downstream calls with deadline, retries, breaker, fallback, split and shadow.

A :class:`Runner` owns one client, breaker and counters per downstream target and executes one
request at a time per call of :meth:`Runner.execute` (many concurrently): the endpoints the rule
asks for together are called concurrently, each call gets ``min(timeout_s, time left before the
deadline)``, a connection error or a 503 is retried with jittered backoff while time is left, a
breaker fails calls at once while its downstream is down, and a failed call answers with the
declared fallback (marked in the lineage and the response parameters) or raises a 502/504 error.
Shadow calls go through a bounded queue served by a background task; a full queue drops them
(counted), so a slow shadow never holds a request.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from parity.codec import NUMPY_DTYPES, encode_columns, encode_frame, records_to_columns
from parity.compose._check import summary, validate
from parity.compose._clients import Client, ModelMeta, Reply
from parity.compose._resilience import Breaker
from parity.errors import (
    CompositionError,
    DeclarationError,
    DownstreamError,
    DownstreamRejected,
    DownstreamTimeout,
    ParityError,
    SchemaError,
)
from parity.schema import MISSING_STRING

if TYPE_CHECKING:
    from parity.compose._declare import Composition, Endpoint
    from parity.compose._lineage import LineageLog
    from parity.lake import LakeWriter

__all__ = ["Call", "Decision", "ModelOutputs", "Models", "Request", "Runner"]

log = logging.getLogger("parity.compose")


class Request(dict[str, np.ndarray]):
    """The validated request: input name -> typed 1-D array, plus its id and row count."""

    def __init__(self, columns: Mapping[str, np.ndarray], request_id: str) -> None:
        super().__init__(columns)
        self.request_id = request_id
        self.n_rows = len(next(iter(columns.values()))) if columns else 0

    def rows(self) -> list[dict[str, Any]]:
        """The request as row dicts (missing values as None)."""
        return _rows(self, self.n_rows)


class ModelOutputs(dict[str, np.ndarray]):
    """One endpoint's outputs for a request (only the outputs it declared it reads), with lineage."""

    def __init__(self, endpoint: str, outputs: Mapping[str, np.ndarray], call: Call) -> None:
        super().__init__(outputs)
        self.endpoint = endpoint
        self.call = call

    def __missing__(self, key: str) -> np.ndarray:
        raise DeclarationError(
            f"the rule reads output {key!r} of endpoint {self.endpoint!r}, which is not declared in its reads "
            f"({list(self)}); add it to reads=[...]",
            endpoint=self.endpoint,
            field=key,
        )

    def rows(self) -> list[dict[str, Any]]:
        """Outputs as row dicts."""
        return _rows(self, len(next(iter(self.values()))) if self else 0)


def _plain(value: Any) -> Any:
    if isinstance(value, str) and value == MISSING_STRING:
        return None
    if isinstance(value, float) and value != value:
        return None
    return value


def _rows(columns: Mapping[str, np.ndarray], n: int) -> list[dict[str, Any]]:
    lists = {k: v.tolist() for k, v in columns.items()}
    return [{k: _plain(vals[i]) for k, vals in lists.items()} for i in range(n)]


@dataclass
class Call:
    """Lineage of one endpoint's call in one request."""

    endpoint: str
    model: str = ""
    version: str = ""
    route: str = ""
    """Which target answered: primary, candidate (split), or fallback."""
    fallback: str = ""
    """'' (none), 'default' or 'model'."""
    latency_ms: float = 0.0
    error: str = ""
    attempts: int = 0
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Decision:
    """What the composition answered for one request, and how."""

    request_id: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    calls: dict[str, Call]
    latency_ms: float

    @property
    def parameters(self) -> dict[str, str]:
        """Response parameters: the routes taken and, when one was used, the fallbacks."""
        params = {
            "composition_routes": ",".join(f"{c.endpoint}={c.route}" for c in self.calls.values()),
        }
        used = [f"{c.endpoint}={c.fallback}" for c in self.calls.values() if c.fallback]
        if used:
            params["composition_fallback"] = ",".join(used)
        return params

    @property
    def fallback_used(self) -> bool:
        """True if any endpoint answered with its fallback."""
        return any(c.fallback for c in self.calls.values())

    def rows(self) -> list[dict[str, Any]]:
        """The decision as row dicts."""
        return _rows(self.outputs, len(next(iter(self.outputs.values()))) if self.outputs else 0)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.outputs[name]


URL_ENV_PREFIX = "PARITY_COMPOSE_URL_"
"""``PARITY_COMPOSE_URL_<ENDPOINT>`` replaces a Remote primary's url (a container is wired by environment)."""


def url_env(endpoint: str) -> str:
    """The environment variable that overrides endpoint ``endpoint``'s Remote url (names are identifiers)."""
    return URL_ENV_PREFIX + endpoint.upper()


def _env_url(endpoint: str, target: Any) -> Any:
    """``target`` with its url from the environment when it is a Remote and the variable is set."""
    from dataclasses import replace

    from parity.compose._declare import Remote

    url = os.environ.get(url_env(endpoint))
    return replace(target, url=url) if url and isinstance(target, Remote) else target


@dataclass
class _Target:
    """One downstream target of an endpoint with its breaker and counters."""

    key: str
    client: Client
    breaker: Breaker
    meta: ModelMeta | None = None
    calls: dict[str, int] = field(default_factory=dict)
    """Outcome -> count (ok, rejected, failed, timeout, open, retried)."""

    def count(self, outcome: str) -> None:
        self.calls[outcome] = self.calls.get(outcome, 0) + 1


class Models:
    """What the rule sees: ``models["x"]`` for prefetched outputs, ``await models.call("x", "y")`` to call."""

    def __init__(self, runner: Runner, request: Request, deadline: float) -> None:
        self._runner = runner
        self._request = request
        self._deadline = deadline
        self._done: dict[str, ModelOutputs] = {}

    def __getitem__(self, name: str) -> ModelOutputs:
        if name in self._done:
            return self._done[name]
        if name not in self._runner.comp.endpoints:
            raise DeclarationError(
                f"unknown endpoint {name!r}; declared: {list(self._runner.comp.endpoints)}", endpoint=name
            )
        raise DeclarationError(
            f"endpoint {name!r} was not called before the rule: list it in @rule(calls=[...]) "
            f"or `await models.call({name!r})`",
            endpoint=name,
        )

    def __contains__(self, name: object) -> bool:
        return name in self._done

    async def call(self, *names: str, inputs: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
        """Call the named endpoints concurrently (computed inputs per endpoint in ``inputs``); return their outputs."""
        for name in names:
            if name not in self._runner.comp.endpoints:
                raise DeclarationError(
                    f"unknown endpoint {name!r}; declared: {list(self._runner.comp.endpoints)}", endpoint=name
                )
        extra = inputs or {}
        results = await asyncio.gather(
            *(self._runner.call_endpoint(n, self._request, self._deadline, extra.get(n)) for n in names),
            return_exceptions=True,
        )
        for name, res in zip(names, results, strict=True):
            if not isinstance(res, BaseException):
                self._done[name] = res
        for res in results:
            if isinstance(res, BaseException):
                raise res
        outs = tuple(self._done[n] for n in names)
        return outs[0] if len(outs) == 1 else outs

    @property
    def called(self) -> dict[str, ModelOutputs]:
        """Outputs of every endpoint called so far."""
        return dict(self._done)


def _sticky(name: str, endpoint: str, key: Any) -> float:
    """A stable number in [0, 1) for a request key (the same key always routes the same way)."""
    digest = hashlib.blake2b(f"{name}\x00{endpoint}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Runner:
    """Executes requests of one composition; one per serving process or per in-process models map."""

    def __init__(
        self,
        comp: Composition,
        *,
        overrides: Mapping[str, Any] | None = None,
        lake: LakeWriter | None = None,
        health_interval_s: float = 1.0,
        only_primary: bool = False,
    ) -> None:
        from parity.compose._declare import target_of

        self.comp = comp
        self.lake = lake
        self.health_interval_s = health_interval_s
        overrides = dict(overrides or {})
        unknown = [k for k in overrides if k not in comp.endpoints]
        if unknown:
            raise DeclarationError(
                f"models={{...}} names endpoint {unknown[0]!r}, which is not declared; "
                f"declared: {list(comp.endpoints)}",
                endpoint=unknown[0],
            )
        self.targets: dict[str, dict[str, _Target]] = {}
        for ep in comp.endpoints.values():
            roles = {r: _env_url(ep.name, t) if r == "primary" else t for r, t in ep.targets().items()}
            if ep.name in overrides:
                # An override replaces the endpoint's primary (and split candidate): tests pin one model.
                roles = {r: t for r, t in roles.items() if r not in ("primary", "candidate")}
                roles = {"primary": target_of(overrides[ep.name]), **roles}
            if only_primary:  # replay: no fallback, no shadow, only what answered
                roles = {"primary": roles["primary"]}
            self.targets[ep.name] = {
                role: _Target(
                    f"{ep.name}" if role == "primary" else f"{ep.name}:{role}",
                    t.client(),
                    Breaker(ep.breaker_failures, ep.breaker_reset_s),
                )
                for role, t in roles.items()
            }
        self._split = {n: n in overrides for n in comp.endpoints}  # True: override, no split
        self.validated: dict[str, Any] | None = None
        self._ready: dict[str, bool] = {}
        self._health: asyncio.Task[None] | None = None
        self._shadow_queue: asyncio.Queue[tuple[str, dict[str, np.ndarray], str, ModelOutputs]] | None = None
        self._shadow_task: asyncio.Task[None] | None = None
        self.shadow_stats = {"queued": 0, "ok": 0, "failed": 0, "dropped": 0}
        self.fallbacks: dict[tuple[str, str], int] = {}
        self.routes: dict[tuple[str, str], int] = {}
        self.decisions = 0
        self.on_call: Any = None
        """Optional hook ``(target_key, outcome, seconds)`` for metrics."""
        self._log: LineageLog | None = None

    # ------------------------------------------------------------------ lifecycle

    async def validate(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """Check the declaration against every downstream (DeclarationError on a mismatch)."""
        clients = {ep: {role: t.client for role, t in roles.items()} for ep, roles in self.targets.items()}
        found = await validate(self.comp, clients, timeout_s)
        for ep, roles in found.items():
            for role, meta in roles.items():
                self.targets[ep][role].meta = meta
        self.validated = summary(found)
        from parity.compose._lineage import LineageLog

        self._log = LineageLog(self.comp, self)
        return self.validated

    async def start(self, timeout_s: float = 5.0) -> None:
        """Validate, then keep readiness of the required downstreams fresh in the background."""
        await self.validate(timeout_s)
        await self._refresh_ready()
        self._health = asyncio.get_running_loop().create_task(self._watch_health(), name="parity-compose-health")

    def ready(self) -> bool:
        """True when every required downstream was ready at the last poll."""
        return self.validated is not None and all(self._ready.values())

    def readiness(self) -> dict[str, bool]:
        """Last readiness of every required downstream target."""
        return dict(self._ready)

    async def _refresh_ready(self) -> None:
        checks = [
            (t.key, t.client)
            for ep in self.comp.endpoints.values()
            if ep.required
            for role, t in self.targets[ep.name].items()
            if role in ("primary", "candidate")
        ]
        states = await asyncio.gather(*(c.ready(min(1.0, self.health_interval_s)) for _, c in checks))
        self._ready = {k: bool(s) for (k, _), s in zip(checks, states, strict=True)}

    async def _watch_health(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval_s)
            try:
                await self._refresh_ready()
            except Exception:  # the poller must survive anything; readiness stays as last seen
                log.exception("readiness poll failed")

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until every queued shadow call finished (or ``timeout_s``)."""
        if self._shadow_queue is not None:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._shadow_queue.join()
            except TimeoutError:
                log.warning("shadow queue not drained within %.1f s", timeout_s)

    async def aclose(self) -> None:
        """Stop background tasks and close every connection."""
        for task in (self._health, self._shadow_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._health = self._shadow_task = None
        self._shadow_queue = None
        for roles in self.targets.values():
            for t in roles.values():
                await t.client.aclose()

    # ------------------------------------------------------------------ requests

    def encode(self, inputs: Any) -> dict[str, np.ndarray]:
        """Validate and type ``inputs``: records, one record, a column mapping or a DataFrame."""
        sig = self.comp.signature
        if hasattr(inputs, "columns") and hasattr(inputs, "iloc"):
            return encode_frame(sig, inputs)
        if isinstance(inputs, Mapping):
            extra = [k for k in inputs if k not in sig.input_names]
            if extra:
                raise SchemaError(
                    f"unknown input {extra[0]!r}; composition {self.comp.name!r} takes {sig.input_names}",
                    column=extra[0],
                )
            if inputs and all(np.ndim(v) == 0 and not isinstance(v, list | tuple) for v in inputs.values()):
                inputs = {k: [v] for k, v in inputs.items()}  # one record
            return encode_columns(sig, inputs)
        if isinstance(inputs, Sequence) and not isinstance(inputs, str | bytes):
            return encode_columns(sig, records_to_columns(sig, list(inputs), reject_extra=True))
        raise SchemaError(f"inputs must be records, a column mapping or a DataFrame; got {type(inputs).__name__}")

    async def run(self, inputs: Any, *, request_id: str | None = None) -> Decision:
        """Validate ``inputs`` and execute them (the in-process path of Composition.run)."""
        if self.validated is None:
            await self.validate()
        return await self.execute(self.encode(inputs), request_id or os.urandom(8).hex())

    async def execute(
        self, columns: Mapping[str, np.ndarray], request_id: str, deadline_s: float | None = None
    ) -> Decision:
        """Run one validated request: call the models, apply the rule, log the lineage.

        ``deadline_s`` (what is left of the caller's deadline) shortens the composition's own.
        """
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        budget = self.comp.deadline_s if deadline_s is None else max(0.0, min(self.comp.deadline_s, deadline_s))
        deadline = loop.time() + budget
        request = Request(columns, request_id)
        models = Models(self, request, deadline)
        spec = self.comp.rule_spec
        try:
            async with asyncio.timeout(budget):
                prefetch = self.comp.prefetch()
                if prefetch:
                    await models.call(*prefetch)
                if spec.per_row:
                    result = await self._per_row(request, models)
                else:
                    result = spec.fn(request, models)
                    if inspect.isawaitable(result):
                        result = await result
        except TimeoutError:
            raise DownstreamTimeout(
                f"composition {self.comp.name!r} did not decide within its deadline of {budget:g} s"
            ) from None
        outputs = self._typed(result, request.n_rows)
        calls = {name: out.call for name, out in models.called.items()}
        decision = Decision(request_id, dict(columns), outputs, calls, (time.perf_counter() - start) * 1000.0)
        self.decisions += 1
        if self.lake is not None and self._log is not None:
            # Awaited, not the writer's blocking call: a full queue (overflow="block") or a WAL fsync
            # (durability="ack") waits without holding the event loop, and never past the deadline.
            await self._log.write(self.lake, decision, timeout=max(0.0, deadline - loop.time()))
        return decision

    async def _per_row(self, request: Request, models: Models) -> list[Any]:
        fn = self.comp.rule_spec.fn
        outs = {name: o.rows() for name, o in models.called.items()}
        results = []
        for i, row in enumerate(request.rows()):
            value = fn(row, {name: rows[i] for name, rows in outs.items()})
            if inspect.isawaitable(value):
                value = await value
            results.append(value)
        return results

    def _typed(self, result: Any, n_rows: int) -> dict[str, np.ndarray]:
        """The rule's answer as one typed array per declared output, or a CompositionError saying what is wrong."""
        specs = self.comp.signature.outputs
        if isinstance(result, list):
            if len(result) != n_rows:
                raise CompositionError(f"the rule returned {len(result)} row(s) for a request of {n_rows}")
            bad = next((r for r in result if not isinstance(r, Mapping)), None)
            if bad is not None:
                raise CompositionError(f"the rule must return dicts per row; got {type(bad).__name__}")
            result = {o.name: [r.get(o.name) for r in result] for o in specs}
        if not isinstance(result, Mapping):
            raise CompositionError(
                "the rule must return a mapping of output -> values or a list of row dicts; "
                f"got {type(result).__name__}"
            )
        out: dict[str, np.ndarray] = {}
        for spec in specs:
            if spec.name not in result:
                raise CompositionError(
                    f"the rule returned no output {spec.name!r}; declared outputs: {[o.name for o in specs]}"
                )
            values = result[spec.name]
            values = (
                values.tolist()
                if isinstance(values, np.ndarray)
                else list(values)
                if not np.isscalar(values)
                else [values] * n_rows
            )
            if len(values) != n_rows:
                raise CompositionError(f"the rule returned {len(values)} value(s) of {spec.name!r} for {n_rows} row(s)")
            try:
                if spec.datatype == "BYTES":
                    arr = np.array([MISSING_STRING if v is None else str(v) for v in values], dtype=object)
                else:
                    arr = np.asarray([np.nan if v is None else v for v in values], dtype=NUMPY_DTYPES[spec.datatype])
            except (TypeError, ValueError) as exc:
                raise CompositionError(
                    f"output {spec.name!r}: the rule's values are not {spec.datatype} ({exc})"
                ) from exc
            out[spec.name] = arr
        return out

    # ------------------------------------------------------------------ one endpoint

    def _route(self, ep: Endpoint, request: Request) -> str:
        from parity.compose._declare import Split

        split = ep.target
        if not isinstance(split, Split) or self._split[ep.name]:
            return "primary"
        if split.key is not None and split.key in request and request.n_rows:
            point = _sticky(self.comp.name, ep.name, request[split.key][0])
        else:
            point = random.random()
        return "candidate" if point < split.share else "primary"

    def _model_columns(
        self, ep: Endpoint, target: _Target, request: Request, extra: Mapping[str, Any] | None
    ) -> dict[str, np.ndarray]:
        names = (
            list(target.meta.inputs)
            if target.meta is not None
            else [n for n in request if n not in ep.inputs.values()] + list(ep.inputs)
        )
        cols: dict[str, np.ndarray] = {}
        extra = extra or {}
        for name in names:
            if name in extra:
                datatype = target.meta.inputs.get(name, "") if target.meta else ""
                cols[name] = _as_array(extra[name], datatype, request.n_rows, ep.name, name)
            elif name in ep.computed:
                raise DeclarationError(
                    f"endpoint {ep.name!r}: computed input {name!r} was not passed; call models.call({ep.name!r}, "
                    f"inputs={{{ep.name!r}: {{{name!r}: [...]}}}})",
                    endpoint=ep.name,
                    field=name,
                )
            else:
                source = ep.inputs.get(name, name)
                if source in request:
                    cols[name] = request[source]
        return cols

    async def call_endpoint(
        self, name: str, request: Request, deadline: float, extra: Mapping[str, Any] | None = None
    ) -> ModelOutputs:
        """Call endpoint ``name`` for ``request``: route, resilient call, fallback, shadow."""
        ep = self.comp.endpoints[name]
        route = self._route(ep, request)
        self.routes[(name, route)] = self.routes.get((name, route), 0) + 1
        target = self.targets[name][route]
        call = Call(endpoint=name, route=route)
        columns = self._model_columns(ep, target, request, extra)
        start = time.perf_counter()
        try:
            reply = await self._resilient(ep, target, columns, request.request_id, deadline, call)
            outputs = self._reads(ep, target, reply)
        except DownstreamRejected:
            raise
        except DownstreamError as exc:
            call.error = str(exc)
            outputs = await self._fallback(ep, request, deadline, call, exc, extra)
        call.latency_ms = (time.perf_counter() - start) * 1000.0
        call.outputs = outputs
        result = ModelOutputs(name, outputs, call)
        if "shadow" in self.targets[name] and not call.fallback:
            self._enqueue_shadow(name, columns, request.request_id, result)
        return result

    def _reads(self, ep: Endpoint, target: _Target, reply: Reply) -> dict[str, np.ndarray]:
        wanted = ep.reads if ep.reads is not None else tuple(reply.outputs)
        missing = [o for o in wanted if o not in reply.outputs]
        if missing:
            raise DownstreamError(
                f"downstream {target.client.label} of endpoint {ep.name!r} returned no output {missing[0]!r}",
                endpoint=ep.name,
            )
        return {o: reply.outputs[o] for o in wanted}

    async def _resilient(
        self, ep: Endpoint, target: _Target, columns: Mapping[str, np.ndarray], rid: str, deadline: float, call: Call
    ) -> Reply:
        loop = asyncio.get_running_loop()
        label = target.client.label
        attempt = 0
        while True:
            attempt += 1
            call.attempts = attempt
            remaining = deadline - loop.time()
            if remaining <= 0.0005:
                target.count("timeout")
                raise DownstreamTimeout(
                    f"endpoint {ep.name!r} ({label}): no time left before the request deadline", endpoint=ep.name
                )
            if not target.breaker.allow():
                target.count("open")
                raise DownstreamError(
                    f"endpoint {ep.name!r} ({label}): circuit breaker open after repeated failures", endpoint=ep.name
                )
            timeout = min(ep.timeout_s, remaining)
            t0 = time.perf_counter()
            outcome = "ok"
            try:
                try:
                    async with asyncio.timeout(timeout):
                        reply = await target.client.infer(columns, timeout=timeout, request_id=rid)
                except TimeoutError:
                    raise DownstreamTimeout(
                        f"endpoint {ep.name!r} ({label}) did not answer within {timeout:.3g} s", endpoint=ep.name
                    ) from None
                except DownstreamError:
                    raise
                except ParityError as exc:
                    raise DownstreamError(f"endpoint {ep.name!r} ({label}) failed: {exc}", endpoint=ep.name) from exc
            except DownstreamRejected:
                outcome = "rejected"
                target.breaker.success()  # the downstream is healthy: the request was wrong
                raise
            except DownstreamTimeout:
                outcome = "timeout"
                target.breaker.failure()
                raise
            except DownstreamError as exc:
                target.breaker.failure()
                from parity.compose._clients import Retryable

                delay = ep.retry.delay(attempt)
                if isinstance(exc, Retryable) and attempt < ep.retry.attempts and loop.time() + delay < deadline:
                    outcome = "retried"
                    await asyncio.sleep(delay)
                    continue  # counted as retried by the finally clause
                outcome = "failed"
                raise
            finally:
                target.count(outcome)
                self._hook(target.key, outcome, time.perf_counter() - t0)
            target.breaker.success()
            call.model = target.meta.name if target.meta else label
            call.version = reply.version
            return reply

    def _hook(self, key: str, outcome: str, seconds: float) -> None:
        if self.on_call is not None:
            self.on_call(key, outcome, seconds)

    async def _fallback(
        self, ep: Endpoint, request: Request, deadline: float, call: Call, exc: DownstreamError, extra: Any
    ) -> dict[str, np.ndarray]:
        fb = ep.fallback
        if fb is None:
            raise exc
        if fb.model is not None:
            target = self.targets[ep.name]["fallback"]
            columns = self._model_columns(ep, target, request, extra)
            try:
                reply = await self._resilient(ep, target, columns, request.request_id, deadline, call)
                outputs = self._reads(ep, target, reply)
            except DownstreamError as second:
                raise DownstreamError(f"{exc}; its fallback model failed too: {second}", endpoint=ep.name) from second
            call.fallback, call.route = "model", "fallback"
        else:
            assert fb.default is not None
            wanted = ep.reads if ep.reads is not None else tuple(fb.default)
            meta = self.targets[ep.name]["primary"].meta
            outputs = {
                o: _as_array(
                    fb.default[o], meta.outputs.get(o, "") if meta else "", request.n_rows, ep.name, o, scalar=True
                )
                for o in wanted
            }
            call.fallback, call.route = "default", "fallback"
            call.model, call.version = call.model or str(self.targets[ep.name]["primary"].client.label), ""
        key = (ep.name, call.fallback)
        self.fallbacks[key] = self.fallbacks.get(key, 0) + 1
        log.warning(
            "request %s: endpoint %r answered with its %s fallback (%s)",
            request.request_id,
            ep.name,
            call.fallback,
            exc,
        )
        return outputs

    # ------------------------------------------------------------------ shadow

    def _enqueue_shadow(self, name: str, columns: dict[str, np.ndarray], rid: str, primary: ModelOutputs) -> None:
        if self._shadow_queue is None:
            self._shadow_queue = asyncio.Queue(maxsize=self.comp.shadow_queue)
            self._shadow_task = asyncio.get_running_loop().create_task(self._shadow_worker(), name="parity-shadow")
        try:
            self._shadow_queue.put_nowait((name, columns, rid, primary))
            self.shadow_stats["queued"] += 1
        except asyncio.QueueFull:
            self.shadow_stats["dropped"] += 1

    async def _shadow_worker(self) -> None:
        assert self._shadow_queue is not None
        queue = self._shadow_queue
        while True:
            name, columns, rid, primary = await queue.get()
            try:
                await self._shadow_call(name, columns, rid, primary)
            except Exception:  # a shadow never fails anything: count and go on
                self.shadow_stats["failed"] += 1
                log.exception("shadow call of %r failed", name)
            finally:
                queue.task_done()

    async def _shadow_call(self, name: str, columns: dict[str, np.ndarray], rid: str, primary: ModelOutputs) -> None:
        ep = self.comp.endpoints[name]
        target = self.targets[name]["shadow"]
        call = Call(endpoint=name, route="shadow")
        start = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + ep.timeout_s * max(1, ep.retry.attempts)
        try:
            reply = await self._resilient(ep, target, columns, rid, deadline, call)
            call.outputs = dict(reply.outputs)
            self.shadow_stats["ok"] += 1
        except DownstreamError as exc:
            call.error = str(exc)
            self.shadow_stats["failed"] += 1
        call.latency_ms = (time.perf_counter() - start) * 1000.0
        if self._log is not None:
            await self._log.shadow(self.lake, name, columns, rid, primary, call, timeout=ep.timeout_s)


def _as_array(values: Any, datatype: str, n: int, endpoint: str, name: str, *, scalar: bool = False) -> np.ndarray:
    """Computed inputs and default outputs as typed arrays of ``n`` rows."""
    if scalar or np.ndim(values) == 0:
        values = [values] * n
    values = list(values.tolist() if isinstance(values, np.ndarray) else values)
    if len(values) != n:
        raise CompositionError(f"endpoint {endpoint!r}: {name!r} has {len(values)} value(s) for {n} row(s)")
    if datatype == "BYTES" or (not datatype and any(isinstance(v, str) for v in values)):
        return np.array([MISSING_STRING if v is None else str(v) for v in values], dtype=object)
    dtype = NUMPY_DTYPES.get(datatype) if datatype else None
    try:
        return np.asarray([np.nan if v is None else v for v in values], dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise CompositionError(f"endpoint {endpoint!r}: {name!r} is not {datatype or 'numeric'} ({exc})") from exc
