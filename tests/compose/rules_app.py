"""A composition over the test models (churn classifier over REST, spend regressor over gRPC) and a business rule.

URLs come from the environment so tests can point it at servers on free ports.
"""

from __future__ import annotations

import os
from typing import Any

from parity.compose import Composition, Fallback, Remote, Retry
from parity.schema import ColumnSpec, OutputSpec

INPUTS = [ColumnSpec("age", "FP64", True), ColumnSpec("income", "FP64", True), ColumnSpec("plan", "BYTES", True)]
OUTPUTS = [OutputSpec("decision", "BYTES"), OutputSpec("value", "FP64")]


def decide(row: dict[str, Any], out: dict[str, dict[str, Any]], threshold: float) -> dict[str, Any]:
    """The business rule: churn risk and predicted spend -> an action and its expected value."""
    p = out["churn"]["probability"]
    spend = out["spend"]["prediction"]
    decision = ("retain" if spend > 50 else "call") if p > threshold else "ignore"
    return {"decision": decision, "value": float(spend * (1.0 - p))}


def build(
    churn_url: str, spend_url: str, *, threshold: float = 0.5, spend_fallback: bool = True, deadline_s: float = 2.0
) -> Composition:
    """The composition, with the spend model falling back to a constant when it fails."""
    scale = deadline_s / 2.0  # per-call timeouts keep their share of the deadline
    comp = Composition("retention", inputs=INPUTS, outputs=OUTPUTS, version=1, deadline_s=deadline_s)
    comp.model("churn", Remote(churn_url, "churn"), reads=["probability", "label"], timeout_s=1.0 * scale)
    comp.model(
        "spend",
        Remote(spend_url, "spend"),
        reads=["prediction"],
        timeout_s=0.5 * scale,
        retry=Retry(attempts=2, backoff_s=0.01),
        breaker_failures=3,
        breaker_reset_s=0.5,
        fallback=Fallback(default={"prediction": 0.0}) if spend_fallback else None,
    )
    comp.rule(per_row=True)(lambda row, out: decide(row, out, threshold))
    return comp


composition = build(
    os.environ.get("TEST_CHURN_URL", "http://127.0.0.1:9"),
    os.environ.get("TEST_SPEND_URL", "grpc://127.0.0.1:9"),
    threshold=float(os.environ.get("TEST_THRESHOLD", "0.5")),
    spend_fallback=os.environ.get("TEST_SPEND_FALLBACK", "1") == "1",
    deadline_s=float(os.environ.get("TEST_DEADLINE_S", "2.0")),
)
