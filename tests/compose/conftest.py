"""Fixtures of the composition tests: two packaged models in a registry, and real processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import parity
from parity.registry import Registry
from tests.server.conftest import fit_pipeline, free_port, make_frame, package

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


class Proc:
    """A `parity` command serving on 127.0.0.1 (REST port, optional gRPC port), its log in a file."""

    def __init__(self, args: list[str], log: Path, *, port: int | None = None, grpc_port: int | None = None,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.args, self.log_path, self.env = args, log, env or {}
        self.port = port or free_port()
        self.grpc_port = grpc_port if grpc_port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """(Re)start the process on the same ports."""
        inherited = {k: v for k, v in os.environ.items() if k != "PARITY_TOKEN"}
        env = {**inherited, "OPENBLAS_NUM_THREADS": "1", **self.env}
        cmd = [
            sys.executable,
            "-m",
            "parity.cli",
            *self.args,
            "--port",
            str(self.port),
            "--grpc-port",
            str(self.grpc_port),
        ]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll /v2/health/ready until 200."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.args} exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    if client.get(self.url + "/v2/health/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        """What the process wrote."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL (a crash, not a drain)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def stop(self) -> int:
        """SIGTERM and wait; return the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


@dataclass
class Stack:
    """Two model servers and the composition service over them."""

    churn: Proc
    spend: Proc
    compose: Proc
    lake: Path
    env: dict[str, str]


def model_server(models: Models, name: str, tmp: Path, **kw: object) -> Proc:
    """`parity serve NAME` from the test registry (lake off: the composition's lake is the one under test)."""
    args = ["serve", name, "--registry", str(models.registry), "--lake", "none", "--reload-interval", "0"]
    return Proc(args, tmp / f"{name}.log", **kw)  # type: ignore[arg-type]


def compose_server(env: dict[str, str], lake: Path, tmp: Path, spec: str = f"{RULES}:composition") -> Proc:
    """`parity compose serve rules_app.py:composition` with the lake under test."""
    return Proc(["compose", "serve", spec, "--lake", str(lake)], tmp / "compose.log", env=env)


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
            p.stop()
