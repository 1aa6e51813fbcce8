"""Fixtures of the deployment tests: a portable and a non-portable artifact, and one build context."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import parity
from parity.deploy import build_context
from tests.fixtures import pipeline, raw_frame, targets

KSERVE_VERSION = "0.21.0"


def _labels(df: pd.DataFrame) -> np.ndarray:
    # String class labels in unsorted order, as they arrive from a CSV.
    return np.where(targets(df, "binary") == 1, "stay", "churn")


@pytest.fixture(scope="session")
def portable_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A portable artifact directory (logistic pipeline, string labels)."""
    df = raw_frame(400, seed=7)
    model = pipeline(LogisticRegression(max_iter=500)).fit(df, _labels(df))
    return parity.package(model, df, name="churn").save(tmp_path_factory.mktemp("art") / "churn")


def _double(x: pd.DataFrame) -> pd.DataFrame:
    return x * 2.0


@pytest.fixture(scope="session")
def python_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A non-portable artifact (a custom FunctionTransformer step runs in Python)."""
    full = raw_frame(300, seed=8)
    df = full[["tenure", "charges"]].fillna(0.0)
    model = Pipeline([("f", FunctionTransformer(_double)), ("m", LogisticRegression())]).fit(df, _labels(full))
    return parity.package(model, df, name="custom").save(tmp_path_factory.mktemp("art") / "custom")


@pytest.fixture(scope="session")
def context(portable_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`parity build` output of the portable artifact, for this interpreter's Python version."""
    import platform

    out = tmp_path_factory.mktemp("ctx") / "image"
    return build_context(portable_dir, out, python=platform.python_version()).directory


@pytest.fixture(scope="session")
def kserve_python() -> Path:
    """Python of a side virtualenv holding the KServe SDK (its model classes are KServe's API schema).

    The SDK pins pandas < 3, so it cannot share the test environment; the venv is cached across runs.
    """
    root = (
        Path.home() / ".cache" / "parity" / f"kserve-sdk-{KSERVE_VERSION}-py{sys.version_info[0]}{sys.version_info[1]}"
    )
    python = root / "bin" / "python"
    stamp = root / ".installed"
    if not stamp.is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"kserve=={KSERVE_VERSION}",
            ],
            check=True,
            timeout=900,
        )
        stamp.touch()
    return python
