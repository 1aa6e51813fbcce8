"""Shared toy data and pipelines for the test suite."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

NUMERIC = ["tenure", "charges", "age"]
CATEGORICAL = ["plan", "region"]


def raw_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Raw churn-like inputs: floats with NaN, an int column, strings with None."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "tenure": rng.gamma(2.0, 12.0, n).round(1),
            "charges": rng.normal(70, 25, n),
            "age": rng.integers(18, 90, n),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]),
            "region": rng.choice(["north", "south", "east", "west"], n),
        }
    )
    df.loc[rng.random(n) < 0.08, "tenure"] = np.nan
    df.loc[rng.random(n) < 0.05, "charges"] = np.nan
    df.loc[rng.random(n) < 0.06, "region"] = None
    return df


def targets(df: pd.DataFrame, task: str, seed: int = 1) -> np.ndarray:
    """A target for ``task`` (binary, multiclass, regression) that depends on every column."""
    rng = np.random.default_rng(seed)
    score = (
        -0.04 * df["tenure"].fillna(20).to_numpy()
        + 0.03 * df["charges"].fillna(70).to_numpy()
        + 0.01 * df["age"].to_numpy()
        + (df["plan"] == "pro").to_numpy() * 0.8
        - (df["region"] == "north").to_numpy() * 0.5
        + rng.normal(0, 0.5, len(df))
    )
    if task == "regression":
        return score * 100.0
    if task == "binary":
        return (score > np.median(score)).astype(int)
    return np.digitize(score, np.quantile(score, [0.33, 0.66]))


def preprocessor(encoder: str = "onehot") -> ColumnTransformer:
    """Impute + scale numerics, impute + encode strings: the known-trap shape before trees."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    enc: Any = (
        OneHotEncoder(handle_unknown="ignore")
        if encoder == "onehot"
        else OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    )
    categorical = Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("encode", enc)])
    return ColumnTransformer([("num", numeric, NUMERIC), ("cat", categorical, CATEGORICAL)])


def pipeline(estimator: Any, encoder: str = "onehot") -> Pipeline:
    """The preprocessor followed by ``estimator``."""
    return Pipeline([("features", preprocessor(encoder)), ("model", estimator)])


HOUSE_NUMERIC = ["area", "rooms", "year", "lot"]
HOUSE_TEXT = ["hood", "style", "kitchen", "garage"]


def read_as_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as pd.read_csv returns it after a round trip through a CSV file."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    buf.seek(0)
    return pd.read_csv(buf)


def house(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """House-price-like raw inputs read back from CSV (40 one-hot columns); price, binary and 3-class labels."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "area": rng.gamma(4.0, 400.0, n).round(0),
            "rooms": rng.integers(1, 9, n).astype(float),
            "year": rng.integers(1900, 2020, n),
            "lot": rng.normal(8000, 3000, n).round(0).clip(500),
            "hood": rng.choice([f"N{i:02d}" for i in range(25)], n),
            "style": rng.choice(["1Story", "2Story", "SLvl", "1.5Fin", "Split", "Duplex"], n),
            "kitchen": rng.choice(["Ex", "Gd", "TA", "Fa"], n),
            "garage": rng.choice(["Attchd", "Detchd", "BuiltIn", "CarPort", "Basment"], n),
        }
    )
    df.loc[rng.random(n) < 0.1, "lot"] = np.nan
    df.loc[rng.random(n) < 0.1, "rooms"] = np.nan
    df.loc[rng.random(n) < 0.15, "garage"] = np.nan
    df.loc[rng.random(n) < 0.05, "kitchen"] = np.nan
    price = (
        50 * df["area"]
        + 3000 * df["rooms"].fillna(3)
        + 200 * (df["year"] - 1900)
        + df["hood"].str[1:].astype(int) * 2000
        + (df["kitchen"] == "Ex") * 15000
        + rng.normal(0, 10000, n)
    ).to_numpy()
    # String labels whose order of appearance differs from their sorted order.
    expensive = np.where(price > np.median(price), "yes", "no")
    band = np.asarray(["mid", "low", "high"], dtype=object)[np.digitize(price, np.quantile(price, [0.33, 0.66]))]
    return read_as_csv(df), price, expensive, band
