"""Compositions: business logic as its own service, combining several model endpoints with plain Python rules.

Declare first, validate against the live downstreams, then run in-process or serve::

    from parity.compose import Composition, Remote, Local, Fallback
    from parity.schema import ColumnSpec, OutputSpec

    comp = Composition("triage", inputs=[ColumnSpec("x", "FP64", True)], outputs=[OutputSpec("decision", "BYTES")])
    comp.model("risk", Remote("http://127.0.0.1:8001", "risk"), reads=["probability"],
               fallback=Fallback(default={"probability": 0.0}))

    @comp.rule(per_row=True)
    def decide(row, out):
        return {"decision": "review" if out["risk"]["probability"] > 0.7 else "accept"}

    comp.run([{"x": 1.0}], models={"risk": risk_artifact})   # in-process, for unit tests

Modules, one job each::

    _declare     Composition, Remote / Local / Stub targets, Split, Fallback, Endpoint
    _check       start-up validation against downstream metadata
    _clients     OIP V2 REST (aiohttp), OIP gRPC and in-process clients
    _resilience  retry policy with jittered backoff, circuit breaker
    _engine      Runner: deadline, retries, breaker, fallback, split, shadow, the rule
    _lineage     lake records of decisions and shadows, explain, replay, skew reference
    _load        MODULE:OBJECT loader
"""

from __future__ import annotations

from parity.compose._clients import Client, ModelMeta, Reply
from parity.compose._declare import Composition, Endpoint, Fallback, Local, Remote, Split, Stub
from parity.compose._engine import Call, Decision, ModelOutputs, Models, Request, Runner
from parity.compose._lineage import ReplayResult, explain, reference, replay, shadow_model
from parity.compose._load import load_composition
from parity.compose._resilience import Breaker, Retry
from parity.errors import (
    CompositionError,
    DeclarationError,
    DownstreamError,
    DownstreamRejected,
    DownstreamTimeout,
)

__all__ = [
    "Breaker",
    "Call",
    "Client",
    "Composition",
    "CompositionError",
    "Decision",
    "DeclarationError",
    "DownstreamError",
    "DownstreamRejected",
    "DownstreamTimeout",
    "Endpoint",
    "Fallback",
    "Local",
    "ModelMeta",
    "ModelOutputs",
    "Models",
    "Remote",
    "ReplayResult",
    "Reply",
    "Request",
    "Retry",
    "Runner",
    "Split",
    "Stub",
    "explain",
    "load_composition",
    "reference",
    "replay",
    "shadow_model",
]
