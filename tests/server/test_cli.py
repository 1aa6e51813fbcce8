"""The ``serve`` command: registration in a typer app and option validation."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import parity
from parity.cli import app
from parity.server import ServerConfig
from tests._servers import free_port
from tests.server.conftest import ModelEnv


def test_real_app_has_serve_with_its_options() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--max-batch-size", "--reload-interval", "--grpc-port", "--lake", "--token", "--workers"):
        assert option in result.output
    result = CliRunner().invoke(app, ["serve", "churn", "--tls-cert", "cert.pem"])
    assert result.exit_code == 2 and "tls" in result.output.lower()


def test_config_defaults_and_round_trip() -> None:
    config = ServerConfig(refs=("churn@production",), grpc_port=0, token="t")
    assert config.grpc_port is None and config.max_batch_size == 64 and config.max_batch_delay_ms == 1.0
    assert config.max_request_bytes == 32 * 1024 * 1024 and config.request_timeout_s == 30.0
    assert ServerConfig.from_json(config.to_json()) == config


def test_unknown_ref_fails_fast_with_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "parity.server", "nope@production", "--registry", str(tmp_path), "--grpc-port", "0"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: no model named 'nope' in LocalStorage('{tmp_path}/registry'); models: (none)"
    ]


def _serve(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``parity serve ARGS`` (lake and gRPC off) in a subprocess, bounded."""
    cmd = [sys.executable, "-m", "parity.cli", "serve", *args, "--lake", "none", "--grpc-port", "0"]
    env = {k: v for k, v in os.environ.items() if k != "PARITY_TOKEN"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single error line of a failed serve (no traceback anywhere in its output)."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


def test_busy_port_exits_9_with_one_line(model_env: ModelEnv, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve([str(model_env.artifact_dir), "--port", str(port)], tmp_path)
    assert result.returncode == 9, result.stdout + result.stderr
    assert f"127.0.0.1:{port}" in _one_line_error(result)


def test_tampered_artifact_exits_6_with_one_line(model_env: ModelEnv, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(model_env.artifact_dir, tmp_path / "tampered"))
    onnx = copy / "model.onnx"
    blob = bytearray(onnx.read_bytes())
    blob[-1] ^= 0xFF
    onnx.write_bytes(bytes(blob))
    result = _serve([str(copy), "--port", str(free_port())], tmp_path)
    assert result.returncode == 6, result.stdout + result.stderr
    assert "model.onnx" in _one_line_error(result)


def test_untrusted_artifact_exits_7_with_one_line(model_env: ModelEnv, tmp_path: Path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    frame = model_env.frame[["income"]]
    pipeline = make_pipeline(
        ColumnTransformer([("num", FunctionTransformer(np.negative), ["income"])]), LogisticRegression()
    ).fit(frame, (frame["income"] > 50).astype(int))
    artifact = parity.package(pipeline, frame, name="custom")
    assert not artifact.portable
    directory = artifact.save(tmp_path / "custom")
    result = _serve([str(directory), "--port", str(free_port())], tmp_path)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "--trusted" in _one_line_error(result) or "trusted" in _one_line_error(result)
