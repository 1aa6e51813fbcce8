"""Export linear models in double precision: ``X @ coef.T + intercept`` and the exact link."""

from __future__ import annotations

from typing import Any

import numpy as np

from parity.errors import ExportError
from parity.export._builder import GraphBuilder
from parity.export._contract import EstimatorGraph

__all__ = ["export_linear_model"]

_CLASSIFIERS = {"LogisticRegression", "LogisticRegressionCV", "SGDClassifier"}
_REGRESSORS = {
    "LinearRegression",
    "Ridge",
    "RidgeCV",
    "Lasso",
    "LassoCV",
    "ElasticNet",
    "ElasticNetCV",
    "SGDRegressor",
    "HuberRegressor",
    "BayesianRidge",
    "ARDRegression",
}


def _decision(b: GraphBuilder, x: str, coef: np.ndarray, intercept: np.ndarray) -> str:
    w = b.const(np.ascontiguousarray(coef.T, dtype=np.float64), "coef")
    z = b.node("MatMul", [x, w], "decision")
    return b.node("Add", [z, b.const(np.asarray(intercept, dtype=np.float64).reshape(1, -1), "intercept")])


def _is_ovr(est: Any) -> bool:
    multi = getattr(est, "multi_class", "auto")
    if multi == "ovr":
        return True
    return multi in ("auto", "deprecated") and getattr(est, "solver", "") == "liblinear"


def export_linear_model(est: Any, b: GraphBuilder, x: str, margin: bool = False) -> EstimatorGraph | None:
    """Append a linear model's graph; None when ``est`` is not a supported linear model.

    ``margin`` returns ``decision_function`` (``X @ coef.T + intercept``) instead of probabilities.
    """
    kind = type(est).__name__
    if kind in _REGRESSORS:
        coef = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64))
        if coef.shape[0] != 1:
            raise ExportError(f"{kind} with several targets is not supported", step=kind)
        intercept = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))
        return EstimatorGraph(_decision(b, x, coef, intercept), "values", "float64")
    if kind not in _CLASSIFIERS:
        if margin and kind in ("LinearSVC", "RidgeClassifier", "RidgeClassifierCV", "Perceptron"):
            # Calibration and stacking use their decision_function only.
            coef = np.asarray(est.coef_, dtype=np.float64)
            return EstimatorGraph(_decision(b, x, coef, np.atleast_1d(est.intercept_)), "decision", "float64")
        return None
    if kind == "SGDClassifier" and est.loss != "log_loss":
        raise ExportError(f"SGDClassifier(loss={est.loss!r}) has no predict_proba", step=kind)
    coef = np.asarray(est.coef_, dtype=np.float64)
    intercept = np.asarray(est.intercept_, dtype=np.float64)
    z = _decision(b, x, coef, intercept)
    if margin:
        return EstimatorGraph(z, "decision", "float64")
    if coef.shape[0] == 1:
        p = b.node("Sigmoid", [z], "p1")
        q = b.node("Sub", [b.const(np.float64(1.0), "one"), p], "p0")
        return EstimatorGraph(b.node("Concat", [q, p], "proba", axis=1), "proba", "float64")
    if kind == "SGDClassifier" or _is_ovr(est):
        # One-vs-rest: independent sigmoids normalised to sum to one, as scikit-learn does.
        p = b.node("Sigmoid", [z], "ovr")
        total = b.node("ReduceSum", [p, b.const(np.array([1], dtype=np.int64), "axis")], keepdims=1)
        return EstimatorGraph(b.node("Div", [p, total], "proba"), "proba", "float64")
    return EstimatorGraph(b.node("Softmax", [z], "proba", axis=1), "proba", "float64")
