"""Fixtures of the server tests: a small packaged pipeline in a registry, and real server processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import parity
from parity.registry import Registry


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


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (another process may take it first: see ServerProcess)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The installed console script: every server test goes through the real `parity serve` command.
PARITY = Path(sys.executable).parent / "parity"
# What uvicorn / gRPC print when the port picked by free_port() was taken in between.
BIND_ERRORS = ("address already in use", "failed to bind", "[errno 98]", "cannot listen on")


class ServerProcess:
    """``parity serve`` in a subprocess, with its log in a file.

    Ports come from :func:`free_port`; if another process grabs one before the server binds it,
    the server exits with a bind error and :meth:`wait_ready` restarts it on fresh ports.
    """

    attempts = 5

    def __init__(
        self, args: list[str], log_path: Path, env: dict[str, str] | None = None, *, grpc: bool = False
    ) -> None:
        self.args, self.log_path, self.grpc = list(args), log_path, grpc
        # A PARITY_TOKEN from the caller's shell must not leak in: tests pass tokens explicitly.
        inherited = {k: v for k, v in os.environ.items() if k != "PARITY_TOKEN"}
        # A short SIGTERM drain keeps teardown quick; drain tests pass --drain themselves.
        self.env = {**inherited, "OPENBLAS_NUM_THREADS": "1", "PARITY_DRAIN": "0.2", **(env or {})}
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        self.port = free_port()
        self.grpc_port = free_port() if self.grpc else 0
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [str(PARITY), "serve", *self.args, "--port", str(self.port), "--grpc-port", str(self.grpc_port)]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in terminate()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)

    def restart_if_port_taken(self) -> bool:
        """If the server died of a bind conflict, start it again on fresh ports and return True."""
        if self.proc.poll() is None or self.restarts >= self.attempts:
            return False
        if not any(marker in self.log().lower() for marker in BIND_ERRORS):
            return False
        self._log.close()
        self.restarts += 1
        self._start()
        return True

    def probe(self) -> bool:
        """One readiness check: /v2/health/ready answers 200."""
        try:
            return httpx.get(self.url + "/v2/health/ready", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Wait until :meth:`probe` passes (fail with the server log if it dies or times out).

        The limit is generous: on a loaded 2-core CI machine loading models can take a minute.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if self.restart_if_port_taken():
                    deadline = time.monotonic() + timeout
                    continue
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if self.probe():
                return
            time.sleep(0.05)  # polling interval of a wait on a condition, not a synchronising sleep
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        """Everything the server wrote so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


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
