"""The suite's own rules: under CI=true a skip (of any kind) fails; locally it stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SKIPPING = """
import shutil
import pytest

def test_needs_a_missing_browser():
    if shutil.which("no-such-chromium") is None:
        pytest.skip("chromium is not installed")

@pytest.mark.skipif(True, reason="node is not on PATH")
def test_marked():
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_failure():
    assert False
"""


def _run(tmp_path: Path, ci: str | None, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(body)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:randomly", "-p", "no:cacheprovider",
           "-q", "-rA", "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_sample.py")]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)


def test_skips_fail_under_ci(tmp_path: Path) -> None:
    result = _run(tmp_path, "true", SKIPPING)
    assert result.returncode == 1, result.stdout
    assert "skipped under CI=true, which must run every test: Skipped: chromium is not installed" in result.stdout
    assert "node is not on PATH" in result.stdout
    assert "1 xfailed" in result.stdout  # an expected failure is not a skip


def test_skips_stay_skips_locally(tmp_path: Path) -> None:
    result = _run(tmp_path, None, SKIPPING)
    assert result.returncode == 0, result.stdout
    assert "2 skipped, 1 xfailed" in result.stdout


def test_a_module_skipped_at_import_fails_under_ci(tmp_path: Path) -> None:
    body = 'import pytest\n\nxgb = pytest.importorskip("no_such_xgboost")\n\n\ndef test_x():\n    pass\n'
    result = _run(tmp_path, "true", body)
    assert result.returncode != 0 and "skipped under CI=true" in result.stdout, result.stdout
