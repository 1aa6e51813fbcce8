"""Export options with no test elsewhere: each is exact against scikit-learn, or refused naming the step and why.

Exact cases package a real pipeline (the parity check passes) and compare fresh rows far outside
the training range with scikit-learn's own answer. Refused cases fall back to the Python runtime
with ``blocked_by`` naming the step and the reason.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PowerTransformer,
    QuantileTransformer,
    StandardScaler,
)
from sklearn.tree import DecisionTreeClassifier

import parity
from tests.fixtures import raw_frame, targets

NUM = ["tenure", "charges", "age"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return raw_frame(300, seed=4)


@pytest.fixture(scope="module")
def fresh() -> pd.DataFrame:
    df = raw_frame(200, seed=5)
    df.loc[:3, "charges"] = [1e6, -1e6, 0.0, 1e-300]  # far outside the fitted range
    return df


def package(model: Any, frame: pd.DataFrame, name: str = "edge") -> parity.Artifact:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unknown categories / convergence notes of sklearn
        return parity.package(model, frame, name=name)


def exact(model: Any, art: parity.Artifact, fresh: pd.DataFrame) -> None:
    """Portable, parity passed, and fresh rows agree with scikit-learn to 1e-12."""
    assert art.portable, art.manifest["blocked_by"]
    assert art.parity_report.passed, art.parity_report.failure
    got = art.predict(fresh)
    if hasattr(model, "predict_proba"):
        np.testing.assert_allclose(got["probability"], model.predict_proba(fresh)[:, 1], rtol=1e-12, atol=1e-15)
        assert list(got["label"]) == list(model.predict(fresh))
    else:
        np.testing.assert_allclose(got["prediction"], model.predict(fresh), rtol=1e-12, atol=1e-9)


def cats() -> Any:
    return make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))


def test_minmax_scaler_with_clip_clamps_far_values(data: pd.DataFrame, fresh: pd.DataFrame) -> None:
    pre = ColumnTransformer([("num", make_pipeline(SimpleImputer(), MinMaxScaler(clip=True)), NUM),
                             ("cat", cats(), ["plan", "region"])])  # fmt: skip
    model = Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=1000))]).fit(data, targets(data, "binary"))
    art = package(model, data)
    exact(model, art, fresh)
    # Clipped: 1e6 and 1e3 charges give the same answer (both at the top of the range).
    far = fresh.iloc[[0, 0]].reset_index(drop=True)
    far.loc[1, "charges"] = 1e3
    p = art.predict(far)["probability"]
    assert p[0] == p[1]


def test_imputer_with_a_numeric_sentinel(data: pd.DataFrame, fresh: pd.DataFrame) -> None:
    sentinel = data.assign(tenure=data["tenure"].fillna(-1.0))
    imputer = SimpleImputer(missing_values=-1.0, strategy="median")
    rest = make_pipeline(SimpleImputer(), StandardScaler())
    pre = ColumnTransformer([("num", make_pipeline(imputer, StandardScaler()), ["tenure"]),
                             ("rest", rest, ["charges", "age"])])  # fmt: skip
    model = Pipeline([("pre", pre), ("model", LogisticRegression())]).fit(sentinel, targets(data, "binary"))
    art = package(model, sentinel)
    new = fresh.assign(tenure=fresh["tenure"].fillna(-1.0))
    exact(model, art, new)
    # -1 is imputed with the median: it answers like the median itself.
    median = model[0].named_transformers_["num"][0].statistics_[0]
    rows = new.iloc[[0, 0]].reset_index(drop=True)
    rows.loc[0, "tenure"], rows.loc[1, "tenure"] = -1.0, median
    p = art.predict(rows)["probability"]
    assert p[0] == pytest.approx(p[1], rel=1e-15)


@pytest.mark.parametrize(
    "columns",
    [
        pytest.param(slice(0, 2), id="slice"),
        pytest.param([True, True, False], id="bool-mask"),
        pytest.param([2, 0], id="positions"),
    ],
)
def test_column_transformer_column_selections(columns: Any, data: pd.DataFrame, fresh: pd.DataFrame) -> None:
    frame, new = data[NUM].fillna(0.0), fresh[NUM].fillna(0.0)
    pre = ColumnTransformer([("num", StandardScaler(), columns)])
    model = Pipeline([("pre", pre), ("skip", "passthrough"), ("model", Ridge())]).fit(
        frame, targets(data, "regression")
    )
    exact(model, package(model, frame), new)


def test_passthrough_and_empty_column_transformer_steps(data: pd.DataFrame, fresh: pd.DataFrame) -> None:
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["tenure", "charges"]),
            ("raw", "passthrough", ["age"]),  # fed to the model as it came
            ("nothing", OneHotEncoder(), []),  # selects no column: contributes nothing
            ("cat", cats(), ["plan"]),
        ]
    )
    model = Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=1000))]).fit(data, targets(data, "binary"))
    exact(model, package(model, data), fresh)


def test_ordinal_encoder_with_missing_text_as_its_own_code(data: pd.DataFrame, fresh: pd.DataFrame) -> None:
    # Missing text as pd.read_csv delivers it, NaN in an object column, on every pandas: scikit-learn
    # gives NaN the missing code but encodes None (what pandas 2.2 keeps in object columns) as a category.
    data, fresh = (
        f.assign(region=f["region"].astype(object).where(f["region"].notna(), np.nan)) for f in (data, fresh)
    )
    enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2)
    pre = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), NUM), ("cat", enc, ["region"])])
    model = Pipeline([("pre", pre), ("model", DecisionTreeClassifier(max_depth=5, random_state=0))])
    model.fit(data, targets(data, "binary"))
    missing = data[data["region"].isna()][["region"]].head(1)  # a missing value as the training frame holds it
    assert model[0].named_transformers_["cat"].transform(missing)[0, 0] == -2  # its own code, not "unknown"
    exact(model, package(model, data), fresh)


def test_logistic_mlp_is_exact(data: pd.DataFrame, fresh: pd.DataFrame) -> None:
    pre = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), NUM), ("cat", cats(), ["plan"])])
    mlp = MLPClassifier(hidden_layer_sizes=(6,), activation="logistic", max_iter=300, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few hundred steps are enough to test the graph
        model = Pipeline([("pre", pre), ("model", mlp)]).fit(data, targets(data, "binary"))
    exact(model, package(model, data), fresh)


@pytest.mark.parametrize("transformer", [StandardScaler(), MinMaxScaler(feature_range=(-1.0, 2.0))])
def test_transformed_target_with_a_scaler_is_exact(transformer: Any, data: pd.DataFrame, fresh: pd.DataFrame) -> None:
    pre = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), NUM), ("cat", cats(), ["plan"])])
    model = TransformedTargetRegressor(regressor=Pipeline([("pre", pre), ("model", LinearRegression())]),
                                       transformer=transformer).fit(data, targets(data, "regression"))  # fmt: skip
    art = package(model, data)
    exact(model, art, fresh)
    assert art.manifest["estimator"] == "TransformedTargetRegressor(LinearRegression)"


def test_calibrated_tree_uses_its_probabilities(data: pd.DataFrame, fresh: pd.DataFrame) -> None:
    pre = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), NUM), ("cat", cats(), ["plan"])])
    calibrated = CalibratedClassifierCV(DecisionTreeClassifier(max_depth=3, random_state=0), method="sigmoid", cv=3)
    model = Pipeline([("pre", pre), ("model", calibrated)]).fit(data, targets(data, "binary"))
    exact(model, package(model, data), fresh)


def _blocked(model: Any, frame: pd.DataFrame) -> dict[str, str]:
    art = package(model, frame)
    assert not art.portable and art.parity_report.passed  # the Python fallback is the model itself
    blocked: dict[str, str] = art.manifest["blocked_by"]
    return blocked


@pytest.mark.parametrize(
    ("case", "step", "words"),
    [
        ("nested", "ColumnTransformer", "a nested ColumnTransformer is not supported; flatten it"),
        ("quantile", "QuantileTransformer", "QuantileTransformer has no exact ONNX export in parity yet"),
        ("text_out", "rest", "ColumnTransformer step 'rest' outputs text; the estimator needs numbers"),
        ("ttr_power", "TransformedTargetRegressor", "transformer=PowerTransformer) is not supported"),
        ("text_indicator", "SimpleImputer", "SimpleImputer(add_indicator=True) on text columns is not supported"),
        ("ordinal_rare", "OrdinalEncoder", "with infrequent categories (min_frequency/max_categories) is not"),
        ("kw_args", "FunctionTransformer(log1p)", "kw_args ['out'] are not supported"),
        # The message quotes the kw_args given (the non-scalar a_max), not what is left after reading them.
        ("clip_kw", "FunctionTransformer(clip)", "a_min/a_max only; got {'a_min': 0.0, 'a_max': [1.0, 2.0, 3.0]}"),
    ],
)
def test_unexportable_steps_are_named_with_the_reason(case: str, step: str, words: str, data: pd.DataFrame) -> None:
    y = targets(data, "regression")
    num = make_pipeline(SimpleImputer(), StandardScaler())
    if case == "nested":
        inner = ColumnTransformer([("num", num, NUM)])
        model = Pipeline([("pre", ColumnTransformer([("all", inner, NUM)])), ("model", Ridge())])
    elif case == "quantile":
        model = Pipeline([("pre", ColumnTransformer([("num", make_pipeline(SimpleImputer(),
                          QuantileTransformer(n_quantiles=50)), NUM)])), ("model", Ridge())])  # fmt: skip
    elif case == "text_out":
        pre = ColumnTransformer([("num", num, NUM), ("rest", SimpleImputer(strategy="most_frequent"), ["plan"])])
        model = Pipeline([("pre", pre), ("model", _TextTolerant())])
    elif case == "text_indicator":
        imp = SimpleImputer(strategy="most_frequent", add_indicator=True)
        pre = ColumnTransformer([("num", num, NUM), ("cat", make_pipeline(imp, OneHotEncoder()), ["region"])])
        model = Pipeline([("pre", pre), ("model", Ridge())])
    elif case == "ordinal_rare":
        enc = OrdinalEncoder(min_frequency=40, handle_unknown="use_encoded_value", unknown_value=-1)
        pre = ColumnTransformer([("num", num, NUM), ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                                          enc), ["region"])])  # fmt: skip
        model = Pipeline([("pre", pre), ("model", Ridge())])
    elif case == "ttr_power":
        inner = Pipeline([("pre", ColumnTransformer([("num", num, NUM)])), ("model", Ridge())])
        model = TransformedTargetRegressor(regressor=inner, transformer=PowerTransformer())
    elif case == "kw_args":
        ft = FunctionTransformer(np.log1p, kw_args={"out": None})
        model = Pipeline([("pre", ColumnTransformer([("num", make_pipeline(SimpleImputer(), ft), ["age"])])),
                          ("model", Ridge())])  # fmt: skip
    else:
        ft = FunctionTransformer(np.clip, kw_args={"a_min": 0.0, "a_max": [1.0, 2.0, 3.0]})
        model = Pipeline([("pre", ColumnTransformer([("num", make_pipeline(SimpleImputer(), ft), NUM)])),
                          ("model", Ridge())])  # fmt: skip
    model.fit(data, y)
    blocked = _blocked(model, data)
    assert blocked["step"].startswith(step), blocked
    assert words in blocked["reason"], blocked


class _TextTolerant(Ridge):
    """A Ridge that one-hot encodes text itself (so sklearn fits on text columns, but parity cannot export it)."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _TextTolerant:
        return super().fit(self._numbers(X), y, sample_weight)

    def predict(self, X: Any) -> Any:
        return super().predict(self._numbers(X))

    @staticmethod
    def _numbers(X: Any) -> Any:
        arr = np.asarray(X, dtype=object)
        return np.column_stack([arr[:, :-1].astype(float), arr[:, -1] == "pro"]).astype(float)
