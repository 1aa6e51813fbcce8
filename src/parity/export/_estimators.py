"""Export the final estimator, including the meta-estimators built from supported ones.

Leaf estimators (linear models, tree ensembles, MLPs) are written by their own modules on a
double feature tensor. Here they are dispatched, and the scikit-learn meta-estimators are
composed from them exactly as scikit-learn composes their predictions: ``Pipeline`` members,
``TransformedTargetRegressor`` (inverse transform of the regressor's prediction),
``VotingClassifier``/``VotingRegressor`` (``np.average`` of the members), ``StackingClassifier``/
``StackingRegressor`` (members' ``stack_method_`` outputs, the binary first column dropped,
optional passthrough, then the final estimator) and ``CalibratedClassifierCV`` (sigmoid or
isotonic calibrators on each fold's ``decision_function``/``predict_proba``, averaged).

Every estimator's split thresholds are mapped back to raw input columns through the feature
origins of the block it receives, so threshold probes reach trees inside meta-estimators too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import Any, Literal

import numpy as np
from onnx import TensorProto

from parity.errors import ExportError
from parity.export._builder import GraphBuilder
from parity.export._contract import EstimatorGraph
from parity.export._features import apply_ufunc, known_ufunc
from parity.export._linear import export_linear_model
from parity.export._mlp import export_mlp
from parity.export._preprocess import Block, Origin, _step_name

__all__ = ["TargetTransformed", "estimator_name", "export_estimator"]

Response = Literal["predict", "predict_proba", "decision_function"]


@dataclass(frozen=True)
class TargetTransformed:
    """A TransformedTargetRegressor whose regressor's preprocessing was hoisted into the pipeline."""

    wrapper: Any
    inner: Any

    @property
    def n_features_in_(self) -> int | None:
        """What the inner estimator was fitted on."""
        return getattr(self.inner, "n_features_in_", None)


def estimator_name(est: Any) -> str:
    """How an estimator is named in messages and the manifest (wrappers show what they wrap)."""
    if isinstance(est, TargetTransformed):
        return f"TransformedTargetRegressor({estimator_name(est.inner)})"
    if type(est).__name__ == "Pipeline":
        return estimator_name(est.steps[-1][1])
    return _step_name(est)


def _raw(origins_block: Block, graph: EstimatorGraph) -> dict[str, list[np.ndarray]]:
    found: dict[str, list[np.ndarray]] = {}
    for j, values in graph.thresholds.items():
        origin = origins_block.origins[j] if j < origins_block.width else None
        if origin is not None:
            raw = origin.to_raw(np.asarray(values, dtype=np.float64))
            found.setdefault(origin.column, []).append(raw[np.isfinite(raw)])
    for col, parts in graph.raw_thresholds.items():
        found.setdefault(col, []).append(np.asarray(parts, dtype=np.float64))
    return found


def _merge(graphs: list[dict[str, list[np.ndarray]]]) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {}
    for g in graphs:
        for col, parts in g.items():
            out.setdefault(col, []).extend(parts)
    return {col: np.unique(np.concatenate(parts)) if parts else np.empty(0) for col, parts in out.items()}


def _leaf(est: Any, b: GraphBuilder, block: Block, margin: bool) -> EstimatorGraph:
    from parity.export._trees import export_tree_model

    graph = export_linear_model(est, b, block.tensor, margin=margin)
    if graph is None:
        graph = export_mlp(est, b, block.tensor, margin=margin)
    if graph is None:
        graph = export_tree_model(est, b, block.tensor, sparse=block.sparse, margin=margin)
    if graph is None:
        kind = _step_name(est)
        raise ExportError(f"{kind} has no exact ONNX export in parity yet", step=kind)
    for j in graph.thresholds:
        origin = block.origins[j] if j < block.width else None
        if origin is not None and origin.inexact:
            kind = _step_name(est)
            raise ExportError(
                f"{kind} splits on {origin.inexact}({origin.column}); ONNX Runtime computes {origin.inexact} "
                "within 1 ulp of numpy, not bit for bit, so a value at a split could take the other branch. "
                "Trees are invariant to monotone transforms: drop the FunctionTransformer before the tree "
                "(or use np.sqrt / np.clip / np.abs, which are exact)",
                step=f"{kind} after FunctionTransformer({origin.inexact})",
            )
    if block.sparse and "sparse" not in graph.precision:
        # Linear models, MLPs and scikit-learn trees read an absent entry as 0.0, like dense.
        graph.precision += ";sparse-input:absent=0"
    graph.raw_thresholds = _merge([_raw(block, graph)])
    graph.thresholds = {}
    return graph


def _response(est: Any, b: GraphBuilder, block: Block, method: Response) -> EstimatorGraph:
    """The ``[N, K]`` output of ``est.<method>(X)`` (1-D outputs as one column)."""
    graph = export_estimator(est, b, block, margin=method == "decision_function")
    if method == "predict" and graph.kind == "proba":
        raise ExportError(
            f"{_step_name(est)}.predict (labels) cannot feed a meta-estimator exactly", step=_step_name(est)
        )
    return graph


def _voting(est: Any, b: GraphBuilder, block: Block) -> EstimatorGraph:
    kind = _step_name(est)
    classifier = kind == "VotingClassifier"
    if classifier and est.voting != "soft":
        raise ExportError("VotingClassifier(voting='hard') has no predict_proba; use voting='soft'", step=kind)
    members = [_response(m, b, block, "predict_proba" if classifier else "predict") for m in est.estimators_]
    weights = est._weights_not_none
    # np.average: sum over members in order (of w * p when weighted), divided by the weight sum.
    terms = (
        [m.output for m in members]
        if weights is None
        else [
            b.node("Mul", [m.output, b.const(np.float64(w), "weight")], "weighted")
            for m, w in zip(members, weights, strict=True)
        ]
    )
    total = reduce(lambda acc, t: b.node("Add", [acc, t], "vote_sum"), terms)
    scale = float(len(terms)) if weights is None else float(reduce(lambda a, c: a + c, [float(w) for w in weights]))
    out = b.node("Div", [total, b.const(np.float64(scale), "vote_scale")], "vote")
    precision = "+".join(sorted({m.precision for m in members}))
    raw = _merge([{c: [v] for c, v in m.raw_thresholds.items()} for m in members])
    return EstimatorGraph(out, "proba" if classifier else "values", f"voting({precision})", raw_thresholds=raw)


def _stacking(est: Any, b: GraphBuilder, block: Block) -> EstimatorGraph:
    kind = _step_name(est)
    classifier = kind == "StackingClassifier"
    metas: list[str] = []
    members: list[EstimatorGraph] = []
    for member, method in zip(est.estimators_, est.stack_method_, strict=True):
        g = _response(member, b, block, method)
        out = g.output
        if method == "predict_proba" and classifier and len(est.classes_) == 2:
            out = b.node("Slice", [out, *(b.const([v], "s", np.int64) for v in (1, 2, 1))], "p1")
        metas.append(out)
        members.append(g)
    sparse = False
    if est.passthrough:
        metas.append(block.tensor)
        sparse = block.sparse  # sparse.hstack keeps the stacked matrix sparse
    meta = b.node("Concat", metas, "meta", axis=1) if len(metas) > 1 else metas[0]
    n_meta = est.final_estimator_.n_features_in_ - (block.width if est.passthrough else 0)
    origins: list[Origin | None] = [None] * n_meta
    if est.passthrough:
        origins += block.origins
    meta_block = Block(meta, False, origins, sparse=sparse)
    final = export_estimator(est.final_estimator_, b, meta_block)
    precision = "+".join(sorted({m.precision for m in members}))
    raw = _merge([{c: [v] for c, v in g.raw_thresholds.items()} for g in [*members, final]])
    return EstimatorGraph(
        final.output,
        "proba" if classifier else "values",
        f"stacking({precision}->{final.precision})",
        raw_thresholds=raw,
    )


def _isotonic(b: GraphBuilder, x: str, cal: Any) -> str:
    """IsotonicRegression.predict: clip, then scipy interp1d's linear formula on the same segment."""
    xs = np.asarray(cal.X_thresholds_, dtype=np.float64)
    ys = np.asarray(cal.y_thresholds_, dtype=np.float64)
    if len(ys) == 1:
        zero = b.node("Mul", [x, b.const(np.float64(0.0), "zero")])
        return b.node("Add", [zero, b.const(np.float64(ys[0]), "constant")])
    if cal.out_of_bounds == "clip":
        lo, hi = b.const(np.float64(cal.X_min_), "x_min"), b.const(np.float64(cal.X_max_), "x_max")
        x = b.node("Where", [b.node("Less", [x, lo]), lo, x], "clip_lo")
        x = b.node("Where", [b.node("Greater", [x, hi]), hi, x], "clip_hi")
    # searchsorted(xs, x) (side left) = number of thresholds < x, clipped to [1, m - 1].
    below = b.cast(b.node("Less", [b.const(xs.reshape(1, -1), "iso_x"), x]), TensorProto.INT64)
    idx = b.node("ReduceSum", [below, b.const([1], "axis", np.int64)], "iso_idx", keepdims=1)
    idx = b.node("Clip", [idx, b.const(np.int64(1), "one"), b.const(np.int64(len(xs) - 1), "last")], "iso_hi")
    lo_idx = b.node("Sub", [idx, b.const(np.int64(1), "one")], "iso_lo")
    gx = b.const(xs, "xs")
    gy = b.const(ys, "ys")
    shape = b.const([-1, 1], "shape", np.int64)
    xl = b.node("Reshape", [b.node("Gather", [gx, lo_idx]), shape])
    xh = b.node("Reshape", [b.node("Gather", [gx, idx]), shape])
    yl = b.node("Reshape", [b.node("Gather", [gy, lo_idx]), shape])
    yh = b.node("Reshape", [b.node("Gather", [gy, idx]), shape])
    slope = b.node("Div", [b.node("Sub", [yh, yl]), b.node("Sub", [xh, xl])], "slope")
    return b.node("Add", [b.node("Mul", [slope, b.node("Sub", [x, xl])]), yl], "isotonic")


def _calibrated(est: Any, b: GraphBuilder, block: Block) -> EstimatorGraph:
    kind = _step_name(est)
    n_classes = len(est.classes_)
    axis = b.const([1], "axis", np.int64)
    folds: list[str] = []
    members: list[EstimatorGraph] = []
    for cc in est.calibrated_classifiers_:
        if cc.method not in ("sigmoid", "isotonic"):
            raise ExportError(f"{kind}(method={cc.method!r}) is not supported; use sigmoid or isotonic", step=kind)
        base = cc.estimator
        method: Response = "decision_function" if hasattr(base, "decision_function") else "predict_proba"
        g = _response(base, b, block, method)
        members.append(g)
        pred = g.output
        if method == "predict_proba" and n_classes == 2:
            pred = b.node("Slice", [pred, *(b.const([v], "s", np.int64) for v in (1, 2, 1))], "p1")
        base_classes = list(np.asarray(base.classes_).tolist())
        all_classes = list(np.asarray(cc.classes).tolist())
        cols: dict[int, str] = {}
        for k, calibrator in enumerate(cc.calibrators):
            t = b.node("Slice", [pred, *(b.const([v], "s", np.int64) for v in (k, k + 1, 1))], "cal_in")
            if type(calibrator).__name__ == "_SigmoidCalibration":
                # expit(-(a * T + b))
                z = b.node(
                    "Add", [b.node("Mul", [b.const(np.float64(calibrator.a_)), t]), b.const(np.float64(calibrator.b_))]
                )
                p = b.node("Sigmoid", [b.node("Neg", [z])], "platt")
            else:
                p = _isotonic(b, t, calibrator)
            cls = 1 if n_classes == 2 else all_classes.index(base_classes[k])
            cols[cls] = p
        zero = b.node("Mul", [cols[next(iter(cols))], b.const(np.float64(0.0))], "zero_col")
        zero = b.node("Where", [b.node("IsNaN", [zero]), b.const(np.float64(0.0)), zero])
        if n_classes == 2:
            p1 = cols[1]
            proba = b.node("Concat", [b.node("Sub", [b.const(np.float64(1.0)), p1]), p1], "cal_proba", axis=1)
        else:
            unnormed = b.node("Concat", [cols.get(k, zero) for k in range(n_classes)], "cal_raw", axis=1)
            den = b.node("ReduceSum", [unnormed, axis], "cal_den", keepdims=1)
            uniform = b.const(np.full((1, n_classes), 1.0 / n_classes), "uniform")
            is_zero = b.node("Equal", [den, b.const(np.float64(0.0))])
            proba = b.node("Where", [is_zero, uniform, b.node("Div", [unnormed, den])], "cal_proba")
        # proba[(1.0 < proba) & (proba <= 1.0 + 1e-5)] = 1.0
        one = b.const(np.float64(1.0))
        over = b.node(
            "And", [b.node("Greater", [proba, one]), b.node("LessOrEqual", [proba, b.const(np.float64(1.0 + 1e-5))])]
        )
        folds.append(b.node("Where", [over, one, proba], "cal_fold"))
    # mean_proba = zeros; += each fold; /= n
    total = reduce(lambda acc, t: b.node("Add", [acc, t], "cal_sum"), folds)
    out = b.node("Div", [total, b.const(np.float64(len(folds)), "n_folds")], "calibrated")
    precision = "+".join(sorted({m.precision for m in members}))
    raw = _merge([{c: [v] for c, v in m.raw_thresholds.items()} for m in members])
    return EstimatorGraph(out, "proba", f"calibrated({precision})", raw_thresholds=raw)


def _inverse_target(b: GraphBuilder, x: str, ttr: Any) -> str:
    """TransformedTargetRegressor: ``transformer_.inverse_transform`` of the prediction."""
    t = ttr.transformer_
    kind = type(t).__name__
    name = "TransformedTargetRegressor"
    if kind == "FunctionTransformer":
        if not known_ufunc(t.inverse_func):
            fn = getattr(t.inverse_func, "__name__", repr(t.inverse_func))
            raise ExportError(f"{name}(inverse_func={fn}) runs arbitrary Python", step=f"{name}(inverse_func={fn})")
        return apply_ufunc(b, x, t.inverse_func, t.inv_kw_args, name)
    if kind == "StandardScaler":
        if t.with_std:
            x = b.node("Mul", [x, b.const(np.asarray(t.scale_, dtype=np.float64).reshape(1, -1))], "inv_scale")
        if t.with_mean:
            x = b.node("Add", [x, b.const(np.asarray(t.mean_, dtype=np.float64).reshape(1, -1))], "inv_mean")
        return x
    if kind == "MinMaxScaler":
        x = b.node("Sub", [x, b.const(np.asarray(t.min_, dtype=np.float64).reshape(1, -1))], "inv_min")
        return b.node("Div", [x, b.const(np.asarray(t.scale_, dtype=np.float64).reshape(1, -1))], "inv_scale")
    raise ExportError(
        f"{name}(transformer={kind}) is not supported; use func/inverse_func or StandardScaler", step=name
    )


def _ttr(ttr: Any, inner: Any, b: GraphBuilder, block: Block) -> EstimatorGraph:
    try:
        graph = export_estimator(inner, b, block)
    except ExportError as exc:
        inner_step = exc.step or _step_name(inner)
        raise ExportError(
            f"TransformedTargetRegressor > {exc}", step=f"TransformedTargetRegressor > {inner_step}"
        ) from exc
    out = _inverse_target(b, graph.output, ttr)
    return EstimatorGraph(out, "values", f"{graph.precision};inverse-target", raw_thresholds=graph.raw_thresholds)


def export_estimator(est: Any, b: GraphBuilder, block: Block, margin: bool = False) -> EstimatorGraph:
    """Append ``est``'s prediction graph on ``block``; ``margin`` asks for ``decision_function``."""
    from parity.export._preprocess import apply_transformer

    kind = _step_name(est)
    if isinstance(est, TargetTransformed):
        return _ttr(est.wrapper, est.inner, b, block)
    if kind == "Pipeline":
        steps = [s for _, s in est.steps if s is not None and s != "passthrough"]
        for step in steps[:-1]:
            block = apply_transformer(b, block, step)
        return export_estimator(steps[-1], b, block, margin)
    if margin and kind in ("VotingClassifier", "StackingClassifier", "CalibratedClassifierCV"):
        raise ExportError(f"{kind}.decision_function inside another meta-estimator is not supported", step=kind)
    if kind == "TransformedTargetRegressor":
        return _ttr(est, est.regressor_, b, block)
    if kind in ("VotingClassifier", "VotingRegressor"):
        return _voting(est, b, block)
    if kind in ("StackingClassifier", "StackingRegressor"):
        return _stacking(est, b, block)
    if kind == "CalibratedClassifierCV":
        return _calibrated(est, b, block)
    return _leaf(est, b, block, margin)
