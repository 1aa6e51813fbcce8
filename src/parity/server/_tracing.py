"""Optional OpenTelemetry spans of inference requests (``pip install parity[opentelemetry]``).

Without the ``opentelemetry`` package, or while no recording tracer provider is set (the global
provider is still OpenTelemetry's proxy or no-op one), :func:`enabled` is false and the data plane
skips every span: creating non-recording spans cost ~20 us per request (measured). Otherwise each request gets
a ``parity.infer`` span (model, version, protocol, rows, request id) and, as its children,
``parity.decode`` (REST/gRPC body to columns), ``parity.queue`` (waiting for a batch),
``parity.model`` (the model run that computed it; one run may serve several requests) and
``parity.lake`` (waiting for the lake to accept the rows). Exporting is left to the application
(``opentelemetry-instrument``, or a ``TracerProvider`` set up by the embedding code): parity only
creates spans through the global tracer provider.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["ENABLED", "enabled", "record_span", "span"]

try:
    from opentelemetry import trace as _trace
except ImportError:  # the optional extra is not installed
    _trace = None  # type: ignore[assignment]
    _SILENT: tuple[type, ...] = ()
else:
    _SILENT = (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider)

ENABLED = _trace is not None
"""True when the ``opentelemetry`` package is installed (spans are recorded once a provider is set)."""


def enabled() -> bool:
    """True when spans would be recorded: OpenTelemetry installed and a real tracer provider set."""
    # Checked per request: the application may set its provider after parity was imported.
    return _trace is not None and not isinstance(_trace.get_tracer_provider(), _SILENT)


# perf_counter() stamps (what the data plane measures) to the epoch nanoseconds spans take.
_EPOCH_OFFSET_NS = time.time_ns() - time.perf_counter_ns()


def _tracer() -> Any:
    assert _trace is not None
    return _trace.get_tracer("parity.server")


@contextlib.contextmanager
def span(name: str, start: float | None = None, **attributes: Any) -> Iterator[Any]:
    """A span around the block (from ``start``, a perf_counter stamp, if given); None without OpenTelemetry."""
    if _trace is None:
        yield None
        return
    begin = None if start is None else int(start * 1e9) + _EPOCH_OFFSET_NS
    with _tracer().start_as_current_span(name, start_time=begin, attributes=_clean(attributes)) as current:
        yield current


def record_span(name: str, start: float, end: float, **attributes: Any) -> None:
    """A finished child span from two ``time.perf_counter()`` stamps (for phases measured after the fact)."""
    if _trace is None:
        return
    started = _tracer().start_span(name, start_time=int(start * 1e9) + _EPOCH_OFFSET_NS, attributes=_clean(attributes))
    started.end(end_time=int(end * 1e9) + _EPOCH_OFFSET_NS)


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {f"parity.{k}": v for k, v in attributes.items() if v is not None}
