"""Fixtures of the server tests: a small packaged pipeline in a registry, and real server processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import parity
from parity.registry import Registry
from tests._servers import ServerProcess


@dataclass
class ModelEnv:
    """A packaged model pushed into a registry as churn:1 with alias production."""

    artifact: parity.Artifact
    frame: pd.DataFrame
    registry_root: Path
    artifact_dir: Path
    pipeline: object


def make_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Raw inputs: two numeric columns (age with NaN) and one string column with None."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.normal(50, 20, n),
            "plan": rng.choice(["basic", "pro", "max"], n).astype(object),
        }
    )
    frame.loc[rng.choice(n, 20, replace=False), "age"] = np.nan
    frame.loc[rng.choice(n, 20, replace=False), "plan"] = None
    return frame


def fit_pipeline(frame: pd.DataFrame, flip: bool = False) -> object:
    """ColumnTransformer(imputer+scaler, imputer+one-hot) + LogisticRegression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    target = ((frame["income"] > 50) ^ (frame["plan"] == "pro")).astype(int)
    if flip:
        target = 1 - target
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                ["plan"],
            ),
        ]
    )
    return make_pipeline(pre, LogisticRegression()).fit(frame, target)


def package(pipeline: object, frame: pd.DataFrame) -> parity.Artifact:
    """Package with a 0.6 threshold and string labels; only columns with nulls in training are nullable."""
    return parity.package(
        pipeline, frame, name="churn", postprocess=parity.Threshold(0.6, labels=("no", "yes")), nullable=[]
    )


@pytest.fixture(scope="session")
def model_env(tmp_path_factory: pytest.TempPathFactory) -> ModelEnv:
    root = tmp_path_factory.mktemp("model")
    frame = make_frame()
    pipeline = fit_pipeline(frame)
    artifact = package(pipeline, frame)
    artifact_dir = artifact.save(root / "churn-artifact")
    registry = Registry(root / "home")
    version = registry.push(artifact_dir)
    registry.set_alias("churn", "production", version.version)
    return ModelEnv(artifact, frame, root / "home", artifact_dir, pipeline)


@pytest.fixture(scope="session")
def slow_dir(model_env: ModelEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A non-portable artifact "slow": a custom step before the usual pipeline (needs --trusted).

    A batch holding :data:`~tests.server.slow_step.SLOW_MARKER` as an income takes ``SLOW_SECONDS``.
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from tests.server.slow_step import slow_on_marker

    fitted = fit_pipeline(model_env.frame)
    pipe = Pipeline([("slow", FunctionTransformer(slow_on_marker)), ("model", fitted)])
    art = parity.package(pipe, model_env.frame, name="slow")
    assert not art.portable
    return art.save(tmp_path_factory.mktemp("slow") / "slow")


def trusted_env() -> dict[str, str]:
    """Server environment for :func:`slow_dir`: the server unpickles tests.server.slow_step."""
    root = Path(__file__).resolve().parents[2]
    return {"PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[type[ServerProcess]]:
    """Factory starting servers that are all stopped at teardown."""
    started: list[ServerProcess] = []

    class _Factory(ServerProcess):
        def __init__(self, args: list[str], env: dict[str, str] | None = None, *, grpc: bool = False) -> None:
            super().__init__(args, tmp_path / f"server-{len(started)}.log", env, grpc=grpc)
            started.append(self)

    yield _Factory
    for server in started:
        server.terminate()


def shared_server_args(model_env: ModelEnv, lake: Path) -> list[str]:
    """Arguments of the shared server: churn@production, a lake, 1 MiB request limit, 3 s timeout."""
    return [
        "churn@production",
        "--registry",
        str(model_env.registry_root),
        "--lake",
        str(lake),
        "--max-request-bytes",
        str(1024 * 1024),
        "--request-timeout",
        "3",
        "--reload-interval",
        "0",
    ]


@pytest.fixture(scope="module")
def server(model_env: ModelEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The shared server: churn@production, lake on, 1 MiB request limit, 3 s request timeout."""
    root = tmp_path_factory.mktemp("server")
    proc = ServerProcess(shared_server_args(model_env, root / "lake"), root / "server.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.terminate()
