"""Fixtures of the CLI tests: one portable and one non-portable artifact, packaged once per run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import parity


def raw_frame(n: int, seed: int) -> pd.DataFrame:
    """Raw inputs: a nullable float, a float, and a text column whose categories include "1"."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n) * 10,
            # "1" must stay text when read back from CSV.
            "c": rng.choice(["x", "y", "1"], size=n),
        }
    )
    frame.loc[::17, "a"] = np.nan
    return frame


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = raw_frame(300, seed=0)
    target = (frame["b"] + 5 * (frame["c"] == "1") > 0).astype(int)
    pipe = Pipeline(
        [
            (
                "pre",
                ColumnTransformer(
                    [
                        ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["a", "b"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["c"]),
                    ]
                ),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(frame, target)
    path = tmp_path_factory.mktemp("artifacts") / "clitest"
    # nullable=[]: only columns with nulls in training accept them ("c" would be inferred nullable).
    parity.package(pipe, frame, name="clitest", nullable=[]).save(path)
    return path


@pytest.fixture(scope="session")
def artifact(artifact_dir: Path) -> parity.Artifact:
    return parity.load(artifact_dir)


@pytest.fixture(scope="session")
def knn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A non-portable artifact: KNeighborsClassifier has no ONNX export, so it keeps model.skops."""
    frame = raw_frame(60, seed=3)[["a", "b"]].fillna(0.0)
    model = KNeighborsClassifier(3).fit(frame, (frame["b"] > 0).astype(int))
    path = tmp_path_factory.mktemp("artifacts") / "knn"
    parity.package(model, frame, name="knn").save(path)
    return path
