"""Random frames with random pandas dtypes (issue 7, finding 5): exact parity or a ParityError, never a raw error.

Frames are built the way pandas builds them: nullable extension dtypes (Int64, boolean, Float64),
``category``, ``string[pyarrow]``, object text with NaN or None, datetimes. For each frame the
most common pipeline is fitted (impute + scale numbers, impute + one-hot text) and packaged; the
outcome must be an artifact whose parity check passed and which answers what the pipeline answers,
or a :class:`parity.ParityError` saying why. ``HYPOTHESIS_PROFILE=dev`` runs fewer examples.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

import parity

# CI: at least 200 examples, derandomized so a failure reproduces on every run.
settings.register_profile(
    "ci", max_examples=200, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

KINDS = [
    "float",
    "float_nan",
    "int",
    "Int64",
    "Int64_na",
    "Float64_na",
    "bool",
    "boolean_na",
    "object_nan",
    "object_none",
    "category",
    "category_nan",
    "string_pyarrow",
    "datetime",
]
TEXT_KINDS = {"object_nan", "object_none", "category", "category_nan", "string_pyarrow"}


def _column(kind: str, n: int, rng: np.random.Generator) -> pd.Series:
    missing = rng.random(n) < 0.2
    words = rng.choice(["b", "a", "c", ""], n)  # "" is an ordinary category
    if kind == "float":
        return pd.Series(rng.normal(0, 10, n))
    if kind == "float_nan":
        return pd.Series(np.where(missing, np.nan, rng.normal(0, 10, n)))
    if kind == "int":
        return pd.Series(rng.integers(-5, 50, n))
    if kind == "Int64":
        return pd.Series(rng.integers(-5, 50, n), dtype="Int64")
    if kind == "Int64_na":
        return pd.Series(rng.integers(-5, 50, n), dtype="Int64").mask(missing)
    if kind == "Float64_na":
        return pd.Series(rng.normal(0, 1, n), dtype="Float64").mask(missing)
    if kind == "bool":
        return pd.Series(rng.random(n) < 0.5)
    if kind == "boolean_na":
        return pd.Series(rng.random(n) < 0.5, dtype="boolean").mask(missing)
    if kind == "object_nan":
        return pd.Series([np.nan if m else w for m, w in zip(missing, words, strict=True)], dtype=object)
    if kind == "object_none":
        return pd.Series([None if m else w for m, w in zip(missing, words, strict=True)], dtype=object)
    if kind == "category":
        return pd.Series(words, dtype="category")
    if kind == "category_nan":
        return pd.Series(words, dtype="category").mask(missing)
    if kind == "string_pyarrow":
        return pd.Series(words, dtype="string[pyarrow]")
    return pd.Series(pd.date_range("2024-01-01", periods=n, freq="h"))


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, list[str], list[str], str]:
    """A raw frame, its numeric and text columns (datetimes are neither) and an estimator name."""
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4))
    n = draw(st.integers(20, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frame = pd.DataFrame({f"{kind}_{i}": _column(kind, n, rng) for i, kind in enumerate(kinds)})
    text = [c for c, k in zip(frame.columns, kinds, strict=True) if k in TEXT_KINDS]
    numeric = [c for c, k in zip(frame.columns, kinds, strict=True) if k not in TEXT_KINDS and k != "datetime"]
    return frame, numeric, text, draw(st.sampled_from(["logistic", "tree"]))


def _pipeline(numeric: list[str], text: list[str], estimator: str) -> Any:
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric))
    if text:
        encode = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
        parts.append(("txt", encode, text))
    model = LogisticRegression(max_iter=200) if estimator == "logistic" else DecisionTreeClassifier(max_depth=3)
    return make_pipeline(ColumnTransformer(parts), model)


@settings(settings.get_profile(PROFILE))
@given(frames())
def test_random_dtype_frames_package_exactly_or_raise_parity_error(
    drawn: tuple[pd.DataFrame, list[str], list[str], str],
) -> None:
    frame, numeric, text, estimator = drawn
    if not numeric and not text:
        numeric_frame = frame.assign(x=np.arange(len(frame), dtype=float))
        frame, numeric = numeric_frame, ["x"]
    labels = np.where(np.arange(len(frame)) % 3 == 0, "yes", "no")  # string classes, unsorted
    model = _pipeline(numeric, text, estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on tiny random data are not the subject
        try:
            model.fit(frame, labels)
        except (TypeError, ValueError):
            return  # scikit-learn itself refuses this frame (e.g. pd.NA in text): nothing to package
        try:
            art = parity.package(model, frame, name="random", sample_size=200)
        except parity.ParityError as exc:
            assert str(exc)  # a refusal says why
            return
        assert art.parity_passed, art.parity_report.failure
        expected = model.predict_proba(frame)[:, list(model.classes_).index("yes")]
        try:
            got = art.predict(frame)
        except parity.ParityError:
            raise AssertionError("the training frame itself must be accepted") from None
    np.testing.assert_allclose(got["probability"].to_numpy(), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(got["label"].to_numpy(), model.predict(frame))
