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


# --------------------------------------------------------------------------- finding 4: nullability from the pipeline


def _complete(tmp_path: Path) -> pd.DataFrame:
    """No missing value anywhere in training (an int column, a float column, text)."""
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {
            "visits": rng.integers(0, 50, n),
            "spend": rng.gamma(2.0, 30.0, n).round(2),
            "score": rng.normal(size=n),
            "segment": rng.choice(["a", "b", "c"], n),
        }
    )
    return csv_frame(frame, tmp_path)


def _partly_imputed() -> Pipeline:
    pre = ColumnTransformer(
        [
            ("imputed", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["visits", "spend"]),
            ("raw", StandardScaler(), ["score"]),
            ("txt", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), ["segment"]),
        ]
    )
    return make_pipeline(pre, LogisticRegression(max_iter=500))


def test_imputed_columns_accept_nulls_without_nulls_in_training(tmp_path: Path) -> None:
    data = _complete(tmp_path)
    assert not data.isna().any().any()
    y = (data["spend"] + 20 * data["score"] > 60).astype(int)
    model = _partly_imputed().fit(data, y)
    art = parity.package(model, data, name="shop")
    nullable = {c.name: c.nullable for c in art.signature.inputs}
    assert nullable == {"visits": True, "spend": True, "score": False, "segment": True}
    assert art.signature.input("visits").datatype == "FP64"  # a null needs a float tensor
    assert {"null:visits", "null:spend", "null:segment"} <= set(art.parity_report.cases)  # proven, not assumed
    rows = data.head(3).astype({"visits": float, "segment": object})
    rows.loc[0, "visits"], rows.loc[1, "segment"] = np.nan, np.nan
    np.testing.assert_allclose(art.predict(rows)["probability"], model.predict_proba(rows)[:, 1], rtol=1e-9)
    with pytest.raises(parity.SchemaError, match="'score' is not nullable"):
        art.predict(rows.assign(score=np.nan))


def test_nan_aware_estimator_columns_accept_nulls(tmp_path: Path) -> None:
    data = _complete(tmp_path)
    y = (data["spend"] > 60).astype(int)
    model = make_pipeline(
        ColumnTransformer([("num", "passthrough", ["visits", "spend", "score"])]),
        HistGradientBoostingClassifier(max_iter=15, random_state=0),
    ).fit(data, y)
    art = parity.package(model, data, name="hgb")
    assert all(c.nullable for c in art.signature.inputs if c.name != "segment")
    assert art.parity_passed and art.parity_report.cases["null:spend"] > 0


def test_nullable_override_is_validated(tmp_path: Path) -> None:
    data = _complete(tmp_path)
    y = (data["spend"] > 60).astype(int)
    model = _partly_imputed().fit(data, y)
    art = parity.package(model, data, name="shop", nullable=["spend"])
    assert [c.name for c in art.signature.inputs if c.nullable] == ["spend"]
    with pytest.raises(parity.errors.UnsupportedModelError, match=r"'score' is declared nullable.*SimpleImputer"):
        parity.package(model, data, name="shop", nullable=["score"])
    with pytest.raises(parity.SchemaError, match="unknown column"):
        parity.package(model, data, name="shop", nullable=["nope"])


# --------------------------------------------------------------------------- finding 7: target= as labels


def test_target_accepts_a_series_or_array_and_records_the_labels(tmp_path: Path) -> None:
    data = csv_frame(customers(), tmp_path)
    y = pd.Series(churn(data), name="churned")
    model = text_pipeline(LogisticRegression(max_iter=500)).fit(data, y)
    art = parity.package(model, data, name="crm", target=y)
    summary = art.manifest["training_data"]["target"]
    assert summary["name"] == "churned" and summary["rows"] == len(data)
    assert summary["distribution"] == {k: int(v) for k, v in y.value_counts().sort_index().items()}
    art2 = parity.package(model, data.assign(churned=y), name="crm", target=y)  # y's column is not an input
    assert art2.signature.input_names == ["age", "income", "city", "plan"]
    art3 = parity.package(model, data.assign(churned=y), name="crm", target="churned")
    assert "churned" not in art3.signature.input_names
    assert art3.manifest["training_data"]["target"]["distribution"] == summary["distribution"]
    measured = parity.package(model, data, name="crm", target=y, metrics=["accuracy", "roc_auc"]).manifest["metrics"]
    assert measured["accuracy"] == pytest.approx(float((model.predict(data) == y).mean()))
    assert 0.5 < measured["roc_auc"] <= 1.0
    with pytest.raises(parity.SchemaError, match="pass target="):
        parity.package(model, data, name="crm", metrics=["accuracy"])
    with pytest.raises(parity.SchemaError, match="has 3 labels but `data` has 400 rows"):
        parity.package(model, data, name="crm", target=y.to_numpy()[:3])
    with pytest.raises(parity.SchemaError, match="column name of `data`, or a Series/array"):
        parity.package(model, data, name="crm", target={"a": 1})  # type: ignore[arg-type]


# ------------------------------------------------------------- finding 8: failed parity stays out of production


@pytest.fixture(scope="module")
def failed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifact packaged with allow_mismatch=True whose recorded check failed (tolerance 0 on a forest)."""
    root = tmp_path_factory.mktemp("failed")
    data = csv_frame(customers(), root)
    model = text_pipeline(LogisticRegression(max_iter=500)).fit(data, churn(data))
    art = parity.package(model, data, name="risky", tolerance=-1.0, allow_mismatch=True)
    assert not art.parity_passed
    return art.save(root / "risky")


def test_registry_refuses_a_failed_parity_artifact_unless_forced(
    failed_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = parity.Registry(tmp_path / "home")
    with pytest.raises(parity.errors.ParityMismatchError, match=r"refusing to push 'risky'.*allow_failed_parity"):
        registry.push(failed_dir)
    assert registry.list() == []
    version = registry.push(failed_dir, allow_failed_parity=True)
    with pytest.raises(parity.errors.ParityMismatchError, match=r"point alias 'production'.*FAILED"):
        registry.set_alias("risky", "production", version.version)
    assert registry.aliases("risky") == {}
    registry.set_alias("risky", "production", version.version, allow_failed_parity=True)
    with caplog.at_level(logging.WARNING, logger="parity.artifact"):
        registry.load("risky@production")
        registry.load("risky@production")
    assert caplog.text.count("'risky' FAILED its parity check") == 2  # on every load


def test_cli_push_and_alias_need_allow_failed_parity(failed_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    home = str(tmp_path / "home")
    refused = runner.invoke(app, ["--registry", home, "registry", "push", str(failed_dir)])
    assert refused.exit_code == 3 and "--allow-failed-parity" in refused.stderr
    forced = runner.invoke(
        app, ["--registry", home, "registry", "push", str(failed_dir), "-a", "production", "--allow-failed-parity"]
    )
    assert forced.exit_code == 0, forced.output
    assert parity.Registry(home).aliases("risky") == {"production": 1}


# --------------------------------------------------------------------------- finding 9: one input policy


@pytest.fixture(scope="module")
def counts_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[parity.Artifact, pd.DataFrame]:
    """An INT64 column (no nulls, not imputed) and a text column."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"visits": rng.integers(0, 40, 200), "city": rng.choice(["a", "b"], 200)})
    data = csv_frame(frame, tmp_path_factory.mktemp("counts"))
    pre = ColumnTransformer([("n", StandardScaler(), ["visits"]), ("c", OneHotEncoder(), ["city"])])
    model = make_pipeline(pre, LogisticRegression()).fit(data, data["visits"] > 20)
    art = parity.package(model, data, name="counts")
    assert art.signature.input("visits").datatype == "INT64"
    return art, data


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ([1e19, 3], "received 1e+19 at row 0"),
        ([3, float("inf")], "received inf at row 1"),
        ([3, 4, 10**30], "at row 2"),
        ([3, True], "booleans are not numbers"),
        ([2.5, 3], "received 2.5 at row 0"),
    ],
)
def test_integer_columns_refuse_non_finite_out_of_range_and_booleans(
    counts_model: tuple[parity.Artifact, pd.DataFrame], values: list[Any], needle: str
) -> None:
    art, _ = counts_model
    with pytest.raises(parity.SchemaError, match="'visits'") as info:
        art.predict_columns({"visits": values, "city": ["a"] * len(values)})
    assert needle in str(info.value)
    frame = pd.DataFrame({"visits": pd.Series(values, dtype=object), "city": ["a"] * len(values)})
    with pytest.raises(parity.SchemaError, match="'visits'"):
        art.predict(frame)


def test_extra_columns_are_ignored_with_one_warning(
    counts_model: tuple[parity.Artifact, pd.DataFrame], caplog: pytest.LogCaptureFixture
) -> None:
    art, data = counts_model
    with caplog.at_level(logging.WARNING, logger="parity.artifact"):
        first = art.predict(data.head(3).assign(note="x"))
        art.predict(data.head(3).assign(note="y"))
        art.predict_columns({"visits": [1], "city": ["a"], "note": ["z"], "other": [1]})
    assert caplog.text.count("ignores extra input column") == 2  # 'note' once, then 'other'
    pd.testing.assert_frame_equal(first, art.predict(data.head(3)))


def test_one_predict_path_counts_unseen_categories(counts_model: tuple[parity.Artifact, pd.DataFrame]) -> None:
    art, data = counts_model
    art.unseen_counts.clear()
    art.predict(data.head(2).assign(city="zzz"))
    art.predict_columns({"visits": [1], "city": ["zzz"]})
    assert art.unseen_counts == {"city": 3}
    art.verify()  # the stored sample holds unseen values: replaying it is not traffic
    assert art.unseen_counts == {"city": 3}


# --------------------------------------------------------------------------- finding 10: errors a person can act on


def test_csv_errors_name_file_column_and_row(
    counts_model: tuple[parity.Artifact, pd.DataFrame], tmp_path: Path
) -> None:
    art, _ = counts_model
    directory = art.save(tmp_path / "art")
    source = tmp_path / "in.csv"
    source.write_text("visits,city\n3,a\n4,b\nmany,a\n")
    result = CliRunner().invoke(app, ["predict", str(directory), "-i", str(source), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 4
    assert f"{source}: column 'visits', data row 3 (line 4): expected INT64; received 'many'" in result.stderr


def test_integer_csv_column_written_by_pandas_reads_as_integers(
    counts_model: tuple[parity.Artifact, pd.DataFrame], tmp_path: Path
) -> None:
    art, data = counts_model
    directory = art.save(tmp_path / "art")
    rows = data.head(4).astype({"visits": float})  # what a column with a null becomes in pandas
    rows.to_csv(tmp_path / "in.csv", index=False)
    assert "3.0" in (tmp_path / "in.csv").read_text() or ".0," in (tmp_path / "in.csv").read_text()
    result = CliRunner().invoke(
        app, ["predict", str(directory), "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.parquet")]
    )
    assert result.exit_code == 0, result.output
    got = pd.read_parquet(tmp_path / "o.parquet")
    np.testing.assert_allclose(got["probability"], art.predict(data.head(4))["probability"], rtol=1e-12)
    (tmp_path / "bad.csv").write_text("visits,city\n3.5,a\n")
    bad = CliRunner().invoke(
        app, ["predict", str(directory), "-i", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "x.csv")]
    )
    assert bad.exit_code == 4 and "received 3.5 at data row 1" in bad.stderr


# --------------------------------------------------------------------------- finding 5: pandas dtypes


def _typed(kind: str, tmp_path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    data = csv_frame(customers(), tmp_path)
    labels = churn(data)
    if kind == "category":
        return data.astype({"city": "category", "plan": "category"}), labels
    if kind == "Int64":
        return data.assign(age=data["age"].astype("Int64")), labels
    if kind == "boolean":
        flag = pd.Series(data["income"] > 50_000, dtype="boolean").mask(data.index % 7 == 0)
        return data.assign(age=flag), labels
    texts = data.fillna({"city": "", "plan": ""})  # sklearn cannot fit pd.NA text: no nulls here
    return texts.astype({"city": "string[pyarrow]", "plan": "string[pyarrow]"}), labels


@pytest.mark.parametrize("kind", ["category", "Int64", "boolean", "string[pyarrow]"])
def test_pandas_dtypes_package_exactly(kind: str, tmp_path: Path) -> None:
    data, labels = _typed(kind, tmp_path)
    model = text_pipeline(RandomForestClassifier(n_estimators=10, random_state=0)).fit(data, labels)
    art = parity.package(model, data, name="typed")
    assert art.portable and art.parity_passed, art.parity_report.failure
    np.testing.assert_allclose(art.predict(data)["probability"], model.predict_proba(data)[:, 1], rtol=1e-9, atol=1e-12)
    if kind == "category":
        assert art.parity_report.cases["unseen:city"] > 0  # an unseen value is not turned into a null


def test_unsupported_dtypes_and_xgboost_categorical_are_refused_clearly(tmp_path: Path) -> None:
    xgboost = pytest.importorskip("xgboost")
    data = csv_frame(customers(), tmp_path).astype({"city": "category", "plan": "category"})
    model = xgboost.XGBClassifier(n_estimators=5, enable_categorical=True, tree_method="hist")
    model.fit(data, churn(data) == "churn")
    with pytest.raises(parity.errors.UnsupportedModelError, match=r"enable_categorical=True.*OneHotEncoder"):
        parity.package(model, data, name="xgb")
    dated = data.assign(seen=pd.Timestamp("2024-01-01"))
    pipe = text_pipeline(LogisticRegression(max_iter=500)).fit(dated, churn(dated))
    with pytest.raises(parity.errors.UnsupportedModelError) as info:
        parity.package(pipe, dated, name="dated")
    assert "'seen'" in str(info.value) and "datetime64" in str(info.value) and "astype" in str(info.value)
    codes = data.assign(city=pd.Series(np.arange(len(data)) % 3, dtype="category"))
    with pytest.raises(parity.errors.UnsupportedModelError, match=r"'city' has dtype category with int64"):
        parity.package(pipe, codes, name="codes")


def test_parity_failure_message_shows_only_the_offending_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    wide = pd.DataFrame({f"f{i:02d}": rng.normal(size=120) for i in range(73)})
    model = LogisticRegression(max_iter=300).fit(wide, wide["f00"] > 0)
    art = parity.package(model, wide, name="wide", tolerance=-1.0, allow_mismatch=True)
    failure = art.parity_report.failure or ""
    shown = [c for c in wide.columns if f"'{c}':" in failure]
    assert 1 <= len(shown) <= 8 and "(+65 other columns)" in failure, failure


def test_skew_table_is_readable_when_stdout_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.table import Table

    from parity.cli import _render
    from parity.cli._skew_render import _COLUMNS

    monkeypatch.delenv("COLUMNS", raising=False)
    console = _render._console()
    assert not console.is_terminal and console.width >= 150
    table = Table()
    for title in ["feature", "role", "severity", *(t for _, t in _COLUMNS), "notes"]:
        table.add_column(title)
    table.add_row("monthly_charges", "input", "alert", *["0.123"] * len(_COLUMNS), 'unseen e.g. ""')
    with console.capture() as captured:
        console.print(table)
    assert "monthly_charges" in captured.get() and "out of range" in captured.get()


def test_empty_string_categories_are_shown_quoted() -> None:
    from parity.profile import ProfileSpec, profile_frame
    from parity.skew._compare import bins_of

    frame = pd.DataFrame({"plan": ["", "basic", "", "pro"]})
    profile = profile_frame(frame, ProfileSpec.from_reference(frame))
    _, labels = bins_of(profile.columns["plan"])
    assert '""' in labels and '"basic"' in labels


def test_git_dirty_counts_untracked_files(tmp_path: Path) -> None:
    import subprocess

    from parity.env import lineage

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "train.py").write_text("print(1)\n")
    git("add", "train.py")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init")
    assert lineage(tmp_path)["git_dirty"] is False
    (tmp_path / "features.py").write_text("NEW = 1\n")  # untracked, imported by the model
    assert lineage(tmp_path)["git_dirty"] is True
