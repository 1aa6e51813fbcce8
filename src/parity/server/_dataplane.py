"""The data plane: the one place protocol logic lives; REST and gRPC adapters only translate.

Every adapter calls these methods (names and signatures are a contract with the gRPC adapter):

* ``live()``, ``ready()``, ``server_metadata()``
* ``model_metadata(name, version=None)``, ``model_ready(name, version=None)``
* ``await infer(name, version, columns, *, request_id, protocol) -> InferResult``
* ``admit(name, version=None)``: a context manager holding one admission slot (REST, from before decoding)
* ``record_answer(name, version, protocol, status, seconds, labels=None)``
* ``await load(name)``, ``await unload(name)``, ``repository_index()``

``version`` is a string (``""`` and None both mean "the default version"). Errors are parity
exceptions; adapters turn them into transport codes with :func:`parity.server._errors.status_for`.
``infer`` validates with :func:`parity.codec.encode_columns` (a missing, unknown or mistyped input
raises :class:`~parity.errors.SchemaError` naming it), batches through the model's
:class:`~parity.server._batching.Batcher`, records the queue/compute split and queues the rows
for the lake. Outputs are numpy arrays in the signature's types (BYTES as object arrays of ``str``).
Requests are counted, and their latency observed, by the adapter once its answer is written: one
``record_answer`` call per request, so encoding and sending the answer are in the latency, and
refusals before ``infer`` (token, overload, bad body) are counted the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import parity
from parity.artifact import Artifact, failed_parity_warning
from parity.codec import NUMPY_DTYPES, EncodedColumns, describe_value, encode_column, encode_columns, values_echoed
from parity.errors import LakeFullError, ParityError, SchemaError
from parity.lake import LakeWriter
from parity.registry import Registry
from parity.server import _tracing as tracing
from parity.server._admission import Admission
from parity.server._batching import Batcher
from parity.server._config import ServerConfig
from parity.server._errors import ModelNotReady, RequestTimeout
from parity.server._metrics import UNKNOWN_MODEL, Metrics
from parity.server._repository import ModelHandle, ModelRepository

__all__ = ["EXTENSIONS", "DataPlane", "InferResult", "validate_columns"]

log = logging.getLogger("parity.server")

EXTENSIONS = ["binary_tensor_data", "model_repository", "kserve_v1", "metrics", "prediction_lake"]


@dataclass
class InferResult:
    """Outputs of one inference request, one array per declared output, in signature order."""

    model_name: str
    model_version: str
    outputs: dict[str, np.ndarray]
    request_id: str
    datatypes: dict[str, str] = field(default_factory=dict)
    """OIP datatype of each output."""
    parameters: dict[str, str] | None = None
    """Response parameters (a composition's routes and fallbacks), sent by every protocol."""


class DataPlane:
    """Protocol-independent server logic over a model repository."""

    def __init__(
        self,
        refs: tuple[str, ...] | list[str] = (),
        *,
        registry: Registry | None = None,
        trusted: bool = False,
        allow_failed_parity: bool = False,
        extra_inputs: str = "reject",
        lake: LakeWriter | None = None,
        metrics: Metrics | None = None,
        max_batch_size: int = 64,
        max_batch_delay_ms: float = 1.0,
        request_timeout_s: float = 30.0,
        max_inflight: int = 512,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.lake = lake
        self.admission = Admission(max_inflight)
        self.max_batch_size = max_batch_size
        self.max_batch_delay_ms = max_batch_delay_ms
        self.request_timeout_s = request_timeout_s
        self.reject_extra = extra_inputs == "reject"
        self.repository = ModelRepository(
            refs,
            registry=registry or Registry(),
            trusted=trusted,
            allow_failed_parity=allow_failed_parity,
            make_batcher=self._make_batcher,
            on_reload=self._on_reload,
        )
        self._started = False
        self._stopping = False
        self._reloader: asyncio.Task[None] | None = None
        self.metrics.bind(
            lake=lake,
            queues=lambda: [
                (h.name, h.version_str, h.batcher.queue_depth, self.admission.held(h))
                for h in self.repository.handles()
            ],
        )

    @classmethod
    def from_config(cls, config: ServerConfig, *, lake: LakeWriter | None = None) -> DataPlane:
        """Build a data plane from a server configuration."""
        return cls(
            config.refs,
            registry=Registry(config.registry) if config.registry else Registry(),
            trusted=config.trusted,
            allow_failed_parity=config.allow_failed_parity,
            extra_inputs=config.extra_inputs,
            lake=lake,
            max_batch_size=config.max_batch_size,
            max_batch_delay_ms=config.max_batch_delay_ms,
            request_timeout_s=config.request_timeout_s,
            max_inflight=config.max_inflight,
        )

    def _make_batcher(self, artifact: Artifact, version: str) -> Batcher:
        def run(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            # The batcher concatenates columns that infer() validated: no second validation.
            return artifact.predict_columns(EncodedColumns(columns))

        return Batcher(
            run,
            max_batch_size=self.max_batch_size,
            max_batch_delay_ms=self.max_batch_delay_ms,
            on_batch=self.metrics.observe_batch(artifact.name, version),
        )

    def _on_reload(self, name: str, ok: bool) -> None:
        if ok:
            self.metrics.reloads.labels(name).inc()
            self._publish_versions()
        else:
            self.metrics.reload_failures.labels(name).inc()

    def _publish_versions(self) -> None:
        for name in self.repository.names():
            self.metrics.active_version.labels(name).set(self.repository.get(name).version)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, reload_interval_s: float = 0.0) -> None:
        """Load every configured model; poll the registry for moving refs if an interval is given."""
        await self.repository.start()
        self._publish_versions()
        self._started = True
        if reload_interval_s > 0 and self.repository.has_dynamic_refs:
            self._reloader = asyncio.get_running_loop().create_task(
                self.repository.run_reloader(reload_interval_s), name="parity-reloader"
            )

    @property
    def draining(self) -> bool:
        """True once shutdown began (SIGTERM): answers carry ``Connection: close``."""
        return self._stopping

    def begin_shutdown(self) -> None:
        """Report not ready from now on (the process is draining); safe to call from a signal handler."""
        self._stopping = True

    async def stop(self) -> None:
        """Stop hot reload and let every accepted request finish."""
        self._stopping = True
        if self._reloader is not None:
            self._reloader.cancel()
            await asyncio.gather(self._reloader, return_exceptions=True)
            self._reloader = None
        await self.repository.close()

    # ------------------------------------------------------------------ health and metadata

    def live(self) -> bool:
        """True while the process can answer requests."""
        return True

    def ready(self) -> bool:
        """True when started, not draining, serving a model, every configured model ready and the lake writing."""
        return all(self.readiness().values())

    def readiness(self) -> dict[str, bool]:
        """Each readiness condition by name (``lake`` is false while a ``block``-mode lake keeps failing)."""
        lake_ok = self.lake is None or self.lake.healthy or self.lake.overflow != "block"
        return {
            "started": self._started,
            "accepting": not self._stopping,
            "models": self.repository.all_ready(),
            "lake": lake_ok,
        }

    def readiness_details(self) -> dict[str, Any]:
        """Readiness with its reasons, for the admin port's ``/v2/health/ready``."""
        checks = self.readiness()
        details: dict[str, Any] = {"ready": all(checks.values()), "checks": checks}
        if self.lake is not None:
            details["lake"] = self.lake.status()
        return details

    def admit(self, name: str, version: str | int | None = None) -> AbstractContextManager[None]:
        """Hold one admission slot of the model (version) a request names: Overloaded (503) if none is free.

        An adapter that takes it before decoding passes ``admitted=True`` to :meth:`infer`.
        """
        handle = self.handle(name, version)
        return self.admission.slot(handle, handle.name)

    def server_metadata(self) -> dict[str, Any]:
        """OIP server metadata."""
        return {"name": "parity", "version": parity.__version__, "extensions": list(EXTENSIONS)}

    def model_metadata(self, name: str, version: str | int | None = None) -> dict[str, Any]:
        """OIP model metadata: name, served versions, platform, inputs and outputs (shape [-1])."""
        handle = self.repository.get(name, version)
        meta: dict[str, Any] = {
            "name": handle.name,
            "versions": self.repository.versions(name),
            "platform": handle.platform,
            "inputs": handle.inputs_metadata,
            "outputs": handle.outputs_metadata,
            # Desired (what the ref points at now) vs served (a refused hot reload keeps the old one).
            "parameters": self.repository.serving(handle),
        }
        if not handle.artifact.parity_passed:
            meta["parameters"] = {"parity": "FAILED", "warning": failed_parity_warning(handle.artifact)}
        return meta

    def model_ready(self, name: str, version: str | int | None = None) -> bool:
        """True when the model (version) is loaded and takes requests; ModelNotFound if not served."""
        return self.repository.get(name, version).ready and not self._stopping

    def handle(self, name: str, version: str | int | None = None) -> ModelHandle:
        """The handle a request for ``name``/``version`` would use (for adapters decoding tensors)."""
        return self.repository.get(name, version)

    # ------------------------------------------------------------------ inference

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
        """Validate ``columns`` (input name -> list or array), run the model batched, log it, return typed outputs.

        ``arrival`` (``time.perf_counter()`` when the request arrived) starts the deadline
        (``request_timeout_s`` or the client's ``timeout_s`` if shorter, queueing included) and the
        queue-time metric. The request holds an admission slot while it runs unless the caller
        already holds one (``admitted``, see :meth:`admit`). The request itself is counted by the
        caller: :meth:`record_answer`.
        """
        if not tracing.enabled():
            return await self._infer(name, version, columns, request_id, arrival, timeout_s, admitted)
        called = time.perf_counter()
        with tracing.span("parity.infer", start=arrival, model=name, protocol=protocol, request_id=request_id):
            if arrival is not None:
                tracing.record_span("parity.decode", arrival, called)
            return await self._infer(name, version, columns, request_id, arrival, timeout_s, admitted)

    async def _infer(
        self,
        name: str,
        version: str | int | None,
        columns: Mapping[str, Any],
        request_id: str,
        arrival: float | None,
        timeout_s: float | None,
        admitted: bool,
    ) -> InferResult:
        start = time.perf_counter() if arrival is None else arrival
        budget = self.request_timeout_s if timeout_s is None else min(self.request_timeout_s, max(0.0, timeout_s))
        handle: ModelHandle | None = None
        slot = False  # a slot this call took (and gives back)
        timing: dict[str, float] = {}
        try:
            handle = self.repository.get(name, version)
            if not handle.ready:
                raise ModelNotReady(f"model {name!r} version {handle.version_str} is not ready")
            if not admitted:
                self.admission.take(handle, handle.name)
                slot = True
            encoded = validate_columns(handle, columns, reject_extra=self.reject_extra)
            rows = len(next(iter(encoded.values())))
            lake = self.lake
            if lake is not None:
                # Refuse before predicting what the lake could never take, or (shed) cannot take now.
                nbytes = lake.estimate_bytes(encoded)
                lake.check_size(rows, nbytes)
                if lake.overflow == "shed" and not lake.has_room(rows, nbytes):
                    raise LakeFullError("the prediction lake queue is full; retry later")
            submitted = time.perf_counter()
            left = budget - (submitted - start)
            try:
                if left <= 0:  # spent before the model could run (queueing, decoding): do not run it
                    raise TimeoutError
                async with asyncio.timeout(left):
                    raw = await handle.batcher.submit(encoded, rows, timing)
            except TimeoutError:
                raise RequestTimeout(
                    f"inference did not finish within {budget:g} s of the request's arrival; the server is overloaded"
                ) from None
            outputs = _typed_outputs(handle, raw)
            traced = tracing.enabled()
            if traced and "start" in timing:
                tracing.record_span("parity.queue", submitted, timing["start"], rows=rows)
                tracing.record_span("parity.model", timing["start"], timing["end"], version=handle.version_str)
            if lake is not None:
                lake_start = time.perf_counter()
                left = budget - (lake_start - start)
                try:
                    await lake.put(
                        model=handle.name, version=handle.version, signature=handle.signature, inputs=encoded,
                        outputs=outputs, request_id=request_id, latency_ms=(time.perf_counter() - start) * 1000.0,
                        timeout=max(0.0, left),
                    )  # fmt: skip
                except LakeFullError as exc:
                    if lake.overflow == "block":
                        raise RequestTimeout(
                            f"the prediction lake had no room within the request's {budget:g} s deadline"
                        ) from exc
                    raise
                finally:
                    if traced:
                        tracing.record_span("parity.lake", lake_start, time.perf_counter(), overflow=lake.overflow)
        finally:
            if slot and handle is not None:
                self.admission.give(handle)
        if "start" in timing:
            self.metrics.observe_split(
                handle.name, handle.version_str, timing["start"] - start, timing["end"] - timing["start"]
            )
        return InferResult(
            handle.name, handle.version_str, outputs, request_id, {o.name: o.datatype for o in handle.signature.outputs}
        )

    def record_answer(
        self,
        name: str,
        version: str | int | None,
        protocol: str,
        status: int,
        seconds: float | None,
        labels: tuple[str, str] | None = None,
    ) -> None:
        """Count one answered inference request; its adapter calls this once, after writing the answer.

        ``seconds`` runs from arrival to the answer; ``labels`` (model, version) are those of the
        :class:`InferResult` when there was one, else derived from the requested ``name``/``version``.
        """
        model, model_version = labels if labels is not None else self.metric_labels(name, version)
        self.metrics.record(model, model_version, protocol, str(status), seconds, ok=status < 400)

    def metric_labels(self, name: str, version: str | int | None) -> tuple[str, str]:
        """The ``model``/``version`` labels of a request for ``name``/``version`` that has no result."""
        try:
            handle = self.repository.get(name, version)
        except ParityError:
            # A known model with an unknown version keeps its name; unknown names share one label,
            # so clients cannot blow up the label cardinality.
            return (name if name in self.repository.names() else UNKNOWN_MODEL), ""
        return handle.name, handle.version_str

    # ------------------------------------------------------------------ repository extension

    async def load(self, name: str) -> None:
        """Load (or reload) model ``name``; the new version is smoke-checked before it serves."""
        await self.repository.load(name)
        self._publish_versions()

    async def unload(self, name: str) -> None:
        """Stop serving model ``name`` (in-flight requests finish)."""
        await self.repository.unload(name)
        self.metrics.active_version.remove(name)

    def repository_index(self) -> list[dict[str, Any]]:
        """Every known model with ``name``, ``version``, ``state`` (READY/UNAVAILABLE) and ``reason``."""
        return self.repository.index()


def validate_columns(
    handle: ModelHandle, columns: Mapping[str, Any], *, reject_extra: bool = True
) -> dict[str, np.ndarray]:
    """The request's columns typed by the handle's signature; a SchemaError naming the input otherwise."""
    extra = [k for k in columns if k not in handle.input_names] if reject_extra else []
    if extra:
        raise SchemaError(
            f"unknown input {extra[0]!r}; model {handle.name!r} takes {handle.signature.input_names}",
            column=extra[0],
        )
    try:
        return encode_columns(handle.signature, columns)
    except (TypeError, ValueError, OverflowError) as exc:
        # SchemaError (a ValueError) is the codec's own verdict; anything else it raised comes
        # from values it could not read at all (nested lists, numbers beyond float range).
        if isinstance(exc, ParityError):
            raise
        raise _unreadable(handle, columns, exc) from exc


def _unreadable(handle: ModelHandle, columns: Mapping[str, Any], exc: BaseException) -> SchemaError:
    """A SchemaError naming the column (and row) whose values made the codec fail with ``exc``."""
    for spec in handle.signature.inputs:
        values = columns.get(spec.name)
        if values is None or isinstance(values, np.ndarray):
            continue
        try:
            encode_column(spec, values)
        except SchemaError:
            continue
        except Exception as column_exc:
            for row, value in enumerate(values):
                if isinstance(value, list | tuple | dict):
                    return SchemaError(
                        f"column {spec.name!r} takes one {spec.datatype} value per row; "
                        f"received {describe_value(value)} at row {row}",
                        column=spec.name,
                    )
            why = str(column_exc) if values_echoed() else type(column_exc).__name__  # the text may quote values
            reason = f"column {spec.name!r}: values cannot be read as {spec.datatype} ({why})"
            return SchemaError(reason, column=spec.name)
    why = str(exc) if values_echoed() else type(exc).__name__
    return SchemaError(f"the input values cannot be read as the model's input types ({why})")


def _typed_outputs(handle: ModelHandle, raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs in signature order and types (a Python runtime may return other dtypes)."""
    out: dict[str, np.ndarray] = {}
    for spec in handle.signature.outputs:
        values = raw[spec.name]
        target = NUMPY_DTYPES[spec.datatype]
        if values.dtype != target:
            values = values.astype(target)
        out[spec.name] = values
    return out
