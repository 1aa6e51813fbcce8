"""Each new feature step's graph equals its scikit-learn transform bit for bit, edge values included."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from onnx import TensorProto
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.feature_selection import SelectKBest, VarianceThreshold, f_regression
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    OneHotEncoder,
    PolynomialFeatures,
    TargetEncoder,
)

from parity.codec import encode_frame
from parity.export._builder import GraphBuilder
from parity.export._preprocess import export_preprocessing
from parity.schema import infer_signature
from tests.fixtures import read_as_csv

N = 240


def _frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x": rng.gamma(2.0, 3.0, N),
            "z": rng.normal(0, 2, N),
            "k": rng.integers(0, 12, N),
            "city": rng.choice(["a", "b", "c", "d", "e", "f", "g"], N, p=[0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.02]),
        }
    )
    df.loc[rng.random(N) < 0.1, "city"] = np.nan
    return read_as_csv(df)


def _graph_output(step: Any, frame: pd.DataFrame) -> np.ndarray:
    """Run ``step`` (fitted, first in the pipeline) as parity exports it."""
    sig = infer_signature(frame)
    b = GraphBuilder()
    block = export_preprocessing(b, sig, [step], list(frame.columns), consumer="test")
    b.add_output(block.tensor, "Y", TensorProto.DOUBLE, [None, block.width])
    sess = ort.InferenceSession(b.build().SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, encode_frame(sig, frame))[0])


def _expected(step: Any, frame: pd.DataFrame) -> np.ndarray:
    out = step.transform(frame)
    return np.asarray(out.toarray() if sparse.issparse(out) else out, dtype=np.float64)


def _edge_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Training rows plus unseen and missing text, zeros, negatives and large values."""
    extra = frame.iloc[:8].copy()
    extra["city"] = ["zzz", np.nan, "", "a", "g", "zzz", "f", np.nan]
    extra["x"] = [0.0, 1e-12, 1e6, 2.5, 1e-300, 3.0, 7.0, 0.5]
    extra["z"] = [-1e6, 0.0, -0.0, 1e-9, 5.0, -3.0, 1e6, 2.0]
    return pd.concat([frame, extra], ignore_index=True).astype(frame.dtypes.to_dict())


def _ct(*parts: tuple[str, Any, list[str]]) -> ColumnTransformer:
    return ColumnTransformer(list(parts), sparse_threshold=0.0)


ONE_HOT = {
    "infrequent-if-exist": OneHotEncoder(min_frequency=20, handle_unknown="infrequent_if_exist"),
    "max-categories-drop-first": OneHotEncoder(max_categories=4, drop="first", handle_unknown="infrequent_if_exist"),
    "infrequent-ignore": OneHotEncoder(min_frequency=0.1, handle_unknown="ignore"),
    "infrequent-drop-if-binary": OneHotEncoder(max_categories=2, drop="if_binary", handle_unknown="ignore"),
}


@pytest.mark.parametrize("name", sorted(ONE_HOT))
def test_one_hot_infrequent_grouping(name: str) -> None:
    """Infrequent categories share a column; unknown goes there only with infrequent_if_exist."""
    frame = _frame()
    enc = make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"), ONE_HOT[name])
    step = _ct(("city", enc, ["city"]), ("k", ONE_HOT[name].__class__(**ONE_HOT[name].get_params()), ["k"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unknown categories with drop: sklearn warns
        step.fit(frame)
        rows = _edge_rows(frame)
        want = _expected(step, rows)
    np.testing.assert_array_equal(_graph_output(step, rows), want)


FUNCTIONS = {
    "log1p": (np.log1p, None),
    "log": (np.log, None),
    "exp": (np.exp, None),
    "expm1": (np.expm1, None),
    "sqrt": (np.sqrt, None),
    "abs": (np.abs, None),
    "square": (np.square, None),
    "clip": (np.clip, {"a_min": -1.0, "a_max": 4.0}),
    "clip-low-only": (np.clip, {"a_min": 0.5, "a_max": None}),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_known_numpy_functions(name: str) -> None:
    """Within 4 ulp of numpy (exact for sqrt/abs/square/clip), NaN and inf where numpy gives them."""
    func, kw = FUNCTIONS[name]
    frame = _frame()
    step = _ct(("num", FunctionTransformer(func, kw_args=kw), ["x", "z"]))
    rows = _edge_rows(frame)
    with np.errstate(all="ignore"):  # log of negatives is NaN, as in the graph
        step.fit(frame)
        want = _expected(step, rows)
    got = _graph_output(step, rows)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    tol = 0.0 if name in ("sqrt", "abs", "square", "clip", "clip-low-only") else 4 * np.finfo(np.float64).eps
    np.testing.assert_allclose(got[finite], want[finite], rtol=tol, atol=0.0)


@pytest.mark.parametrize("encode", ["ordinal", "onehot", "onehot-dense"])
@pytest.mark.parametrize("strategy", ["uniform", "quantile", "kmeans"])
def test_kbins(encode: str, strategy: str) -> None:
    """Bin = number of inner edges <= x, including values exactly at an edge."""
    frame = _frame()
    kw: dict[str, Any] = {"quantile_method": "averaged_inverted_cdf"} if strategy == "quantile" else {}
    bins = KBinsDiscretizer(n_bins=5, encode=encode, strategy=strategy, **kw)
    step = _ct(("num", bins, ["x", "z"]))
    step.fit(frame)
    bins = step.named_transformers_["num"]
    rows = _edge_rows(frame)
    at_edges = rows.iloc[: len(bins.bin_edges_[0])].copy()
    at_edges["x"] = bins.bin_edges_[0]
    at_edges["z"] = bins.bin_edges_[1][: len(at_edges)] if len(bins.bin_edges_[1]) >= len(at_edges) else 0.0
    rows = pd.concat([rows, at_edges], ignore_index=True)
    np.testing.assert_array_equal(_graph_output(step, rows), _expected(step, rows))


@pytest.mark.parametrize("params", [{"degree": 3}, {"degree": 2, "interaction_only": True}, {"include_bias": False}])
def test_polynomial_features(params: dict[str, Any]) -> None:
    """Every term, multiplied in scikit-learn's order (bit for bit)."""
    frame = _frame()
    step = _ct(("num", PolynomialFeatures(**params), ["x", "z", "k"]))
    step.fit(frame)
    rows = _edge_rows(frame)
    np.testing.assert_array_equal(_graph_output(step, rows), _expected(step, rows))


@pytest.mark.parametrize("target", ["continuous", "binary", "multiclass"])
def test_target_encoder(target: str) -> None:
    """Fitted encodings per category (NaN is a category), unknown -> target mean."""
    frame = _frame()
    rng = np.random.default_rng(5)
    y: Any = {
        "continuous": frame["x"].to_numpy() * 3 + rng.normal(0, 1, N),
        "binary": rng.choice(["no", "yes"], N),
        "multiclass": rng.choice(["low", "mid", "high"], N),
    }[target]
    step = _ct(("city", TargetEncoder(), ["city"]), ("k", TargetEncoder(), ["k"]))
    step.fit(frame, y)
    rows = _edge_rows(frame)
    np.testing.assert_array_equal(_graph_output(step, rows), _expected(step, rows))


def test_selectors_keep_the_selected_columns() -> None:
    """VarianceThreshold and SelectKBest after the ColumnTransformer select the same columns."""
    from parity.export._builder import GraphBuilder as Builder

    frame = _frame()
    frame["constant"] = 1.0
    ct = _ct(("num", "passthrough", ["x", "z", "k", "constant"]))
    X = ct.fit_transform(frame)
    var = VarianceThreshold().fit(X)
    best = SelectKBest(f_regression, k=2).fit(var.transform(X), frame["x"] * 2 + frame["k"])
    sig = infer_signature(frame)
    b = Builder()
    block = export_preprocessing(b, sig, [ct, var, best], list(frame.columns), consumer="test")
    b.add_output(block.tensor, "Y", TensorProto.DOUBLE, [None, block.width])
    sess = ort.InferenceSession(b.build().SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, encode_frame(sig, frame))[0]
    np.testing.assert_array_equal(got, best.transform(var.transform(ct.transform(frame))))
    assert [o.column if o else None for o in block.origins] == ["x", "k"]
