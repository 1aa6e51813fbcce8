"""Packaging: a small core, the CLI and the server as extras, and clear messages when an extra is missing."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVE_STACK = ["starlette", "uvicorn", "grpc", "grpc_health", "grpc_reflection", "orjson", "prometheus_client"]
CLI_STACK = ["typer", "click", "rich"]

# Runs a snippet with some top-level modules made unimportable, as in an environment without that extra.
_BLOCKER = """
import importlib.abc, sys
class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Hide())
sys.argv = {argv!r}
"""


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {r.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower() for r in requirements}


def test_core_dependencies_leave_out_the_serving_and_cli_stacks() -> None:
    project = _project()
    core = _names(project["dependencies"])  # type: ignore[arg-type]
    extras: dict[str, list[str]] = project["optional-dependencies"]  # type: ignore[assignment]
    assert "skl2onnx" not in core | {n for reqs in extras.values() for n in _names(reqs)}
    assert core.isdisjoint({"typer", "rich", "starlette", "uvicorn", "grpcio", "orjson", "prometheus-client"})
    assert {"typer", "rich"} <= _names(extras["cli"])
    assert {"starlette", "uvicorn", "grpcio", "grpcio-health-checking", "grpcio-reflection"} <= _names(extras["serve"])
    assert "parity[cli]" in extras["serve"]  # `parity serve` is a CLI command
    assert any(r.startswith("parity[") and "serve" in r and "cli" in r and "s3" in r for r in extras["test"])
    assert {"s3fs"} <= _names(extras["s3"])


def _run(blocked: list[str], argv: list[str], body: str) -> subprocess.CompletedProcess[str]:
    code = _BLOCKER.format(blocked=blocked, argv=argv) + body
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def test_cli_without_the_cli_extra_names_it() -> None:
    proc = _run(CLI_STACK, ["parity", "--help"], "from parity.cli import main\nmain()\n")
    assert proc.returncode == 1, proc.stderr
    assert "pip install 'parity[cli]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_without_the_serve_extra_names_it_and_other_commands_work() -> None:
    main = "from parity.cli import main\nmain()\n"
    helped = _run(SERVE_STACK, ["parity", "--help"], main)
    assert helped.returncode == 0, helped.stderr
    assert "serve" in helped.stdout and "registry" in helped.stdout
    served = _run(SERVE_STACK, ["parity", "serve", "churn@production", "--port", "0"], main)
    assert served.returncode == 8, served.stderr  # MissingDependencyError -> "any other parity error"
    assert "pip install 'parity[serve]'" in served.stderr
    assert "Traceback" not in served.stderr


def test_core_imports_without_either_extra() -> None:
    proc = _run(CLI_STACK + SERVE_STACK, ["python"], "import parity, parity.registry, parity.skew\nprint('ok')\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_no_onnxruntime_profiles_committed() -> None:
    assert "onnxruntime_profile__*.json" in (ROOT / ".gitignore").read_text().splitlines()
    if (ROOT / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "onnxruntime_profile__*"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        assert listed == ""


def test_compose_extra_brings_aiohttp_and_a_rest_downstream_without_it_names_the_extra() -> None:
    extras: dict[str, list[str]] = _project()["optional-dependencies"]  # type: ignore[assignment]
    assert "aiohttp" in _names(extras["compose"]) and "parity[serve]" in extras["compose"]
    body = (
        "import asyncio\n"
        "from parity.compose._clients import RestClient\n"
        "from parity.errors import MissingDependencyError\n"
        "try:\n"
        "    asyncio.run(RestClient('http://127.0.0.1:9', 'm').ready(1.0))\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    proc = _run(["aiohttp"], ["python"], body)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'parity[compose]'" in proc.stdout
