"""Real data, real pipelines (issue 7): frames built the way pd.read_csv builds them, library defaults on."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from typer.testing import CliRunner

import parity
from parity.cli import app


def csv_frame(frame: pd.DataFrame, tmp_path: Path, **read_kw: Any) -> pd.DataFrame:
    """``frame`` written with pandas and read back with pd.read_csv (object/str text with NaN)."""
    path = tmp_path / f"data-{len(list(tmp_path.glob('data-*.csv')))}.csv"
    frame.to_csv(path, index=False)
    return pd.read_csv(path, **read_kw)


def customers(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Mixed numeric/text columns with missing values in both, as a CRM export has them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "income": rng.normal(50_000, 15_000, n).round(2),
            "city": rng.choice(["paris", "lyon", "nice", "lille"], n),
            "plan": rng.choice(["basic", "pro"], n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "age"] = np.nan
    frame.loc[rng.random(n) < 0.1, "city"] = None
    frame.loc[rng.random(n) < 0.05, "plan"] = None
    return frame


def churn(frame: pd.DataFrame) -> np.ndarray:
    """A target depending on every column."""
    score = frame["income"].to_numpy() / 50_000 + (frame["city"] == "paris").to_numpy() - (frame["plan"] == "pro")
    return np.where(score + np.nan_to_num(frame["age"].to_numpy(), nan=40) / 80 > 1.2, "churn", "stay")


def text_pipeline(estimator: Any, encoder: Any = None) -> Pipeline:
    """Impute + scale numbers, impute + one-hot text: the pipeline of the scikit-learn docs."""
    text = make_pipeline(SimpleImputer(strategy="most_frequent"), encoder or OneHotEncoder(handle_unknown="ignore"))
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["age", "income"]),
            ("txt", text, ["city", "plan"]),
        ]
    )
    return make_pipeline(pre, estimator)


# Text read from CSV is object dtype on pandas 2 and str on pandas 3 (NaN for missing in both);
# dtype=object forces pandas 2's object columns on pandas 3 as well.
READS = {"default": {}, "object": {"dtype": {"city": object, "plan": object}}}


@pytest.mark.parametrize("read", list(READS))
@pytest.mark.parametrize(
    "pipeline",
    [
        lambda: text_pipeline(LogisticRegression(max_iter=500)),
        lambda: text_pipeline(RandomForestClassifier(n_estimators=15, random_state=0)),
        # No imputer: NaN is itself a fitted category of the encoder.
        lambda: make_pipeline(
            ColumnTransformer(
                [("txt", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"])], remainder="passthrough"
            ),
            HistGradientBoostingClassifier(max_iter=20, random_state=0),
        ),
        lambda: text_pipeline(
            HistGradientBoostingClassifier(max_iter=20, random_state=0),
            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
        ),
    ],
    ids=["logistic", "forest", "onehot-nan-category", "ordinal"],
)
def test_missing_text_as_nan_packages_exactly(pipeline: Any, read: str, tmp_path: Path) -> None:
    data = csv_frame(customers(), tmp_path, **READS[read])
    assert data["city"].isna().any() and all(v != v for v in data["city"][data["city"].isna()])  # NaN, not None
    model = pipeline().fit(data, churn(data))
    art = parity.package(model, data, name="crm")
    assert art.portable and art.parity_passed, art.parity_report.failure
    spec = art.signature.input("city")
    assert spec.missing == "NaN" and art.manifest["signature"]["inputs"][2]["missing"] == "NaN"
    assert art.parity_report.cases["null:city"] > 0
    # Every spelling of "missing" means the training data's NaN.
    rows = data.iloc[:4].reset_index(drop=True)
    nan_city = pd.Series([np.nan] * 4, dtype=rows["city"].dtype)
    expected = model.predict_proba(rows.assign(city=nan_city))[:, list(model.classes_).index("stay")]
    for missing in (None, np.nan, pd.NA):
        city = pd.Series([missing] * 4, dtype=object)
        got = art.predict(rows.assign(city=city))
        np.testing.assert_allclose(got["probability"], expected, rtol=1e-9)


def test_missing_text_as_none_keeps_none_semantics(tmp_path: Path) -> None:
    """Object columns holding None (built in code, not read from CSV): None is a category for sklearn."""
    data = customers().astype({"city": object, "plan": object})
    data["city"] = data["city"].where(data["city"].notna(), None)
    model = text_pipeline(LogisticRegression(max_iter=500)).fit(data, churn(data))
    art = parity.package(model, data, name="crm")
    assert art.parity_passed and art.signature.input("city").missing == "None"
    rows = data.iloc[:3].reset_index(drop=True)
    want = model.predict_proba(rows.assign(city=pd.Series([None] * 3, dtype=object)))[:, 1]
    got = art.predict(rows.assign(city=pd.Series([np.nan] * 3, dtype=object)))
    np.testing.assert_allclose(got["probability"], want, rtol=1e-9)


def test_mixed_none_and_nan_warns(caplog: pytest.LogCaptureFixture) -> None:
    data = customers().astype({"city": object})
    data["city"] = data["city"].fillna("paris")
    data.loc[data.index[:5], "city"] = None
    data.loc[data.index[5:30], "city"] = np.nan
    assert {type(v) for v in data["city"][data["city"].isna()]} == {type(None), float}
    model = text_pipeline(LogisticRegression(max_iter=500)).fit(data, churn(data))
    with caplog.at_level(logging.WARNING, logger="parity.schema"):
        art = parity.package(model, data, name="crm", allow_mismatch=True)
    assert "'city' marks missing text in more than one way" in caplog.text
    assert "5 x None" in caplog.text and "NaN" in caplog.text
    assert art.signature.input("city").missing == "NaN"


def test_cli_maps_empty_csv_field_and_json_null_to_the_marker(tmp_path: Path) -> None:
    data = csv_frame(customers(), tmp_path)
    model = text_pipeline(LogisticRegression(max_iter=500)).fit(data, churn(data))
    art = parity.package(model, data, name="crm")
    directory = art.save(tmp_path / "art")
    rows = data.iloc[:5].reset_index(drop=True)
    rows["city"] = pd.Series([np.nan] * 5, dtype=rows["city"].dtype)
    want = model.predict_proba(rows)[:, 1]
    rows.to_csv(tmp_path / "in.csv", index=False)  # NaN -> empty field
    records = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in rows.to_dict("records")]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    runner = CliRunner()
    for source in ("in.csv", "in.jsonl"):
        result = runner.invoke(
            app, ["predict", str(directory), "--input", str(tmp_path / source), "--output", str(tmp_path / "o.parquet")]
        )
        assert result.exit_code == 0, result.output
        got = pd.read_parquet(tmp_path / "o.parquet")
        np.testing.assert_allclose(got["probability"], want, rtol=1e-9)
        (tmp_path / "o.parquet").unlink()


# --------------------------------------------------------------------------- finding 3: thresholds on string classes


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Pipeline]:
    """String classes ["bad", "good"] (sorted by sklearn, so "good" is classes_[1])."""
    data = csv_frame(customers(), tmp_path_factory.mktemp("credit"))
    y = np.where(churn(data) == "churn", "bad", "good")
    return data, text_pipeline(LogisticRegression(max_iter=500)).fit(data, y)


def test_threshold_labels_naming_classes_are_matched_by_name(credit: tuple[pd.DataFrame, Pipeline]) -> None:
    data, model = credit
    assert list(model.classes_) == ["bad", "good"]
    art = parity.package(model, data, name="credit", postprocess=parity.Threshold(0.3, labels=("good", "bad")))
    p_bad = model.predict_proba(data)[:, 0]
    out = art.predict(data)
    np.testing.assert_allclose(out["probability"], p_bad, rtol=1e-9)  # P("bad"), the thresholded class
    np.testing.assert_array_equal(out["label"], np.where(p_bad >= 0.3, "bad", "good"))
    assert 0 < (out["label"] == "bad").mean() < 1
    outputs = {o["name"]: o for o in art.manifest["signature"]["outputs"]}
    assert outputs["probability"]["description"] == "probability of class 'bad'"
    assert "'bad' when P('bad') >= 0.3" in outputs["label"]["description"]


def test_threshold_positive_chooses_the_class(credit: tuple[pd.DataFrame, Pipeline]) -> None:
    data, model = credit
    art = parity.package(
        model, data, name="credit", postprocess=parity.Threshold(0.8, labels=("approve", "review"), positive="bad")
    )
    p_bad = model.predict_proba(data)[:, 0]
    out = art.predict(data)
    np.testing.assert_allclose(out["probability"], p_bad, rtol=1e-9)
    np.testing.assert_array_equal(out["label"], np.where(p_bad >= 0.8, "review", "approve"))
    assert art.parity_passed


@pytest.mark.parametrize(
    ("step", "needles"),
    [
        (parity.Threshold(0.5, labels=("good", "bad"), positive="good"), ["disagree", "['bad', 'good']"]),
        (parity.Threshold(0.5, labels=("good", "other")), ["mix", "['good', 'other']", "['bad', 'good']"]),
        (parity.Threshold(0.5, positive="ugly"), ["'ugly'", "['bad', 'good']"]),
        (
            [parity.ClassLabels({"bad": "no", "good": "yes"}), parity.Threshold(0.5, labels=("a", "b"))],
            ["both ClassLabels"],
        ),
        (parity.ClassLabels({"bad": "x", "good": "x"}), ["same label"]),
    ],
)
def test_inconsistent_labels_are_refused_with_both_lists(
    credit: tuple[pd.DataFrame, Pipeline], step: Any, needles: list[str]
) -> None:
    data, model = credit
    with pytest.raises(parity.errors.UnsupportedModelError) as info:
        parity.package(model, data, name="credit", postprocess=step)
    for needle in needles:
        assert needle in str(info.value)


def test_class_labels_then_threshold_positive(credit: tuple[pd.DataFrame, Pipeline]) -> None:
    data, model = credit
    steps = [parity.ClassLabels({"bad": "reject", "good": "accept"}), parity.Threshold(0.4, positive="bad")]
    art = parity.package(model, data, name="credit", postprocess=steps)
    p_bad = model.predict_proba(data)[:, 0]
    out = art.predict(data)
    np.testing.assert_array_equal(out["label"], np.where(p_bad >= 0.4, "reject", "accept"))
    assert art.signature.outputs[1].description == "probability of class 'bad'"
