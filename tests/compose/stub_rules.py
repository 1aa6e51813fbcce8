"""A composition over stubs only (no server, no artifact): the CLI tests load it as ``stub_rules.py:composition``.

``STUB_THRESHOLD`` moves the rule's cut, so a replay under another value changes decisions.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from parity.compose import Composition, Stub
from parity.schema import ColumnSpec, OutputSpec


def doubler(columns: dict[str, np.ndarray]) -> dict[str, Any]:
    """The scorer: twice the input."""
    return {"score": np.asarray(columns["x"], dtype=float) * 2.0}


def tripler(columns: dict[str, np.ndarray]) -> dict[str, Any]:
    """The shadow candidate: three times the input."""
    return {"score": np.asarray(columns["x"], dtype=float) * 3.0}


def build(threshold: float) -> Composition:
    """x -> score = 2x (shadowed by 3x) -> high/low at ``threshold``."""
    comp = Composition(
        "stubbed",
        inputs=[ColumnSpec("x", "FP64", False)],
        outputs=[OutputSpec("decision", "BYTES"), OutputSpec("score", "FP64")],
        version=3,
    )
    comp.model("scorer", Stub(doubler, name="doubler"), reads=["score"], shadow=Stub(tripler, name="tripler"))

    @comp.rule(per_row=True)
    def decide(row: dict[str, Any], out: dict[str, dict[str, Any]]) -> dict[str, Any]:
        score = out["scorer"]["score"]
        return {"decision": "high" if score > threshold else "low", "score": score}

    return comp


composition = build(float(os.environ.get("STUB_THRESHOLD", "5.0")))

not_a_composition = 42


def factory() -> Composition:
    """A callable returning the composition (load_composition calls factories)."""
    return build(5.0)
