"""The ``serve`` command: registration in a typer app and option validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from parity.cli._serve_cmds import register
from parity.server import ServerConfig


def test_register_adds_serve_command() -> None:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """Root."""

    register(app)
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
