"""The data plane: the one place protocol logic lives; REST and gRPC adapters only translate.

Every adapter calls these methods (names and signatures are a contract with the gRPC adapter):

* ``live()``, ``ready()``, ``server_metadata()``
* ``model_metadata(name, version=None)``, ``model_ready(name, version=None)``
* ``await infer(name, version, columns, *, request_id, protocol) -> InferResult``
* ``await load(name)``, ``await unload(name)``, ``repository_index()``

``version`` is a string (``""`` and None both mean "the default version"). Errors are parity
exceptions; adapters turn them into transport codes with :func:`parity.server._errors.status_for`.
``infer`` validates with :func:`parity.codec.encode_columns` (a missing, unknown or mistyped input
raises :class:`~parity.errors.SchemaError` naming it), batches through the model's
:class:`~parity.server._batching.Batcher`, counts metrics and queues the rows for the lake.
Outputs are numpy arrays in the signature's types (BYTES as object arrays of ``str``).
"""

from __future__ import annotations

import asyncio
import logging
import reprlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import parity
from parity.artifact import Artifact, failed_parity_warning
from parity.codec import NUMPY_DTYPES, EncodedColumns, encode_column, encode_columns
from parity.errors import ParityError, SchemaError
from parity.lake import LakeWriter
from parity.registry import Registry
from parity.server._batching import Batcher
from parity.server._config import ServerConfig
from parity.server._errors import ModelNotFound, ModelNotReady, RequestTimeout, status_for
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
    ) -> None:
        self.metrics = metrics or Metrics()
        self.lake = lake
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
            lake=(lambda: (lake.written, lake.dropped, lake.queued)) if lake is not None else None,
            queues=lambda: [(h.name, h.version_str, h.batcher.queue_depth) for h in self.repository.handles()],
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
        """True when started, not shutting down, and every configured model is ready."""
        return self._started and not self._stopping and self.repository.all_ready()

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
        protocol: str = "rest",
    ) -> InferResult:
        """Validate ``columns`` (input name -> list or array), run the model batched, return typed outputs."""
        start = time.perf_counter()
        label_model, label_version = UNKNOWN_MODEL, ""
        try:
            handle = self.repository.get(name, version)
            label_model, label_version = handle.name, handle.version_str
            if not handle.ready:
                raise ModelNotReady(f"model {name!r} version {handle.version_str} is not ready")
            encoded = validate_columns(handle, columns, reject_extra=self.reject_extra)
            rows = len(next(iter(encoded.values())))
            try:
                async with asyncio.timeout(self.request_timeout_s):
                    raw = await handle.batcher.submit(encoded, rows)
            except TimeoutError:
                raise RequestTimeout(
                    f"inference did not finish within {self.request_timeout_s:g} s; the server is overloaded"
                ) from None
            outputs = _typed_outputs(handle, raw)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            status = status_for(exc)
            code = status.grpc if protocol == "grpc" else str(status.http)
            if isinstance(exc, ModelNotFound):
                # A known model with an unknown version keeps its name; unknown names share one label.
                label_model = name if name in self.repository.names() else UNKNOWN_MODEL
                label_version = ""
            self.metrics.record(label_model, label_version, protocol, code, None, ok=False)
            raise
        elapsed = time.perf_counter() - start
        ok_code = "OK" if protocol == "grpc" else "200"
        self.metrics.record(handle.name, handle.version_str, protocol, ok_code, elapsed, ok=True)
        if self.lake is not None:
            self.lake.write(
                model=handle.name,
                version=handle.version,
                signature=handle.signature,
                inputs=encoded,
                outputs=outputs,
                request_id=request_id,
                latency_ms=elapsed * 1000.0,
            )
        return InferResult(
            handle.name, handle.version_str, outputs, request_id, {o.name: o.datatype for o in handle.signature.outputs}
        )

    def record_error(self, name: str, protocol: str, exc: BaseException) -> None:
        """Count a request that failed in an adapter before reaching :meth:`infer` (e.g. bad JSON)."""
        try:
            handle: ModelHandle | None = self.repository.get(name)
        except ModelNotFound:
            handle = None
        status = status_for(exc)
        code = status.grpc if protocol == "grpc" else str(status.http)
        model, version = (handle.name, handle.version_str) if handle else (UNKNOWN_MODEL, "")
        self.metrics.record(model, version, protocol, code, None, ok=False)

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
                        f"received {type(value).__name__} {reprlib.repr(value)} at row {row}",
                        column=spec.name,
                    )
            reason = f"column {spec.name!r}: values cannot be read as {spec.datatype} ({column_exc})"
            return SchemaError(reason, column=spec.name)
    return SchemaError(f"the input values cannot be read as the model's input types ({exc})")


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
