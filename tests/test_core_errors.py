"""Core boundaries with no test elsewhere: codec inputs, postprocess declarations, profile files and specs,
server config token files. Each bad input is one clear error naming what was wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

import parity
from parity.codec import encode_column, encode_columns
from parity.errors import ProfileError, SchemaError, UnsupportedModelError
from parity.postprocess import ClassLabels, Threshold, plan_outputs
from parity.profile import Profile, ProfileSpec, profile_frame, profile_parquet
from parity.schema import ColumnSpec, Signature

# --------------------------------------------------------------------------- codec


def test_numbers_of_an_unusable_dtype_name_the_dtype_and_a_sample() -> None:
    spec = ColumnSpec("when", "FP64", False)
    stamps = np.array(["2024-01-01T00:00"], dtype="datetime64[m]")
    with pytest.raises(SchemaError) as info:
        encode_column(spec, stamps)
    assert info.value.column == "when"
    assert "expects FP64 numbers; received datetime64[m] values such as" in str(info.value)
    with pytest.raises(SchemaError, match=r"received datetime64\[m\] values$"):
        encode_column(spec, stamps[:0])


def test_an_integer_column_declared_nullable_still_cannot_hold_a_null() -> None:
    with pytest.raises(SchemaError, match=r"column 'n' \(INT64\) cannot hold nulls"):
        encode_column(ColumnSpec("n", "INT64", True), [1, None])


def test_text_from_fixed_width_strings_and_bytes() -> None:
    spec = ColumnSpec("plan", "BYTES", False)
    got = encode_column(spec, np.array(["basic", "pro"]))  # numpy <U5, not object
    assert got.dtype == object and got.tolist() == ["basic", "pro"]
    assert encode_column(spec, np.array([b"basic", "pro\u00e9".encode()], dtype=object)).tolist() == ["basic", "proé"]


def test_a_two_dimensional_column_is_refused() -> None:
    sig = Signature((ColumnSpec("x", "FP64", False),))
    with pytest.raises(SchemaError) as info:
        encode_columns(sig, {"x": np.zeros((2, 2))})
    assert info.value.column == "x" and "must be one-dimensional; got shape [2, 2]" in str(info.value)


# --------------------------------------------------------------------------- postprocess


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: Threshold(1.5), "Threshold must be within [0, 1]; got 1.5"),
        (lambda: Threshold(0.5, labels=("yes", "yes")), "two distinct (negative, positive); got ('yes', 'yes')"),
        (lambda: Threshold(0.5, labels=("a", "b", "c")), "two distinct (negative, positive)"),
        (lambda: plan_outputs(None, Threshold(0.5)), "applies to classifiers only"),
        (lambda: plan_outputs([0, 1], ClassLabels({2: "two"})), "names classes [2] the model does not have"),
        (lambda: plan_outputs([0, 1], ["threshold"]), "unknown postprocess step 'threshold'"),
        (
            lambda: plan_outputs([0, 1], [ClassLabels({0: "stay", 1: "go"}), Threshold(0.3, labels=(0, 1))]),
            "but ClassLabels renamed them to ['stay', 'go']; use the new names in one place only",
        ),
    ],
)
def test_bad_postprocessing_is_refused_with_the_reason(make: Any, words: str) -> None:
    with pytest.raises(UnsupportedModelError) as info:
        make()
    assert words in str(info.value)


def test_float_class_labels_travel_as_fp64() -> None:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200)})
    y = np.where(x["a"] > 0, 1.0, 0.0)  # float classes
    model = LogisticRegression().fit(x, y)
    art = parity.package(model, x, name="floats")
    label = next(o for o in art.signature.outputs if o.name == "label")
    assert label.datatype == "FP64" and list(label.labels or ()) == [0.0, 1.0]
    got = art.predict(x.head(20))
    assert got["label"].tolist() == model.predict(x.head(20)).tolist()
    assert plan_outputs(None, None).probability_outputs == []  # a regressor has no probability outputs


def test_a_regressor_with_a_postprocess_is_refused_by_package() -> None:
    x = pd.DataFrame({"a": np.arange(50.0)})
    with pytest.raises(UnsupportedModelError, match="classifiers only"):
        parity.package(LinearRegression().fit(x, x["a"]), x, name="r", postprocess=Threshold(0.5))


# --------------------------------------------------------------------------- profiles


def test_profile_specs_name_unknown_kinds_and_columns() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    with pytest.raises(ProfileError, match="column 'x': unknown kind 'ordinal', expected numeric, categorical"):
        ProfileSpec.from_reference(frame, columns={"x": "ordinal"})  # type: ignore[dict-item]
    spec = ProfileSpec.from_reference(frame)
    assert list(spec.select(["c"]).columns) == ["c"]
    with pytest.raises(ProfileError, match=r"columns \['y'\] are not in the profile spec \(known: \['c', 'x'\]\)"):
        spec.select(["y"])
    raw = spec.to_dict()
    raw["columns"]["x"]["kind"] = "ordinal"
    with pytest.raises(ProfileError, match="column 'x': unknown kind 'ordinal' in profile spec"):
        ProfileSpec.from_dict(raw)


def test_a_damaged_profile_file_is_a_profile_error(tmp_path: Path) -> None:
    prof = profile_frame(pd.DataFrame({"x": np.arange(100.0), "c": ["a", "b"] * 50}))
    good = prof.to_dict()
    assert Profile.from_dict(good).rows == 100
    extra = json.loads(json.dumps(good))
    extra["columns"]["z"] = extra["columns"]["x"]
    with pytest.raises(ProfileError, match=r"profile columns \['c', 'x', 'z'\] differ from its spec \['c', 'x'\]"):
        Profile.from_dict(extra)
    swapped = json.loads(json.dumps(good))
    swapped["columns"]["x"]["kind"] = "categorical"
    with pytest.raises(ProfileError, match="column 'x': stats of kind 'categorical' but spec of kind 'numeric'"):
        Profile.from_dict(swapped)
    broken = json.loads(json.dumps(good))
    del broken["rows"]
    with pytest.raises(ProfileError, match="malformed profile: KeyError"):
        Profile.from_dict(broken)
    (tmp_path / "p.json").write_text("{not json")
    with pytest.raises(ProfileError, match="cannot read profile"):
        Profile.load(tmp_path / "p.json")
    with pytest.raises(ProfileError, match="cannot read profile"):
        Profile.load(tmp_path / "missing.json")


def test_profile_parquet_needs_readable_parquet_files(tmp_path: Path) -> None:
    spec = ProfileSpec.from_reference(pd.DataFrame({"x": np.arange(10.0)}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProfileError, match="no Parquet files found in"):
        profile_parquet(tmp_path / "empty", spec)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ProfileError, match="cannot read Parquet file"):
        profile_parquet(tmp_path / "bad.parquet", spec)
    empty = profile_frame(pd.DataFrame({"x": np.array([], dtype=float)}), spec)
    assert empty.columns["x"].quantile(0.5) is None  # no value: no quantile


# --------------------------------------------------------------------------- server config


def test_the_token_comes_from_the_token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from parity.server._config import ServerConfig

    monkeypatch.delenv("PARITY_TOKEN", raising=False)
    (tmp_path / "token").write_text("  s3cret\n")
    assert ServerConfig(refs=(), token_file=str(tmp_path / "token")).token == "s3cret"
    (tmp_path / "blank").write_text("\n")
    assert ServerConfig(refs=(), token_file=str(tmp_path / "blank")).token is None
    with pytest.raises(ValueError, match="cannot read the token file: No such file or directory"):
        ServerConfig(refs=(), token_file=str(tmp_path / "missing"))
