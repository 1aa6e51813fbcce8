"""Finding 6 and the refusals: wrapped estimators are named right, and what cannot be exported says why."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.svm import SVR

import parity
from parity.errors import UnsupportedModelError
from tests.fixtures import HOUSE_NUMERIC, HOUSE_TEXT, house


def _features(numeric: Any = None, sparse_threshold: float = 0.3) -> ColumnTransformer:
    num = numeric or make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    txt = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    return ColumnTransformer(
        [("num", num, HOUSE_NUMERIC), ("text", txt, HOUSE_TEXT)], sparse_threshold=sparse_threshold
    )


@pytest.fixture(scope="module")
def data() -> Any:
    """CSV-read house frame and its price."""
    frame, price, _, band = house(300)
    return frame, price, band


def _package(model: Any, frame: Any) -> parity.Artifact:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return parity.package(model, frame, name="wrapped")


def test_transformed_target_around_a_pipeline_exports_exactly(data: Any) -> None:
    """TTR(regressor=Pipeline(ColumnTransformer, Ridge)) was reported as "None cannot be exported"."""
    frame, price, _ = data
    inner = Pipeline([("features", _features()), ("model", Ridge())])
    model = TransformedTargetRegressor(regressor=inner, func=np.log1p, inverse_func=np.expm1).fit(frame, price)
    art = _package(model, frame)
    assert art.manifest["portable"], art.manifest["blocked_by"]
    assert art.manifest["estimator"] == "TransformedTargetRegressor(Ridge)"
    assert art.parity_report.passed
    np.testing.assert_allclose(art.predict(frame)["prediction"], model.predict(frame), rtol=1e-9)


def test_wrapped_estimator_without_export_is_named_and_its_fallback_passes_its_own_check(data: Any) -> None:
    """The Python fallback names the inner step and replays the wrapper itself (9.8e3 off on main)."""
    frame, price, _ = data
    inner = Pipeline([("features", _features()), ("model", SVR())])
    model = TransformedTargetRegressor(regressor=inner, func=np.log, inverse_func=np.exp).fit(frame, price)
    art = _package(model, frame)
    blocked = art.manifest["blocked_by"]
    assert blocked["step"] == "TransformedTargetRegressor > SVR"
    assert "None" not in blocked["reason"] and "SVR has no exact ONNX export" in blocked["reason"]
    assert art.parity_report.passed, art.parity_report.failure
    assert art.parity_report.outputs["prediction"].max_abs_diff == 0.0


def halve(v: Any) -> Any:
    """A user function (module level, so the fallback can pickle it)."""
    return v / 2.0


def double(v: Any) -> Any:
    """The inverse of ``halve``."""
    return v * 2.0


def test_unknown_inverse_function_is_named(data: Any) -> None:
    """A Python inverse_func is arbitrary code: the step says which."""
    frame, price, _ = data
    inner = Pipeline([("features", _features()), ("model", Ridge())])
    model = TransformedTargetRegressor(regressor=inner, func=halve, inverse_func=double).fit(frame, price)
    art = _package(model, frame)
    assert art.manifest["blocked_by"]["step"] == "TransformedTargetRegressor(inverse_func=double)"


def test_custom_function_transformer_lists_the_exportable_functions(data: Any) -> None:
    """FunctionTransformer with a Python function: the reason lists what would export."""
    frame, price, _ = data
    num = make_pipeline(SimpleImputer(), FunctionTransformer(double))
    model = Pipeline([("features", _features(num)), ("model", Ridge())]).fit(frame, price)
    art = _package(model, frame)
    assert art.manifest["blocked_by"]["step"] == "FunctionTransformer(double)"
    assert "np.log1p" in art.manifest["blocked_by"]["reason"]


def test_tree_splitting_on_log_feature_is_refused_with_the_reason(data: Any) -> None:
    """ONNX Runtime's log is 1 ulp from numpy's: a tree on it could flip at a split, so refuse loudly."""
    frame, price, _ = data
    num = make_pipeline(SimpleImputer(strategy="median"), FunctionTransformer(np.log1p))
    model = Pipeline([("features", _features(num)), ("model", GradientBoostingRegressor(n_estimators=10))])
    model.fit(frame, price)
    art = _package(model, frame)
    assert art.manifest["blocked_by"]["step"] == "GradientBoostingRegressor after FunctionTransformer(np.log1p)"
    assert art.parity_report.passed  # the fallback is the pipeline itself


def test_hard_voting_is_refused_at_the_boundary(data: Any) -> None:
    """VotingClassifier(voting='hard') has no probabilities: a clear UnsupportedModelError."""
    from sklearn.ensemble import VotingClassifier
    from sklearn.linear_model import LogisticRegression

    frame, _, band = data
    vote = VotingClassifier([("a", LogisticRegression(max_iter=300)), ("b", LogisticRegression(C=0.1))])
    model = Pipeline([("features", _features()), ("model", vote)]).fit(frame, band)
    with pytest.raises(UnsupportedModelError, match="predict_proba"):
        parity.package(model, frame, name="wrapped")


def test_native_categorical_splits_are_really_exported(data: Any) -> None:
    """HistGradientBoosting(categorical_features=...) has bitset splits, and they are in the graph."""
    frame, _, band = data
    enc = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    )
    ct = ColumnTransformer([("text", enc, HOUSE_TEXT), ("num", "passthrough", HOUSE_NUMERIC)])
    hgb = HistGradientBoostingClassifier(max_iter=10, max_depth=3, categorical_features=[0, 1, 2, 3])
    model = Pipeline([("features", ct), ("model", hgb)]).fit(frame, band)
    assert any(p.nodes["is_categorical"].any() for it in hgb._predictors for p in it)
    art = _package(model, frame)
    assert art.manifest["portable"], art.manifest["blocked_by"]
    assert {"unseen:hood", "null:kitchen"} <= set(art.parity_report.cases)
    assert list(art.predict(frame)["label"]) == list(model.predict(frame))
