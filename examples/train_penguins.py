"""Train a species classifier on the Palmer penguins and package it as a parity artifact.

The data ship inside the ``palmerpenguins`` package (nothing is downloaded): 344 penguins with
numeric measurements (some missing), two string categoricals (``island``, ``sex``, with missing
values) and the species to predict. The pipeline imputes, scales and one-hot encodes the raw
columns and feeds a HistGradientBoostingClassifier: the scaler-before-trees shape that a plain
ONNX conversion gets wrong near split thresholds, and that parity exports exactly.

Run: ``python examples/train_penguins.py OUT_DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import parity

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
CATEGORICAL = ["island", "sex"]
TARGET = "species"


def load_data() -> pd.DataFrame:
    """The penguins table as shipped by the palmerpenguins package."""
    from palmerpenguins import load_penguins

    return load_penguins()


def build_pipeline() -> Pipeline:
    """Raw columns -> imputation, scaling, one-hot -> gradient-boosted trees."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [("impute", SimpleImputer(strategy="most_frequent")), ("onehot", OneHotEncoder(handle_unknown="ignore"))]
    )
    features = ColumnTransformer([("num", numeric, NUMERIC), ("cat", categorical, CATEGORICAL)])
    model = HistGradientBoostingClassifier(max_iter=60, learning_rate=0.1, random_state=0)
    return Pipeline([("features", features), ("model", model)])


def train(out_dir: Path) -> parity.Artifact:
    """Fit on a training split, measure on the holdout, package and save to ``out_dir``."""
    data = load_data()
    x = data[NUMERIC + CATEGORICAL]
    y = data[TARGET]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    pipeline = build_pipeline().fit(x_train, y_train)
    metrics = {
        "holdout_accuracy": float(accuracy_score(y_test, pipeline.predict(x_test))),
        "holdout_log_loss": float(log_loss(y_test, pipeline.predict_proba(x_test))),
    }
    artifact = parity.package(
        pipeline,
        x_train,
        name="penguins",
        metrics=metrics,
        description="Palmer penguins species from raw measurements, island and sex",
        tags={"dataset": "palmerpenguins", "owner": "demo"},
    )
    artifact.save(out_dir)
    return artifact


def main() -> None:
    """Command-line entry point."""
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-out/penguins")
    artifact = train(out_dir)
    report = artifact.parity_report
    worst = max(d.max_abs_diff for d in report.outputs.values())
    print(f"packaged {artifact.name} -> {out_dir}")
    print(f"  metrics: {artifact.manifest['metrics']}")
    print(f"  parity: passed={report.passed} rows={report.rows_checked} max|diff|={worst:.2e} ({report.precision})")


if __name__ == "__main__":
    main()
