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
from parity.export._linear import export_linear_model
from parity.export._preprocess import Origin, export_preprocessing
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
    """Return (preprocessing steps, final estimator) of a Pipeline or a bare estimator."""
    if type(model).__name__ == "Pipeline":
        steps = [s for _, s in model.steps if s is not None and s != "passthrough"]
        if not steps:
            raise ExportError("the Pipeline has no steps")
        inner_pre, final = split_pipeline(steps[-1])
        return steps[:-1] + inner_pre, final
    return [], model


def _export_estimator(est: Any, b: GraphBuilder, x: str) -> EstimatorGraph:
    from parity.export._trees import export_tree_model

    for exporter in (export_linear_model, export_tree_model):
        graph = exporter(est, b, x)
        if graph is not None:
            return graph
    kind = type(est).__name__
    raise ExportError(f"{kind} has no exact ONNX export in parity yet", step=kind)


def _raw_thresholds(origins: list[Origin | None], thresholds: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    found: dict[str, list[np.ndarray]] = {}
    for j, values in thresholds.items():
        origin = origins[j] if j < len(origins) else None
        if origin is None:
            continue
        # feature = (raw - offset) / scale  =>  raw = feature * scale + offset
        found.setdefault(origin.column, []).append(np.asarray(values, dtype=np.float64) * origin.scale + origin.offset)
    return {col: np.unique(np.concatenate(parts)) for col, parts in found.items()}


def export_model(model: Any, signature: Signature, plan: OutputPlan, feature_order: list[str]) -> ExportResult:
    """Export ``model`` to ONNX; raise ExportError naming the step that cannot be exported."""
    steps, final = split_pipeline(model)
    b = GraphBuilder(name=f"parity_{type(final).__name__}")
    features = export_preprocessing(b, signature, steps, feature_order)
    n_features = getattr(final, "n_features_in_", None)
    if n_features is not None and n_features != features.width:
        raise ExportError(
            f"the exported preprocessing yields {features.width} features but {type(final).__name__} "
            f"was fitted on {n_features}",
            step=type(final).__name__,
        )
    graph = _export_estimator(final, b, features.tensor)
    expected = "values" if plan.task == "regression" else "proba"
    if graph.kind != expected:
        raise ExportError(f"{type(final).__name__} produced {graph.kind}, expected {expected}")
    plan.emit(b, graph.output)
    return ExportResult(
        model=b.build(doc="exported by parity"),
        precision=graph.precision,
        estimator=type(final).__name__,
        raw_thresholds=_raw_thresholds(features.origins, graph.thresholds),
    )
