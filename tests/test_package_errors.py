"""Packaging and loading edge cases: bad arguments name what was wrong; measured metrics match hand computations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline

import parity
from parity._format import MANIFEST as MANIFEST_FILE
from parity._format import file_entry
from parity._io import canonical_json
from parity.errors import ArtifactError, IntegrityError, SchemaError, UnsupportedModelError
from parity.schema import ColumnSpec, Signature, infer_signature


def numeric(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})


@pytest.fixture(scope="module")
def regression() -> tuple[Any, pd.DataFrame, np.ndarray]:
    x = numeric()
    y = 3.0 * x["a"].to_numpy() - x["b"].to_numpy() + np.random.default_rng(1).normal(0, 0.5, len(x))
    return LinearRegression().fit(x, y), x, y


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, regression: tuple[Any, pd.DataFrame, np.ndarray]) -> Path:
    model, x, _ = regression
    return parity.package(model, x, name="reg").save(tmp_path_factory.mktemp("art") / "reg")


def test_regression_metrics_match_hand_computed_values(regression: tuple[Any, pd.DataFrame, np.ndarray]) -> None:
    model, x, y = regression
    art = parity.package(model, x, name="reg", target=y, metrics=["r2", "mae", "rmse"])
    err = y - model.predict(x)
    want = {
        "r2": 1.0 - float(np.sum(err**2)) / float(np.sum((y - y.mean()) ** 2)),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
    }
    assert art.manifest["metrics"] == pytest.approx(want, rel=1e-12)
    # A continuous target (> 20 distinct values) is summarised by its moments, not a distribution.
    target = art.manifest["training_data"]["target"]
    assert target["rows"] == len(y) and target["nulls"] == 0 and "distribution" not in target
    assert target["mean"] == pytest.approx(float(y.mean())) and target["max"] == pytest.approx(float(y.max()))
    assert target["std"] == pytest.approx(float(y.std())) and target["min"] == pytest.approx(float(y.min()))


def test_log_loss_and_multiclass_auc_match_hand_computed_values() -> None:
    x = numeric(300, seed=2)
    y = np.digitize(x["a"].to_numpy() + 0.3 * x["b"].to_numpy(), [-0.5, 0.5])  # 3 classes
    model = LogisticRegression().fit(x, y)
    measured = parity.package(model, x, name="three", target=y, metrics=["log_loss", "roc_auc"]).manifest["metrics"]
    proba = model.predict_proba(x)
    assert measured["log_loss"] == pytest.approx(float(-np.mean(np.log(proba[np.arange(len(y)), y]))), rel=1e-9)
    # One-vs-rest AUC per class (rank statistic), macro-averaged.
    aucs = []
    for k in range(3):
        pos, neg = proba[y == k, k], proba[y != k, k]
        aucs.append(float(np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))))
    assert measured["roc_auc"] == pytest.approx(float(np.mean(aucs)), rel=1e-9)


def test_bad_package_arguments_name_what_is_wrong(regression: tuple[Any, pd.DataFrame, np.ndarray]) -> None:
    model, x, y = regression
    with pytest.raises(SchemaError, match="`data` must be a pandas DataFrame of raw inputs; got ndarray"):
        parity.package(model, x.to_numpy(), name="reg")  # type: ignore[arg-type]
    with pytest.raises(SchemaError) as info:
        parity.package(model, x, name="reg", target="price")
    assert info.value.column == "price" and "columns: ['a', 'b']" in str(info.value)
    with pytest.raises(SchemaError, match=r"unknown metric\(s\) \['f1'\]; parity computes"):
        parity.package(model, x, name="reg", target=y, metrics=["r2", "f1"])
    with pytest.raises(SchemaError) as info:
        parity.package(model, x, name="reg", nullable=["c"])
    assert info.value.column == "c" and "nullable= names unknown column(s) ['c']" in str(info.value)


def test_nullable_as_one_name_and_a_bool_column_that_cannot_be_nullable() -> None:
    x = numeric()
    model = make_pipeline(SimpleImputer(), LinearRegression()).fit(x, x["a"] * 2)
    art = parity.package(model, x, name="reg", nullable="a")  # a single name, not a list
    assert {c.name: c.nullable for c in art.signature.inputs} == {"a": True, "b": False}
    flags = x.assign(flag=x["a"] > 0)
    flagged = LinearRegression().fit(flags.astype({"flag": float}), flags["b"])
    with pytest.raises(SchemaError) as info:
        parity.package(flagged, flags, name="flags", nullable=["flag"])
    assert info.value.column == "flag" and "a nullable bool column must have nulls in the training data" in str(
        info.value
    )


def test_repr_and_a_missing_file_of_an_artifact(saved: Path) -> None:
    art = parity.load(saved)
    assert repr(art) == "<Artifact 'reg' task=regression runtime=onnx parity=ok>"
    with pytest.raises(ArtifactError, match=r"artifact 'reg' has no file 'model\.skops'; it has \["):
        art.file_bytes("model.skops")


def _rewrite(src: Path, dest: Path, edit: Any) -> Path:
    """Copy an artifact and apply ``edit(manifest, dir)`` to its manifest, written back as canonical JSON."""
    shutil.copytree(src, dest)
    manifest = json.loads((dest / MANIFEST_FILE).read_text())
    edit(manifest, dest)
    (dest / MANIFEST_FILE).write_bytes(canonical_json(manifest))
    return dest


@pytest.mark.parametrize(
    ("case", "error", "words"),
    [
        ("format", ArtifactError, ["unsupported artifact format 'parity.artifact/99'", "parity.artifact/1"]),
        ("files", ArtifactError, ["manifest 'files' must be a mapping"]),
        ("entry", ArtifactError, ["manifest entry of 'model.onnx' must be {'sha256': hex, 'size': int}"]),
        ("size", IntegrityError, ["file 'model.onnx'", "size expected 1, actual"]),
        ("profile", ArtifactError, ["profile.json is not valid JSON"]),
        ("reference", ArtifactError, ["profile.json must be a 'parity.reference/1' object with 'inputs'", "'other/1'"]),
    ],
)
def test_a_damaged_manifest_is_a_clear_error(
    saved: Path, tmp_path: Path, case: str, error: type, words: list[str]
) -> None:
    def edit(manifest: dict[str, Any], root: Path) -> None:
        if case == "format":
            manifest["format"] = "parity.artifact/99"
        elif case == "files":
            manifest["files"] = ["model.onnx"]
        elif case == "entry":
            manifest["files"]["model.onnx"] = {"sha256": manifest["files"]["model.onnx"]["sha256"], "size": True}
        elif case == "size":
            manifest["files"]["model.onnx"]["size"] = 1
        else:
            raw = b"{not json" if case == "profile" else json.dumps({"format": "other/1"}).encode()
            (root / "profile.json").write_bytes(raw)
            manifest["files"]["profile.json"] = file_entry(raw)

    broken = _rewrite(saved, tmp_path / "broken", edit)
    with pytest.raises(error) as info:
        parity.load(broken).profile  # noqa: B018 - the profile is parsed on first use
    for w in words:
        assert w in str(info.value)


def test_a_manifest_that_is_not_an_object(saved: Path, tmp_path: Path) -> None:
    shutil.copytree(saved, tmp_path / "list")
    (tmp_path / "list" / MANIFEST_FILE).write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="must hold a JSON object, got list"):
        parity.load(tmp_path / "list")


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (np.zeros((3, 2)), SchemaError, "`data` must be a pandas DataFrame of raw inputs; got ndarray"),
        (pd.DataFrame({"a": []}), SchemaError, "`data` has no rows"),
        (pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]), SchemaError, "duplicated column names: ['a', 'a']"),
        (pd.DataFrame({0: [1.0], "b": [2.0]}), SchemaError, "column names must be strings; got 0 (int)"),
        (pd.DataFrame({"t": ["x", 3, "y"]}), UnsupportedModelError, "column 't' (dtype object) mixes text with int"),
    ],
)
def test_infer_signature_rejects_frames_it_cannot_type(data: Any, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        infer_signature(data)
    assert words in str(info.value)


def test_infer_signature_kinds_markers_and_lookup() -> None:
    frame = pd.DataFrame(
        {
            "n": [1.0, np.nan, 3.0],
            "s": pd.Series(["a", pd.NA, "b"], dtype=object),
            "flag": [True, False, True],
            "skip": [1, 2, 3],
        }
    )
    sig = infer_signature(frame, exclude=["skip"])
    assert sig.input_names == ["n", "s", "flag"]
    n, s, flag = sig.inputs
    assert (n.kind, s.kind, flag.kind) == ("numeric", "categorical", "boolean")
    assert s.missing == "NA" and s.missing_value is pd.NA  # the pipeline saw pd.NA, so that is what a null is
    assert np.isnan(n.missing_value)
    assert sig.input("s") is s
    with pytest.raises(SchemaError) as info:
        sig.input("skip")
    assert info.value.column == "skip" and "the model takes ['n', 's', 'flag']" in str(info.value)
    assert Signature((ColumnSpec("x", "INT64", False),)).inputs[0].kind == "numeric"


class Halver:
    """Not a scikit-learn estimator: a plain object with predict, answering one column of shape (n, 1)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return (frame["a"].to_numpy(dtype=np.float64) / 2.0).reshape(-1, 1)


class TwoTargets:
    """A regressor of two targets at once, which parity does not package."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.c_[frame["a"].to_numpy(), frame["b"].to_numpy()]


def test_a_plain_python_model_is_packaged_with_a_python_runtime(tmp_path: Path) -> None:
    x = numeric(50)
    with pytest.raises(UnsupportedModelError, match="must be a fitted scikit-learn estimator or Pipeline; got str"):
        parity.package("model.pkl", x, name="nope")  # type: ignore[arg-type]
    art = parity.package(Halver(), x, name="halver")
    # Not a scikit-learn estimator (sklearn's tags raise on it): a regressor, checked through its own predict.
    assert not art.portable and art.parity_report.passed and art.task == "regression"
    assert art.manifest["blocked_by"]["step"] == "Halver"
    path = art.save(tmp_path / "halver")
    with pytest.raises(parity.UntrustedArtifactError):
        parity.load(path)
    loaded = parity.load(path, trusted=True)
    np.testing.assert_array_equal(loaded.predict(x)["prediction"].to_numpy(), x["a"].to_numpy() / 2.0)
    with pytest.raises(UnsupportedModelError, match=r"the regressor returned shape \(50, 2\); parity supports one"):
        parity.package(TwoTargets(), x, name="two")
