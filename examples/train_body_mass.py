"""Train a body-mass regressor on the Palmer penguins and package it as a parity artifact.

Predicts ``body_mass_g`` from the bill and flipper measurements, island, sex and year (the same
raw columns as the species classifier, minus the mass itself). A composition
(``penguin_rules.py``) combines it with the species classifier in a business rule.

Run: ``python examples/train_body_mass.py OUT_DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from train_penguins import CATEGORICAL, load_data

import parity

FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "year"]
TARGET = "body_mass_g"


def build_pipeline() -> Pipeline:
    """Raw columns -> imputation and one-hot -> gradient-boosted regression trees."""
    categorical = Pipeline(
        [("impute", SimpleImputer(strategy="most_frequent")), ("onehot", OneHotEncoder(handle_unknown="ignore"))]
    )
    features = ColumnTransformer(
        [("num", SimpleImputer(strategy="median"), FEATURES), ("cat", categorical, CATEGORICAL)]
    )
    return Pipeline([("features", features), ("model", HistGradientBoostingRegressor(max_iter=80, random_state=0))])


def train(out_dir: Path) -> parity.Artifact:
    """Fit on the penguins with a known mass, measure on the holdout, package and save to ``out_dir``."""
    data = load_data()
    data = data[data[TARGET].notna()]
    x, y = data[FEATURES + CATEGORICAL], data[TARGET]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    pipeline = build_pipeline().fit(x_train, y_train)
    mae = float(mean_absolute_error(y_test, pipeline.predict(x_test)))
    artifact = parity.package(
        pipeline, x_train, name="penguin_mass", metrics={"holdout_mae_g": mae},
        description="Palmer penguins body mass (g) from bill and flipper measurements, island, sex and year",
    )  # fmt: skip
    artifact.save(out_dir)
    return artifact


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-out/penguin_mass")
    art = train(out)
    print(f"packaged {art.name} -> {out}: {art.manifest['metrics']}")
