"""Export a fitted pipeline to one ONNX graph: raw inputs -> preprocessing -> estimator -> outputs.

The graph takes one 1-D input per raw column (named as the column, typed by the signature) and
returns one 1-D output per declared output. Preprocessing runs in double precision with the
fitted float64 constants; each estimator family has its own exact recipe (see
``EstimatorGraph.precision``), recorded in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from parity.errors import ExportError
from parity.export._builder import GraphBuilder
from parity.export._contract import EstimatorGraph
from parity.export._estimators import TargetTransformed, estimator_name, export_estimator
from parity.export._preprocess import export_preprocessing
from parity.schema import Signature

if TYPE_CHECKING:
    # Only for annotations: parity.postprocess itself builds on this package's GraphBuilder.
    from parity.postprocess import OutputPlan

__all__ = ["EstimatorGraph", "ExportResult", "export_model", "split_pipeline"]


@dataclass
class ExportResult:
    """The exported graph and what the parity check needs to know about it."""

    model: onnx.ModelProto
    precision: str
    estimator: str
    raw_thresholds: dict[str, np.ndarray] = field(default_factory=dict)
    """Raw-input values that land on a split threshold of the estimator, per raw column."""


def split_pipeline(model: Any) -> tuple[list[Any], Any]:
    """Return (preprocessing steps, final estimator) of a Pipeline or a bare estimator.

    A TransformedTargetRegressor around a Pipeline contributes that Pipeline's preprocessing;
    the final estimator is then a :class:`TargetTransformed` (the wrapper and its inner estimator).
    """
    kind = type(model).__name__
    if kind == "Pipeline":
        steps = [s for _, s in model.steps if s is not None and s != "passthrough"]
        if not steps:
            raise ExportError("the Pipeline has no steps", step="Pipeline")
        inner_pre, final = split_pipeline(steps[-1])
        return steps[:-1] + inner_pre, final
    if kind == "TransformedTargetRegressor" and hasattr(model, "regressor_"):
        inner_pre, inner = split_pipeline(model.regressor_)
        return inner_pre, TargetTransformed(model, inner)
    return [], model


def export_model(model: Any, signature: Signature, plan: OutputPlan, feature_order: list[str]) -> ExportResult:
    """Export ``model`` to ONNX; raise ExportError naming the step that cannot be exported."""
    steps, final = split_pipeline(model)
    name = estimator_name(final)
    b = GraphBuilder(name=f"parity_{type(final).__name__}")
    features = export_preprocessing(b, signature, steps, feature_order, consumer=name)
    n_features = getattr(final, "n_features_in_", None)
    if n_features is not None and n_features != features.width:
        raise ExportError(
            f"the exported preprocessing yields {features.width} features but {name} was fitted on {n_features}",
            step=name,
        )
    graph = export_estimator(final, b, features)
    expected = "values" if plan.task == "regression" else "proba"
    if graph.kind != expected:
        raise ExportError(f"{name} produced {graph.kind}, expected {expected}", step=name)
    plan.emit(b, graph.output)
    return ExportResult(
        model=b.build(doc="exported by parity"),
        precision=graph.precision,
        estimator=name,
        raw_thresholds=graph.raw_thresholds,
    )
