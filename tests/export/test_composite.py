"""Meta-estimators in the corners the gauntlet does not reach: sparse passthrough, multiclass, no weights."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, StackingClassifier, VotingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeRegressor

import parity
from tests.fixtures import HOUSE_NUMERIC, HOUSE_TEXT, house

xgb = pytest.importorskip("xgboost")


def _features() -> ColumnTransformer:
    num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    txt = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    return ColumnTransformer([("num", num, HOUSE_NUMERIC), ("text", txt, HOUSE_TEXT)])


@pytest.fixture(scope="module")
def data() -> Any:
    """CSV-read house frame and its targets."""
    frame, price, _, band = house(300)
    return frame, price, band


def _exact(model: Any, frame: Any) -> parity.Artifact:
    art = parity.package(model, frame, name="composite")
    assert art.manifest["portable"], art.manifest["blocked_by"]
    assert art.parity_report.passed, art.parity_report.failure
    return art


def test_stacking_passthrough_on_sparse_input_feeds_xgboost_a_sparse_meta_matrix(data: Any) -> None:
    """passthrough=True keeps the stacked matrix sparse: XGBoost then reads a 0.0 probability as missing."""
    frame, _, band = data
    codes = np.unique(band, return_inverse=True)[1]
    stack = StackingClassifier(
        [("lr", LogisticRegression(max_iter=500)), ("rf", RandomForestClassifier(n_estimators=8, random_state=0))],
        final_estimator=xgb.XGBClassifier(n_estimators=8, max_depth=3),
        passthrough=True,
        cv=3,
    )
    model = Pipeline([("features", _features()), ("model", stack)]).fit(frame, codes)
    art = _exact(model, frame)
    assert "absent=missing" in art.manifest["parity"]["precision"]
    assert list(art.predict(frame)["label"]) == list(model.predict(frame))


def test_calibrated_linear_svc_multiclass_sigmoid(data: Any) -> None:
    """decision_function of a multiclass LinearSVC, one sigmoid per class, renormalised."""
    frame, _, band = data
    model = Pipeline(
        [("features", _features()), ("model", CalibratedClassifierCV(LinearSVC(), method="sigmoid", cv=3))]
    ).fit(frame, band)
    art = _exact(model, frame)
    got = art.predict(frame)
    want = model.predict_proba(frame)
    for k, cls in enumerate(model.classes_):
        np.testing.assert_allclose(got[f"probability_{cls}"], want[:, k], rtol=1e-12, atol=1e-15)


def test_calibrated_isotonic_out_of_bounds_and_ensemble_false(data: Any) -> None:
    """Isotonic calibrators clip outside their fitted range; ensemble=False keeps one calibrated model."""
    frame, _, band = data
    cal = CalibratedClassifierCV(LogisticRegression(max_iter=500), method="isotonic", cv=3, ensemble=False)
    model = Pipeline([("features", _features()), ("model", cal)]).fit(frame, band)
    extreme = frame.iloc[:20].copy()
    extreme["area"] = np.linspace(-1e7, 1e7, 20)
    art = _exact(model, frame)
    want = model.predict_proba(extreme)
    got = art.predict(extreme)
    for k, cls in enumerate(model.classes_):
        np.testing.assert_allclose(got[f"probability_{cls}"], want[:, k], rtol=1e-12, atol=1e-15)


def test_voting_regressor_without_weights(data: Any) -> None:
    """np.average without weights: the mean of the members."""
    frame, price, _ = data
    vote = VotingRegressor([("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=5, random_state=0))])
    model = Pipeline([("features", _features()), ("model", vote)]).fit(frame, price)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        art = _exact(model, frame)
    np.testing.assert_allclose(art.predict(frame)["prediction"], model.predict(frame), rtol=1e-12)
