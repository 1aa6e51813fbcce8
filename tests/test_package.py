"""package(): every estimator family x task exports with parity <= 1e-5, edge cases included."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge

import parity
from tests.fixtures import pipeline, raw_frame, targets


def _xgb(task: str) -> Any:
    import xgboost

    cls = xgboost.XGBRegressor if task == "regression" else xgboost.XGBClassifier
    return cls(n_estimators=30, max_depth=4, learning_rate=0.3, n_jobs=1, verbosity=0)


def _lgbm(task: str) -> Any:
    import lightgbm

    cls = lightgbm.LGBMRegressor if task == "regression" else lightgbm.LGBMClassifier
    return cls(n_estimators=30, num_leaves=15, n_jobs=1, verbose=-1)


FAMILIES: dict[str, Any] = {
    "linear": lambda task: Ridge() if task == "regression" else LogisticRegression(max_iter=500),
    "random_forest": lambda task: (RandomForestRegressor if task == "regression" else RandomForestClassifier)(
        n_estimators=15, max_depth=6, random_state=0, n_jobs=1
    ),
    "gradient_boosting": lambda task: (
        GradientBoostingRegressor if task == "regression" else GradientBoostingClassifier
    )(n_estimators=25, max_depth=3, random_state=0),
    "hist_gradient_boosting": lambda task: (
        HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    )(max_iter=25, random_state=0),
    "xgboost": _xgb,
    "lightgbm": _lgbm,
}
TASKS = ["binary", "multiclass", "regression"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return raw_frame(500)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_packages_with_exact_parity(family: str, task: str, data: pd.DataFrame) -> None:
    model = pipeline(FAMILIES[family](task)).fit(data, targets(data, task))
    art = parity.package(model, data, name=f"{family}-{task}")
    report = art.parity_report
    assert art.portable, art.manifest["blocked_by"]
    assert report.passed, report.failure
    assert art.task == task
    # The threshold cases exist for every tree family: that is where float32 preprocessing broke.
    if family != "linear":
        assert any(c.startswith("threshold:") for c in report.cases), report.cases
    assert any(c.startswith("null:") for c in report.cases)
    assert any(c.startswith("unseen:") for c in report.cases)
    for name, diff in report.outputs.items():
        assert diff.mismatches == 0, (name, diff)
        assert diff.max_rel_diff <= 1e-5
    # Independent check: predictions equal the Python model on fresh rows.
    fresh = raw_frame(200, seed=7)
    got = art.predict(fresh)
    if task == "regression":
        np.testing.assert_allclose(got["prediction"], model.predict(fresh), rtol=1e-5, atol=1e-5)
    else:
        proba = model.predict_proba(fresh)
        assert list(got["label"]) == list(model.classes_[np.argmax(proba, axis=1)])
        if task == "binary":
            np.testing.assert_allclose(got["probability"], proba[:, 1], atol=1e-5)


def test_threshold_postprocess_is_in_the_graph(data: pd.DataFrame, tmp_path: Any) -> None:
    model = pipeline(LogisticRegression(max_iter=500)).fit(data, targets(data, "binary"))
    art = parity.package(model, data, name="churn", postprocess=parity.Threshold(0.7, labels=("stay", "churn")))
    art.save(tmp_path / "a")
    loaded = parity.load(tmp_path / "a")
    out = loaded.predict(data)
    expected = np.where(model.predict_proba(data)[:, 1] >= 0.7, "churn", "stay")
    assert list(out["label"]) == list(expected)
    assert loaded.signature.output_names == ["label", "probability"]
    # The decision lives in the ONNX graph itself, not in Python.
    import onnxruntime as ort

    sess = ort.InferenceSession(loaded.file_bytes("model.onnx"), providers=["CPUExecutionProvider"])
    assert {o.name for o in sess.get_outputs()} == {"label", "probability"}


def test_manifest_records_everything(data: pd.DataFrame) -> None:
    model = pipeline(GradientBoostingClassifier(n_estimators=10)).fit(data, targets(data, "binary"))
    art = parity.package(
        model, data, name="m", metrics={"auc": 0.8}, description="d", tags={"team": "risk"}, tolerance=1e-6
    )
    m = art.manifest
    assert m["format"] == "parity.artifact/1"
    assert m["metrics"] == {"auc": 0.8}
    assert m["lineage"]["tags"] == {"team": "risk"}
    assert m["training_data"]["rows"] == len(data)
    assert m["environment"]["packages"]["scikit-learn"]
    assert m["parity"]["tolerance"] == 1e-6
    assert m["parity"]["precision"].startswith("float32")
    inputs = {c["name"]: c for c in m["signature"]["inputs"]}
    assert inputs["tenure"]["datatype"] == "FP64" and inputs["tenure"]["nullable"] is True
    assert inputs["age"]["datatype"] == "FP64" and inputs["age"]["nullable"] is True  # imputed: accepts nulls
    assert inputs["region"]["datatype"] == "BYTES" and inputs["region"]["nullable"] is True
    assert inputs["plan"]["categories"] == ["basic", "plus", "pro"]
    assert set(m["files"]) == {"model.onnx", "profile.json", "parity_sample.parquet"}


def test_target_column_is_excluded(data: pd.DataFrame) -> None:
    y = targets(data, "binary")
    model = pipeline(LogisticRegression(max_iter=500)).fit(data, y)
    art = parity.package(model, data.assign(churned=y), name="m", target="churned")
    assert "churned" not in art.signature.input_names


def test_ordinal_encoder_pipeline(data: pd.DataFrame) -> None:
    model = pipeline(RandomForestClassifier(n_estimators=10, random_state=0), encoder="ordinal")
    model.fit(data, targets(data, "multiclass"))
    art = parity.package(model, data, name="ord")
    assert art.portable and art.parity_passed


def test_class_labels_rename(data: pd.DataFrame) -> None:
    model = pipeline(LogisticRegression(max_iter=500)).fit(data, targets(data, "multiclass"))
    art = parity.package(model, data, name="m", postprocess=parity.ClassLabels({0: "low", 1: "mid", 2: "high"}))
    out = art.predict(data.head(20))
    assert set(out["label"]) <= {"low", "mid", "high"}
    assert list(out.columns) == ["label", "probability_low", "probability_mid", "probability_high"]


def test_unfitted_model_is_rejected(data: pd.DataFrame) -> None:
    with pytest.raises(parity.UnsupportedModelError, match="not fitted"):
        parity.package(pipeline(LogisticRegression()), data, name="m")


def test_threshold_on_multiclass_is_rejected(data: pd.DataFrame) -> None:
    model = pipeline(LogisticRegression(max_iter=500)).fit(data, targets(data, "multiclass"))
    with pytest.raises(parity.UnsupportedModelError, match="binary"):
        parity.package(model, data, name="m", postprocess=parity.Threshold(0.5))
