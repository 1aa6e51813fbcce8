"""Finding 2: ColumnTransformer's default sparse output, reproduced per estimator family.

With ``sparse_threshold=0.3`` (the default) and 40 one-hot columns the ColumnTransformer hands
the estimator a scipy sparse matrix in which every 0.0 is absent. XGBoost reads absent entries as
missing, so the graph must too; LightGBM, scikit-learn trees and linear models read them as 0.0.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler
from sklearn.tree import DecisionTreeRegressor

import parity
from tests.fixtures import HOUSE_NUMERIC, HOUSE_TEXT, house

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")


def _features() -> ColumnTransformer:
    num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    txt = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    return ColumnTransformer([("num", num, HOUSE_NUMERIC), ("text", txt, HOUSE_TEXT)])  # default sparse_threshold


FAMILIES: dict[str, tuple[Any, str, str]] = {
    "xgboost-regressor": (lambda: xgb.XGBRegressor(n_estimators=30, max_depth=4), "price", "absent=missing"),
    "xgboost-classifier": (lambda: xgb.XGBClassifier(n_estimators=20, max_depth=3), "is_expensive", "absent=missing"),
    "lightgbm-regressor": (lambda: lgb.LGBMRegressor(n_estimators=20, verbose=-1), "price", "absent=0"),
    "random-forest": (lambda: RandomForestClassifier(n_estimators=10, random_state=0), "band", "absent=0"),
    "gradient-boosting": (lambda: GradientBoostingRegressor(n_estimators=20, random_state=0), "price", "absent=0"),
    "decision-tree": (lambda: DecisionTreeRegressor(max_depth=6, random_state=0), "price", "absent=0"),
    "ridge": (lambda: Ridge(), "price", "absent=0"),
    "logistic": (lambda: LogisticRegression(max_iter=500), "expensive", "absent=0"),
    "mlp": (lambda: MLPRegressor(hidden_layer_sizes=(4,), max_iter=200, random_state=0), "price", "absent=0"),
}


@pytest.fixture(scope="module")
def data() -> Any:
    """CSV-read house frame and its targets."""
    frame, price, expensive, band = house(400)
    targets = {"price": price / 1000.0, "expensive": expensive, "band": band}
    return frame, {**targets, "is_expensive": (expensive == "yes").astype(int)}  # XGBoost wants 0..K-1


def test_the_default_column_transformer_output_is_sparse_with_40_one_hot_columns(data: Any) -> None:
    """The premise: defaults give a sparse matrix with no stored zeros."""
    frame, _ = data
    ct = _features().fit(frame)
    out = ct.transform(frame)
    assert ct.sparse_output_ and sparse.issparse(out)
    assert out.shape[1] - len(HOUSE_NUMERIC) == 40
    assert not np.any(out.data == 0.0)  # zeros of the dense numeric block are dropped, not stored


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_sparse_semantics_are_exact_per_family(family: str, data: Any) -> None:
    """Every family packages exactly with the default sparse output; the manifest records the reading."""
    frame, targets = data
    build, target, reading = FAMILIES[family]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a tiny MLP, on purpose
        pipe = Pipeline([("features", _features()), ("model", build())]).fit(frame, targets[target])
    art = parity.package(pipe, frame, name="sparse")
    precision = art.manifest["parity"]["precision"]
    assert art.manifest["portable"]
    assert art.parity_report.passed, art.parity_report.failure
    assert f"sparse-input:{reading}" in precision


def test_xgboost_answer_depends_on_sparsity_and_the_graph_follows_the_sparse_one(data: Any) -> None:
    """The bug (1.96e5 off on main): dense and sparse inputs give XGBoost different answers."""
    frame, targets = data
    pipe = Pipeline([("features", _features()), ("model", xgb.XGBRegressor(n_estimators=30, max_depth=4))])
    pipe.fit(frame, targets["price"])
    X = pipe[0].transform(frame)
    as_sparse = pipe[-1].predict(X)
    as_dense = pipe[-1].predict(X.toarray())
    assert np.max(np.abs(as_sparse - as_dense)) > 1.0  # the semantics really differ
    art = parity.package(pipe, frame, name="sparse")
    got = art.predict(frame)["prediction"].to_numpy()
    np.testing.assert_allclose(got, as_sparse, rtol=1e-6)
    assert np.max(np.abs(got - as_dense)) > 1.0
    # Threshold probes include the value each numeric feature has at 0.0 (absent -> missing).
    assert any(case.startswith("threshold:") for case in art.parity_report.cases)


def test_a_step_after_a_sparse_column_transformer_that_may_store_zeros_is_refused_clearly(data: Any) -> None:
    """PolynomialFeatures on the sparse matrix: not verified, so the Python fallback names the step."""
    frame, targets = data
    pipe = Pipeline(
        [("features", _features()), ("poly", PolynomialFeatures(2)), ("model", xgb.XGBRegressor(n_estimators=5))]
    ).fit(frame, targets["price"])
    art = parity.package(pipe, frame, name="sparse")
    assert art.manifest["blocked_by"]["step"] == "PolynomialFeatures"
    assert "sparse_threshold=0" in art.manifest["blocked_by"]["reason"]
