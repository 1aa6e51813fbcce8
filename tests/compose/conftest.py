"""Fixtures of the composition tests: two packaged models in a registry, and real processes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import parity
from parity.registry import Registry
from tests._servers import ServerProcess
from tests.server.conftest import fit_pipeline, make_frame, package

HERE = Path(__file__).parent
RULES = HERE / "rules_app.py"


@dataclass
class Models:
    """churn (binary classifier) and spend (regressor on age and plan) pushed to one registry."""

    churn: parity.Artifact
    spend: parity.Artifact
    frame: pd.DataFrame
    registry: Path


def spend_pipeline(frame: pd.DataFrame) -> Any:
    """Ridge regression of a spend proxy on age and plan (imputer + one-hot)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    x = frame[["age", "plan"]]
    y = frame["income"] + np.where(frame["plan"] == "pro", 15.0, 0.0)
    pre = ColumnTransformer(
        [
            ("num", SimpleImputer(), ["age"]),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                ["plan"],
            ),
        ]
    )
    return make_pipeline(pre, Ridge()).fit(x, y)


def _spend(frame: pd.DataFrame) -> parity.Artifact:
    return parity.package(spend_pipeline(frame), frame[["age", "plan"]], name="spend")


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("compose-models")
    frame = make_frame(400, seed=3)
    churn = package(fit_pipeline(frame), frame)
    spend = _spend(frame)
    registry = Registry(root / "home")
    for art in (churn, spend):
        registry.push(art.save(root / art.name))
    return Models(registry.load("churn"), registry.load("spend"), frame, root / "home")


@dataclass
class Stack:
    """Two model servers and the composition service over them."""

    churn: ServerProcess
    spend: ServerProcess
    compose: ServerProcess
    lake: Path
    env: dict[str, str]


def model_server(models: Models, name: str, tmp: Path) -> ServerProcess:
    """`parity serve NAME` from the test registry (lake off: the composition's lake is the one under test)."""
    args = [name, "--registry", str(models.registry), "--lake", "none", "--reload-interval", "0"]
    return ServerProcess(args, tmp / f"{name}.log", grpc=True)


def compose_server(env: dict[str, str], lake: Path, tmp: Path, spec: str = f"{RULES}:composition") -> ServerProcess:
    """`parity compose serve rules_app.py:composition` with the lake under test."""
    return ServerProcess([spec, "--lake", str(lake)], tmp / "compose.log", env, grpc=True, command=("compose", "serve"))


@pytest.fixture(scope="module")
def stack(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("compose-stack")
    churn = model_server(models, "churn", tmp)
    spend = model_server(models, "spend", tmp)
    procs = [churn, spend]
    try:
        churn.wait_ready()
        spend.wait_ready()
        env = {"TEST_CHURN_URL": churn.url, "TEST_SPEND_URL": f"grpc://127.0.0.1:{spend.grpc_port}"}
        comp = compose_server(env, tmp / "lake", tmp)
        procs.append(comp)
        comp.wait_ready()
        yield Stack(churn, spend, comp, tmp / "lake", env)
    finally:
        for p in reversed(procs):
            p.terminate()
