"""Tree ensembles exported to ONNX agree with the library, also at and around every threshold."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from parity.errors import ExportError
from parity.export._builder import GraphBuilder
from parity.export._contract import EstimatorGraph
from parity.export._trees import export_tree_model

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

N_ROWS, N_FEATURES = 300, 5
TASKS = ["binary", "multiclass", "regression"]
# Values LightGBM reads as 0.0 (|x| <= 1e-35f) and other signed zeros / tiny values.
SPECIAL = np.array([0.0, -0.0, 1e-36, -1e-36, float(np.float32(1e-35)), -float(np.float32(1e-35)), 1e-300])


def _data(task: str, nan: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_ROWS, N_FEATURES))
    X[:, 4] = np.round(X[:, 4])  # ties and exact zeros
    signal = X[:, 0] + 0.8 * X[:, 1] - 0.5 * X[:, 2] * X[:, 3] + 0.3 * rng.normal(size=N_ROWS)
    y: np.ndarray
    if task == "binary":
        y = (signal > 0).astype(int)
    elif task == "multiclass":
        y = np.digitize(signal, [-0.6, 0.6])
    else:
        y = 2.0 * signal + np.sin(X[:, 4])
    if nan:
        X[rng.random(X.shape) < 0.1] = np.nan
    return X, y


def _export(est: Any, n_features: int = N_FEATURES) -> tuple[EstimatorGraph, ort.InferenceSession]:
    b = GraphBuilder()
    x = b.add_input("X", TensorProto.DOUBLE, [None, n_features])
    g = export_tree_model(est, b, x)
    assert g is not None
    k = len(est.classes_) if g.kind == "proba" else 1
    b.add_output(g.output, "Y", TensorProto.DOUBLE, [None, k])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return g, ort.InferenceSession(b.build().SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _probe_rows(X: np.ndarray, thresholds: dict[int, np.ndarray], nan: bool) -> np.ndarray:
    """Training rows, then rows with one feature set at / just around each threshold, then NaNs."""
    rng = np.random.default_rng(1)
    base = X[~np.isnan(X).any(axis=1)] if not nan else X
    blocks = [X]
    for f, ts in thresholds.items():
        t32 = ts.astype(np.float32)
        values = np.concatenate(
            [
                ts,
                ts * (1 + 1e-9),
                ts * (1 - 1e-9),
                np.nextafter(ts, np.inf),
                np.nextafter(ts, -np.inf),
                t32.astype(np.float64),
                np.nextafter(t32, np.float32(np.inf)).astype(np.float64),
                np.nextafter(t32, np.float32(-np.inf)).astype(np.float64),
                SPECIAL,
            ]
        )
        rows = base[rng.integers(0, len(base), len(values))].copy()
        rows[:, f] = values
        blocks.append(rows)
    if nan:
        rows = X[:100].copy()
        rows[rng.random(rows.shape) < 0.4] = np.nan
        rows[0, :] = np.nan
        blocks.append(rows)
    return np.concatenate(blocks)


def _check(est: Any, X: np.ndarray, *, nan: bool, tol: float) -> float:
    """Compare ONNX and library outputs on probe rows; returns the max (relative for values) diff."""
    g, sess = _export(est, X.shape[1])
    assert g.thresholds and all(v.dtype == np.float64 for v in g.thresholds.values())
    rows = _probe_rows(X, g.thresholds, nan)
    got = sess.run(None, {"X": rows})[0]
    if g.kind == "proba":
        want = np.asarray(est.predict_proba(rows), dtype=np.float64)
        diff = np.abs(got - want)
    else:
        want = np.asarray(est.predict(rows), dtype=np.float64).reshape(-1, 1)
        diff = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    assert got.shape == want.shape
    worst = float(diff.max())
    assert worst <= tol, f"max diff {worst:.3g} at row {rows[int(diff.max(axis=1).argmax())]!r}"
    return worst


Factory = Callable[[str], Any]

FAMILIES: dict[str, tuple[Factory, bool, float]] = {
    # name: (factory(task), NaN supported, tolerance)
    "decision_tree": (
        lambda t: (
            DecisionTreeRegressor(max_depth=8, random_state=0)
            if t == "regression"
            else DecisionTreeClassifier(max_depth=8, random_state=0)
        ),
        True,
        1e-12,
    ),
    "random_forest": (
        lambda t: (RandomForestRegressor if t == "regression" else RandomForestClassifier)(
            n_estimators=15, max_depth=6, random_state=0
        ),
        True,
        1e-12,
    ),
    "extra_trees": (
        lambda t: (ExtraTreesRegressor if t == "regression" else ExtraTreesClassifier)(
            n_estimators=15, max_depth=6, random_state=0
        ),
        True,
        1e-12,
    ),
    "gradient_boosting": (
        lambda t: (GradientBoostingRegressor if t == "regression" else GradientBoostingClassifier)(
            n_estimators=20, max_depth=3, random_state=0
        ),
        False,
        1e-12,
    ),
    "hist_gradient_boosting": (
        lambda t: (HistGradientBoostingRegressor if t == "regression" else HistGradientBoostingClassifier)(
            max_iter=20, random_state=0
        ),
        True,
        1e-12,
    ),
    # XGBoost predicts in float32; the graph emulates it, up to float32 expf rounding (1 ulp, rarely).
    "xgboost": (
        lambda t: (xgb.XGBRegressor if t == "regression" else xgb.XGBClassifier)(
            n_estimators=20, max_depth=4, verbosity=0, n_jobs=1
        ),
        True,
        1e-7,
    ),
    "lightgbm": (
        lambda t: (lgb.LGBMRegressor if t == "regression" else lgb.LGBMClassifier)(
            n_estimators=20, num_leaves=8, verbose=-1, n_jobs=1
        ),
        True,
        1e-12,
    ),
}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_matches_library(family: str, task: str) -> None:
    factory, nan, tol = FAMILIES[family]
    X, y = _data(task, nan)
    est = factory(task).fit(X, y)
    _check(est, X, nan=nan, tol=tol)


VARIANTS: dict[str, tuple[Callable[[], Any], str, bool, float]] = {
    # name: (factory, task, NaN, tolerance)
    "gb_exponential_loss": (
        lambda: GradientBoostingClassifier(loss="exponential", n_estimators=15, random_state=0),
        "binary",
        False,
        1e-12,
    ),
    "gb_zero_init_quantile": (
        lambda: GradientBoostingRegressor(loss="quantile", alpha=0.7, init="zero", n_estimators=15, random_state=0),
        "regression",
        False,
        1e-12,
    ),
    "hgb_poisson": (lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=15), "positive", True, 1e-12),
    "xgb_poisson": (
        lambda: xgb.XGBRegressor(objective="count:poisson", n_estimators=15, verbosity=0, n_jobs=1),
        "positive",
        True,
        1e-7,
    ),
    "xgb_base_score": (
        lambda: xgb.XGBClassifier(base_score=0.3, n_estimators=15, verbosity=0, n_jobs=1),
        "binary",
        True,
        1e-7,
    ),
    "xgb_random_forest": (
        lambda: xgb.XGBRFClassifier(n_estimators=8, max_depth=4, verbosity=0, n_jobs=1),
        "multiclass",
        True,
        1e-7,
    ),
    "lgbm_poisson": (
        lambda: lgb.LGBMRegressor(objective="poisson", n_estimators=15, verbose=-1, n_jobs=1),
        "positive",
        True,
        1e-12,
    ),
    "lgbm_sigmoid_param": (
        lambda: lgb.LGBMClassifier(sigmoid=0.7, n_estimators=15, verbose=-1, n_jobs=1),
        "binary",
        True,
        1e-12,
    ),
    "lgbm_random_forest": (
        lambda: lgb.LGBMRegressor(
            boosting_type="rf", bagging_freq=1, bagging_fraction=0.7, n_estimators=10, verbose=-1, n_jobs=1
        ),
        "regression",
        True,
        1e-12,
    ),
    "lgbm_no_nan_in_training": (
        lambda: lgb.LGBMClassifier(n_estimators=15, verbose=-1, n_jobs=1),
        "multiclass-clean",
        True,
        1e-12,
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_matches_library(variant: str) -> None:
    factory, task, nan, tol = VARIANTS[variant]
    if task == "positive":
        X, y = _data("regression", nan)
        y = np.exp(y / 4)
    elif task == "multiclass-clean":
        # Trained without NaN (LightGBM missing_type None: NaN is read as 0.0), probed with NaN.
        X, y = _data("multiclass", False)
    else:
        X, y = _data(task, nan)
    _check(factory().fit(X, y), X, nan=nan, tol=tol)


def test_single_leaf_tree() -> None:
    X, _ = _data("regression", False)
    est = DecisionTreeRegressor().fit(X, np.full(N_ROWS, 1.5))
    g, sess = _export(est)
    assert g.thresholds == {}
    np.testing.assert_array_equal(sess.run(None, {"X": X})[0], est.predict(X).reshape(-1, 1))


def test_xgboost_early_stopping_uses_best_iteration() -> None:
    X, y = _data("binary", True)
    y = np.where(np.random.default_rng(3).random(N_ROWS) < 0.3, 1 - y, y)  # noisy: stops early
    est = xgb.XGBClassifier(n_estimators=200, learning_rate=0.5, early_stopping_rounds=3, verbosity=0, n_jobs=1)
    est.fit(X[:200], y[:200], eval_set=[(X[200:], y[200:])], verbose=False)
    assert est.best_iteration + 1 < est.get_booster().num_boosted_rounds()
    _check(est, X, nan=True, tol=1e-7)


def test_lightgbm_early_stopping_uses_best_iteration() -> None:
    X, y = _data("regression", True)
    y = y + 3.0 * np.random.default_rng(3).normal(size=N_ROWS)
    est = lgb.LGBMRegressor(n_estimators=200, learning_rate=0.5, verbose=-1, n_jobs=1)
    # lightgbm >= 4.7 deprecates eval_set in favour of eval_X / eval_y.
    new_api = "eval_X" in inspect.signature(est.fit).parameters
    evals: dict[str, Any] = {"eval_X": X[200:], "eval_y": y[200:]} if new_api else {"eval_set": [(X[200:], y[200:])]}
    est.fit(X[:200], y[:200], callbacks=[lgb.early_stopping(3, verbose=False)], **evals)
    assert 0 < est.best_iteration_ < 200
    _check(est, X, nan=True, tol=1e-12)


def _categorical_data() -> tuple[np.ndarray, np.ndarray]:
    X, _ = _data("binary", False)
    X[:, 0] = np.random.default_rng(2).integers(0, 6, N_ROWS)
    return X, (np.isin(X[:, 0], [1, 4]) ^ (X[:, 1] > 1.0)).astype(int)


def _unsupported() -> dict[str, Callable[[], Any]]:
    Xc, yc = _categorical_data()
    Xb, yb = _data("binary", False)
    Xr, yr = _data("regression", False)
    return {
        "lgbm_categorical": lambda: lgb.LGBMClassifier(n_estimators=5, verbose=-1, min_child_samples=5).fit(
            Xc, yc, categorical_feature=[0]
        ),
        "lgbm_zero_as_missing": lambda: lgb.LGBMClassifier(n_estimators=5, verbose=-1, zero_as_missing=True).fit(
            Xb, yb
        ),
        "lgbm_linear_tree": lambda: lgb.LGBMRegressor(n_estimators=5, verbose=-1, linear_tree=True).fit(Xr, yr),
        "xgb_gblinear": lambda: xgb.XGBRegressor(booster="gblinear", n_estimators=5, verbosity=0).fit(Xr, yr),
        "xgb_dart": lambda: xgb.XGBRegressor(booster="dart", n_estimators=5, verbosity=0).fit(Xr, yr),
        "xgb_multi_softmax": lambda: xgb.XGBClassifier(objective="multi:softmax", n_estimators=5, verbosity=0).fit(
            *_data("multiclass", False)
        ),
        "xgb_missing_zero": lambda: xgb.XGBClassifier(missing=0.0, n_estimators=5, verbosity=0).fit(Xb, yb),
        "rf_multi_output": lambda: RandomForestRegressor(n_estimators=3).fit(Xr, np.c_[yr, -yr]),
        "gb_custom_init": lambda: GradientBoostingRegressor(init=LinearRegression(), n_estimators=5).fit(Xr, yr),
        "unfitted_forest": lambda: RandomForestClassifier(),
    }


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_hgb_native_categorical_splits_are_exact(task: str) -> None:
    """Bitset splits: known codes left/right, NaN, negative, unseen and non-integer codes as missing."""
    X, yc = _categorical_data()
    X[np.random.default_rng(3).random(N_ROWS) < 0.1, 0] = np.nan
    cls = HistGradientBoostingClassifier if task == "binary" else HistGradientBoostingRegressor
    est = cls(categorical_features=[0, 4], max_iter=8, max_depth=4, random_state=0)
    est.fit(X, yc if task == "binary" else yc + X[:, 1])
    assert any(p.nodes["is_categorical"].any() for it in est._predictors for p in it)
    _, sess = _export(est)
    rows = np.concatenate([X, X[:12].copy()])
    rows[-12:, 0] = [np.nan, -1.0, 6.0, 7.0, 255.0, 300.0, 0.5, 2.0, 3.0, 1e9, -0.0, 5.0]
    got = sess.run(None, {"X": rows})[0]
    want = est.predict_proba(rows) if task == "binary" else est.predict(rows).reshape(-1, 1)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", list(_unsupported()))
def test_unsupported_raises_export_error(case: str) -> None:
    est = _unsupported()[case]()
    b = GraphBuilder()
    x = b.add_input("X", TensorProto.DOUBLE, [None, N_FEATURES])
    with pytest.raises(ExportError) as info:
        export_tree_model(est, b, x)
    assert info.value.step == type(est).__name__


def test_non_tree_model_returns_none() -> None:
    X, y = _data("binary", False)
    b = GraphBuilder()
    x = b.add_input("X", TensorProto.DOUBLE, [None, N_FEATURES])
    assert export_tree_model(LogisticRegression().fit(X, y), b, x) is None
    assert b.nodes == [] and b.initializers == []
