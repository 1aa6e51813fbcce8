"""Export MLPClassifier / MLPRegressor in double precision, as ``_forward_pass_fast`` computes them."""

from __future__ import annotations

from typing import Any

import numpy as np

from parity.errors import ExportError
from parity.export._builder import GraphBuilder
from parity.export._contract import EstimatorGraph

__all__ = ["export_mlp"]


def _activation(b: GraphBuilder, x: str, name: str, step: str) -> str:
    if name == "identity":
        return x
    if name == "relu":
        # np.maximum(x, 0); Max keeps NaN like numpy does.
        return b.node("Max", [x, b.const(np.float64(0.0), "zero")], "relu")
    if name == "tanh":
        return b.node("Tanh", [x], "tanh")
    if name == "logistic":
        return b.node("Sigmoid", [x], "logistic")
    if name == "softmax":
        return b.node("Softmax", [x], "softmax", axis=1)
    raise ExportError(f"{step}: activation {name!r} is not supported", step=step)


def export_mlp(est: Any, b: GraphBuilder, x: str, margin: bool = False) -> EstimatorGraph | None:
    """Append a fitted MLP's forward pass; None when ``est`` is not an MLP."""
    kind = type(est).__name__
    if kind not in ("MLPClassifier", "MLPRegressor"):
        return None
    if margin:
        raise ExportError(f"{kind} has no decision_function", step=kind)
    n_layers = len(est.coefs_)
    h = x
    for i, (w, c) in enumerate(zip(est.coefs_, est.intercepts_, strict=True)):
        h = b.node("MatMul", [h, b.const(np.asarray(w, dtype=np.float64), f"mlp_w{i}")], f"mlp_z{i}")
        h = b.node("Add", [h, b.const(np.asarray(c, dtype=np.float64).reshape(1, -1), f"mlp_b{i}")])
        last = i == n_layers - 1
        h = _activation(b, h, est.out_activation_ if last else est.activation, kind)
    if kind == "MLPRegressor":
        if est.n_outputs_ != 1:
            raise ExportError(f"{kind} with {est.n_outputs_} outputs is not supported", step=kind)
        return EstimatorGraph(h, "values", "float64")
    if est.out_activation_ == "logistic":
        if len(est.classes_) != 2:
            raise ExportError(f"{kind} multi-label output is not supported", step=kind)
        q = b.node("Sub", [b.const(np.float64(1.0), "one"), h], "p0")
        return EstimatorGraph(b.node("Concat", [q, h], "proba", axis=1), "proba", "float64")
    return EstimatorGraph(h, "proba", "float64")
