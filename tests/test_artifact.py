"""Artifact save/load/verify, integrity, trust, input validation and property-based parity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import parity
from tests.fixtures import CATEGORICAL, NUMERIC, pipeline, raw_frame, targets


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return raw_frame(400)


@pytest.fixture(scope="module")
def gbm(data: pd.DataFrame) -> tuple[Any, parity.Artifact]:
    model = pipeline(GradientBoostingClassifier(n_estimators=20, random_state=0)).fit(data, targets(data, "binary"))
    return model, parity.package(model, data, name="gbm")


@pytest.fixture
def saved(gbm: tuple[Any, parity.Artifact], tmp_path: Path) -> Path:
    return gbm[1].save(tmp_path / "gbm")


def test_round_trip_predicts_identically(gbm: tuple[Any, parity.Artifact], saved: Path, data: pd.DataFrame) -> None:
    _, art = gbm
    loaded = parity.load(saved)
    pd.testing.assert_frame_equal(loaded.predict(data), art.predict(data))
    assert loaded.manifest == art.manifest
    report = loaded.verify()
    assert report.passed and report.rows_checked > 0


def test_reference_profiles(gbm: tuple[Any, parity.Artifact], data: pd.DataFrame) -> None:
    art = gbm[1]
    inputs = art.profile
    assert inputs.rows == len(data)
    assert inputs.columns["tenure"].nulls == int(data["tenure"].isna().sum())
    assert inputs.columns["region"].nulls == int(data["region"].isna().sum())
    outputs = art.output_profile
    assert set(outputs.columns) == {"label", "probability"}


def test_predict_keeps_index_and_ignores_extra_columns(saved: Path, data: pd.DataFrame) -> None:
    loaded = parity.load(saved)
    frame = data.head(5).set_index(pd.Index([10, 11, 12, 13, 14])).assign(extra=1)
    out = loaded.predict(frame)
    assert list(out.index) == [10, 11, 12, 13, 14]


def test_tampered_file_raises_integrity_error(saved: Path) -> None:
    onnx_path = saved / "model.onnx"
    blob = bytearray(onnx_path.read_bytes())
    blob[-1] ^= 0xFF
    onnx_path.write_bytes(bytes(blob))
    with pytest.raises(parity.IntegrityError, match=r"model\.onnx"):
        parity.load(saved)


def test_tampered_manifest_signature_is_caught(saved: Path) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["files"]["profile.json"]["sha256"] = "0" * 64
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(parity.IntegrityError, match=r"profile\.json"):
        parity.load(saved)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(parity.ParityError, match="not"):
        parity.load(tmp_path / "nope")


def test_save_refuses_to_overwrite(gbm: tuple[Any, parity.Artifact], saved: Path) -> None:
    with pytest.raises(parity.ArtifactError, match="not empty"):
        gbm[1].save(saved)


@pytest.mark.parametrize(
    ("mutate", "column", "pattern"),
    [
        (lambda f: f.drop(columns=["plan"]), "plan", "missing input"),
        (lambda f: f.assign(charges="a lot"), "charges", "expects FP64"),
        # Every column of this pipeline is imputed, so nulls are accepted (tests/test_real_data.py, finding 4).
        (lambda f: f.assign(plan=3), "plan", "expects BYTES"),
        (lambda f: f.iloc[:0], None, "no rows"),
    ],
)
def test_bad_inputs_raise_schema_error_naming_the_column(
    gbm: tuple[Any, parity.Artifact], data: pd.DataFrame, mutate: Any, column: str | None, pattern: str
) -> None:
    art = gbm[1]
    with pytest.raises(parity.SchemaError, match=pattern) as info:
        art.predict(mutate(data.head(4).copy()))
    if column:
        assert column in str(info.value)
        assert info.value.column == column


def test_unseen_categories_are_counted_not_rejected(gbm: tuple[Any, parity.Artifact], data: pd.DataFrame) -> None:
    art = gbm[1]
    before = art.unseen_counts.get("plan", 0)
    out = art.predict(data.head(3).assign(plan="platinum"))
    assert len(out) == 3
    assert art.unseen_counts["plan"] == before + 3


def _double(x: Any) -> Any:
    return x * 2.0


def test_custom_function_transformer_is_not_portable_and_needs_trust(data: pd.DataFrame, tmp_path: Path) -> None:
    numeric = Pipeline(
        [("impute", SimpleImputer()), ("custom", FunctionTransformer(_double)), ("scale", StandardScaler())]
    )
    features = ColumnTransformer([("num", numeric, NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])])
    model = Pipeline([("f", features), ("m", LogisticRegression(max_iter=500))]).fit(data, targets(data, "binary"))
    art = parity.package(model, data, name="custom")
    assert art.portable is False
    assert art.manifest["runtime"] == "python"
    assert "FunctionTransformer" in art.manifest["blocked_by"]["step"]
    assert "model.onnx" not in art.manifest["files"]
    art.save(tmp_path / "c")
    with pytest.raises(parity.UntrustedArtifactError, match="trusted=True"):
        parity.load(tmp_path / "c")
    loaded = parity.load(tmp_path / "c", trusted=True)
    np.testing.assert_allclose(loaded.predict(data)["probability"], model.predict_proba(data)[:, 1], atol=1e-12)
    assert loaded.verify().passed


def test_allow_mismatch_records_the_failure(data: pd.DataFrame) -> None:
    model = pipeline(LogisticRegression(max_iter=500)).fit(data, targets(data, "binary"))
    with pytest.raises(parity.ParityMismatchError, match="probability"):
        parity.package(model, data, name="m", tolerance=-1.0)
    art = parity.package(model, data, name="m", tolerance=-1.0, allow_mismatch=True)
    assert art.parity_passed is False
    assert "probability" in art.manifest["parity"]["failure"]


def _frames(signature: parity.Signature) -> st.SearchStrategy[pd.DataFrame]:
    """Random raw frames drawn from the signature: nulls where allowed, unseen categories, extremes."""
    columns = {}
    for col in signature.inputs:
        if col.datatype == "BYTES":
            values: st.SearchStrategy[Any] = st.sampled_from([*(col.categories or ()), "", "never-seen"])
        elif col.datatype == "INT64":
            values = st.integers(-1000, 1000)
        else:
            values = st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0.0, -0.0, 1e9])
        if col.nullable:
            values = values | st.none()
        columns[col.name] = values
    rows = st.fixed_dictionaries(columns)
    return st.lists(rows, min_size=1, max_size=30).map(pd.DataFrame)


@pytest.fixture(scope="module")
def hgb(data: pd.DataFrame) -> tuple[Any, parity.Artifact]:
    model = pipeline(HistGradientBoostingRegressor(max_iter=20, random_state=0)).fit(data, targets(data, "regression"))
    return model, parity.package(model, data, name="hgb")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_frames_agree_with_python(hgb: tuple[Any, parity.Artifact], data: st.DataObject) -> None:
    model, art = hgb
    frame = data.draw(_frames(art.signature))
    frame = frame.astype({"tenure": "float64", "charges": "float64", "age": "float64"})  # age is imputed: nullable
    for name in CATEGORICAL:
        # The Python model sees missing text as the training data spelled it (ColumnSpec.missing).
        marker = art.signature.input(name).missing_value
        frame[name] = frame[name].astype(object).where(frame[name].notna(), marker)
    got = art.predict(frame)["prediction"].to_numpy()
    want = model.predict(frame)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["penguins\n", "penguins\r\n", "../penguins"])
def test_manifest_names_must_match_the_whole_rule(saved: Path, name: str) -> None:
    manifest_path = saved / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["name"] = name
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(parity.ArtifactError, match="name"):
        parity.load(saved)
