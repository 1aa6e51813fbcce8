"""Shared synthetic data, artifacts and lake writers for the skew tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import parity
from parity.codec import encode_frame
from parity.lake import LakeWriter

PLANS = ["basic", "plus", "pro", "team"]
REGIONS = ["north", "south", "east", "west", "centre"]
T0 = datetime(2024, 6, 1, tzinfo=UTC).timestamp()


def frame(n: int, seed: int) -> pd.DataFrame:
    """Raw inputs: two numerics (one with ~2% nulls), two categoricals (one with nulls), a boolean."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x": rng.normal(50.0, 10.0, n),
            "amount": rng.gamma(2.0, 30.0, n),
            "plan": rng.choice(PLANS, n, p=[0.4, 0.3, 0.2, 0.1]),
            "region": rng.choice(REGIONS, n),
            "active": rng.random(n) < 0.7,
        }
    )
    df.loc[rng.random(n) < 0.02, "amount"] = np.nan
    df.loc[rng.random(n) < 0.05, "region"] = None
    return df


def fit_artifact(seed: int = 0, n: int = 3000, flip: bool = False) -> parity.Artifact:
    """Package a small logistic pipeline on :func:`frame` data (``flip`` inverts the target: another model)."""
    df = frame(n, seed)
    score = (df["x"] - 50) / 10 + (df["plan"] == "pro") - (df["amount"].fillna(60) - 60) / 60
    target = ((score > 0) != flip).astype(int)
    pre = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["x", "amount"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
        ]
    )
    pipe = Pipeline([("pre", pre), ("model", LogisticRegression())]).fit(df, target)
    return parity.package(pipe, df, name="churn")


def write_lake(
    root: Path,
    art: parity.Artifact,
    df: pd.DataFrame,
    *,
    version: int = 1,
    start: float = T0,
    step_s: float = 60.0,
    rows_per_request: int = 50,
    predict: Callable[[pd.DataFrame], dict[str, np.ndarray]] | None = None,
    model: str = "churn",
) -> None:
    """Log ``df`` as serving requests of ``rows_per_request`` rows, one request every ``step_s`` seconds."""
    sig = art.signature
    writer = LakeWriter(root, flush_interval_s=3600)
    try:
        for i, begin in enumerate(range(0, len(df), rows_per_request)):
            part = df.iloc[begin : begin + rows_per_request].reset_index(drop=True)
            inputs = encode_frame(sig, part)
            outputs = predict(part) if predict else art.runtime.predict(inputs)
            writer.write(
                model=model, version=version, signature=sig, inputs=inputs, outputs=outputs,
                request_id=f"req-{version}-{i}", latency_ms=1.0, ts=start + i * step_s,
            )  # fmt: skip
    finally:
        writer.close()
