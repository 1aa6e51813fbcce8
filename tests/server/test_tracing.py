"""OpenTelemetry spans of an inference request (the `opentelemetry` extra), with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parity.lake import LakeWriter
from parity.registry import Registry
from parity.server import DataPlane
from parity.server import _tracing as tracing
from tests.server.conftest import ModelEnv


def _exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider can be set once per process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_spans_are_skipped_until_a_recording_provider_is_set() -> None:
    # A fresh interpreter: the global provider is still OpenTelemetry's proxy (set-once per process).
    code = (
        "from opentelemetry import trace; from opentelemetry.sdk.trace import TracerProvider\n"
        "from parity.server import _tracing as t\n"
        "assert t.ENABLED and not t.enabled()\n"
        "trace.set_tracer_provider(TracerProvider())\n"
        "assert t.enabled()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_each_request_gets_decode_queue_model_and_lake_spans(model_env: ModelEnv, tmp_path: Path) -> None:
    assert tracing.ENABLED
    exporter = _exporter()
    assert tracing.enabled()
    lake = LakeWriter(tmp_path / "lake", flush_interval_s=60)
    dp = DataPlane(["churn@production"], registry=Registry(model_env.registry_root), lake=lake)
    rows = model_env.frame.head(5)
    columns = {name: rows[name].tolist() for name in ("age", "income", "plan")}

    async def main() -> None:
        await dp.start()
        try:
            arrival = time.perf_counter()
            await dp.infer("churn", None, columns, request_id="trace-me", protocol="v2", arrival=arrival)
        finally:
            await dp.stop()

    asyncio.run(main())
    lake.close()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert {"parity.infer", "parity.decode", "parity.queue", "parity.model", "parity.lake"} <= set(spans)
    root = spans["parity.infer"]
    assert root.attributes is not None and root.attributes["parity.request_id"] == "trace-me"
    for child in ("parity.decode", "parity.queue", "parity.model", "parity.lake"):
        span = spans[child]
        assert span.parent is not None and span.parent.span_id == root.context.span_id, child
        assert root.start_time <= span.start_time <= span.end_time <= root.end_time, child
    assert spans["parity.queue"].end_time <= spans["parity.model"].start_time
    assert spans["parity.model"].end_time <= spans["parity.lake"].start_time
