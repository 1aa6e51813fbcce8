"""The gauntlet: realistic pipelines on data as pd.read_csv delivers it, each packaged exactly.

Every frame goes through a CSV file and back (object columns with NaN for missing text on
pandas 2, ``str`` on pandas 3; floats with NaN), ColumnTransformers keep their defaults (so the
one-hot heavy ones produce scipy sparse output), and every case is checked by ``package`` itself
on training rows, edge rows (nulls, unseen and empty categories, extremes) and at and around
every split threshold. Run with ``-s`` to print the measured max diff of each pipeline
(the README's support table is measured this way).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import SelectFromModel, SelectKBest, SelectPercentile, VarianceThreshold, f_classif
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    StandardScaler,
    TargetEncoder,
)
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

import parity
from tests.fixtures import HOUSE_NUMERIC as NUMERIC
from tests.fixtures import HOUSE_TEXT as TEXT
from tests.fixtures import house

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

TOLERANCE = 1e-5


def columns(
    numeric: Any = None, text: Any = None, num_cols: list[str] = NUMERIC, text_cols: list[str] = TEXT
) -> ColumnTransformer:
    """Default ColumnTransformer (sparse_threshold=0.3): impute+scale numbers, impute+one-hot text."""
    num = numeric or make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    txt = text or make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    return ColumnTransformer([("num", num, num_cols), ("text", txt, text_cols)])


def _xgb_reg() -> Any:
    return Pipeline([("features", columns()), ("model", xgb.XGBRegressor(n_estimators=20, max_depth=4))])


def _lgbm_binary() -> Any:
    model = lgb.LGBMClassifier(n_estimators=20, num_leaves=8, min_child_samples=5, verbose=-1)
    return Pipeline([("features", columns()), ("model", model)])


def _forest_select() -> Any:
    model = RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0)
    return Pipeline([("features", columns()), ("select", SelectKBest(f_classif, k=20)), ("model", model)])


def _logistic_poly_infrequent() -> Any:
    num = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), PolynomialFeatures(degree=2))
    txt = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="none"),
        OneHotEncoder(min_frequency=15, max_categories=8, handle_unknown="infrequent_if_exist"),
    )
    return Pipeline([("features", columns(num, txt)), ("model", LogisticRegression(max_iter=500))])


def _gb_log_bins() -> Any:
    features = ColumnTransformer(
        [
            ("area", make_pipeline(SimpleImputer(strategy="median"), FunctionTransformer(np.abs)), ["area"]),
            ("lot", make_pipeline(SimpleImputer(strategy="median"), FunctionTransformer(np.sqrt)), ["lot"]),
            ("year", KBinsDiscretizer(n_bins=6, encode="ordinal", quantile_method="averaged_inverted_cdf"), ["year"]),
            ("rooms", make_pipeline(SimpleImputer(), KBinsDiscretizer(n_bins=4, strategy="uniform")), ["rooms"]),
            (
                "text",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                TEXT,
            ),
        ]
    )
    model = GradientBoostingRegressor(n_estimators=25, max_depth=3, random_state=0)
    return Pipeline([("features", features), ("model", model)])


def _ttr_ridge() -> Any:
    inner = Pipeline([("features", columns()), ("model", Ridge(alpha=1.0))])
    return TransformedTargetRegressor(regressor=inner, func=np.log1p, inverse_func=np.expm1)


def _ttr_tree_inside() -> Any:
    model = TransformedTargetRegressor(
        regressor=DecisionTreeRegressor(max_depth=5, random_state=0), func=np.log, inverse_func=np.exp
    )
    return Pipeline([("features", columns()), ("model", model)])


def _mlp_classifier() -> Any:
    model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0)
    return Pipeline([("features", columns()), ("model", model)])


def _mlp_clip() -> Any:
    num = make_pipeline(
        SimpleImputer(strategy="median"),
        StandardScaler(),
        FunctionTransformer(np.clip, kw_args={"a_min": -2.0, "a_max": 2.0}),
    )
    model = MLPRegressor(hidden_layer_sizes=(6,), activation="tanh", max_iter=400, random_state=0)
    return Pipeline([("features", columns(num)), ("model", model)])


def _voting_classifier() -> Any:
    model = VotingClassifier(
        [
            ("lr", LogisticRegression(max_iter=500)),
            ("rf", RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0)),
            ("xgb", xgb.XGBClassifier(n_estimators=10, max_depth=3)),
        ],
        voting="soft",
        weights=[1.0, 2.0, 1.0],
    )
    return Pipeline([("features", columns()), ("model", model)])


def _voting_regressor() -> Any:
    model = VotingRegressor(
        [
            ("ridge", Ridge()),
            ("tree", DecisionTreeRegressor(max_depth=4, random_state=0)),
            ("lgbm", lgb.LGBMRegressor(n_estimators=10, verbose=-1)),
        ]
    )
    return Pipeline(
        [
            (
                "features",
                columns(),
            ),
            ("model", model),
        ]
    )


def _stacking_regressor() -> Any:
    model = StackingRegressor(
        [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=4, random_state=0))],
        final_estimator=Ridge(alpha=0.5),
        passthrough=True,
        cv=3,
    )
    return Pipeline([("features", columns()), ("model", model)])


def _stacking_classifier() -> Any:
    model = StackingClassifier(
        [
            ("gb", GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0)),
            ("svc", make_pipeline(StandardScaler(with_mean=False), LinearSVC())),
        ],
        final_estimator=LogisticRegression(),
        cv=3,
    )
    return Pipeline([("features", columns()), ("model", model)])


def _calibrated_sigmoid() -> Any:
    model = CalibratedClassifierCV(GradientBoostingClassifier(n_estimators=15, max_depth=2, random_state=0), cv=3)
    return Pipeline([("features", columns()), ("model", model)])


def _calibrated_isotonic() -> Any:
    model = CalibratedClassifierCV(LogisticRegression(max_iter=500), method="isotonic", cv=3)
    return Pipeline([("features", columns()), ("model", model)])


def _target_encoder() -> Any:
    txt = make_pipeline(SimpleImputer(strategy="most_frequent"), TargetEncoder())
    model = ExtraTreesRegressor(n_estimators=10, max_depth=6, random_state=0)
    return Pipeline([("features", columns(text=txt)), ("model", model)])


def _select_from_model() -> Any:
    return Pipeline(
        [
            ("features", columns()),
            ("variance", VarianceThreshold(0.01)),
            ("select", SelectFromModel(Lasso(alpha=500.0))),
            ("model", LinearRegression()),
        ]
    )


def _tree_percentile() -> Any:
    enc = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    )
    return Pipeline(
        [
            ("features", columns(text=enc)),
            ("select", SelectPercentile(f_classif, percentile=60)),
            ("model", DecisionTreeClassifier(max_depth=6, random_state=0)),
        ]
    )


def _hgb_native_categorical() -> Any:
    enc = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="none"),
        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
    )
    # Dense (sparse_threshold has nothing to densify here): ordinal codes, then native categorical splits.
    features = ColumnTransformer([("text", enc, TEXT), ("num", "passthrough", NUMERIC)])
    model = HistGradientBoostingClassifier(max_iter=15, max_depth=4, categorical_features=[0, 1, 2, 3])
    return Pipeline([("features", features), ("model", model)])


def _hgb_regressor_nan() -> Any:
    features = columns(numeric="passthrough", text=OneHotEncoder(handle_unknown="ignore", sparse_output=False))
    model = HistGradientBoostingRegressor(max_iter=20, max_depth=4)
    return Pipeline([("features", features), ("model", model)])


# (builder, target kind, whether trees are involved so threshold probes must exist)
PIPELINES: dict[str, tuple[Callable[[], Any], str, bool]] = {
    "xgboost-regressor-sparse": (_xgb_reg, "price", True),
    "lightgbm-binary-sparse": (_lgbm_binary, "expensive", True),
    "random-forest-selectkbest-multiclass": (_forest_select, "band", True),
    "logistic-polynomial-infrequent-onehot": (_logistic_poly_infrequent, "band", False),
    "gradient-boosting-abs-sqrt-kbins": (_gb_log_bins, "price", True),
    "transformed-target-ridge": (_ttr_ridge, "price", False),
    "transformed-target-tree-inside": (_ttr_tree_inside, "price", True),
    "mlp-classifier": (_mlp_classifier, "band", False),
    "mlp-regressor-clip": (_mlp_clip, "price", False),
    "voting-classifier-soft-weighted": (_voting_classifier, "expensive", True),
    "voting-regressor": (_voting_regressor, "price", True),
    "stacking-regressor-passthrough": (_stacking_regressor, "price", True),
    "stacking-classifier-gb-linearsvc": (_stacking_classifier, "expensive", True),
    "calibrated-sigmoid-gradient-boosting": (_calibrated_sigmoid, "expensive", True),
    "calibrated-isotonic-logistic-multiclass": (_calibrated_isotonic, "band", False),
    "target-encoder-extra-trees": (_target_encoder, "price", True),
    "variance-selectfrommodel-linear": (_select_from_model, "price", False),
    "selectpercentile-decision-tree": (_tree_percentile, "band", True),
    "hist-gradient-boosting-native-categorical": (_hgb_native_categorical, "band", True),
    "hist-gradient-boosting-regressor-nan-dense": (_hgb_regressor_nan, "price", True),
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The CSV-read frame and its targets."""
    frame, price, expensive, band = house()
    return frame, {"price": price, "expensive": expensive, "band": band}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_gauntlet_pipeline_packages_exactly(name: str, data: tuple[pd.DataFrame, dict[str, np.ndarray]]) -> None:
    """Each pipeline exports to one ONNX graph that matches scikit-learn on every case."""
    frame, targets = data
    build, target, trees = PIPELINES[name]
    assert frame["garage"].isna().any() and frame["lot"].isna().any()  # NaN in text and numbers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # small MLPs on purpose: keep the suite fast
        pipe = build().fit(frame, targets[target])
    art = parity.package(pipe, frame, name="gauntlet", tolerance=TOLERANCE)
    report = art.parity_report
    assert art.manifest["portable"], art.manifest["blocked_by"]
    assert report.passed, report.failure
    worst = max(d.max_rel_diff for d in report.outputs.values())
    print(f"\n{name}: max abs diff {max(d.max_abs_diff for d in report.outputs.values()):.3g}, rel {worst:.3g}")
    assert worst <= TOLERANCE
    cases = set(report.cases)
    assert {"null:garage", "unseen:hood", "empty:style", "null:all"} <= cases
    if trees:
        assert any(c.startswith("threshold:") for c in cases), sorted(cases)
    # The artifact answers the CSV frame itself exactly like the pipeline.
    out = art.predict(frame.iloc[:50])
    if target == "price":
        expected = np.asarray(pipe.predict(frame.iloc[:50]), dtype=np.float64)
        np.testing.assert_allclose(out["prediction"].to_numpy(), expected, rtol=TOLERANCE)
    else:
        assert list(out["label"]) == list(pipe.predict(frame.iloc[:50]))
