"""`parity env verify`: a fresh virtualenv from exactly the image's lock reproduces the parity sample."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from parity.cli import app
from parity.deploy._envcheck import default_wheel_cache
from parity.deploy._lock import read_lock

runner = CliRunner()


def test_fresh_venv_from_the_lock_reproduces_exactly(context: Path, portable_dir: Path) -> None:
    # The wheel cache is shared across runs (default $PARITY_WHEEL_CACHE or ~/.cache/parity/wheels) to stay fast.
    lock = context / "requirements.lock"
    args = ["env", "verify", str(portable_dir), "--lock", str(lock), "--wheel-cache", str(default_wheel_cache())]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["identical_to_host"] and report["parity_passed"]
    venv = report["venv_packages"]
    # Exactly the lock, nothing more: a portable artifact's environment has no training libraries.
    assert venv == read_lock(lock).versions()
    assert "scikit-learn" not in venv and "skl2onnx" not in venv and "scipy" not in venv
    diffs = {d["package"]: d for d in report["differences"]}
    assert diffs["scikit-learn"]["venv"] is None and diffs["scikit-learn"]["can_change_numbers"] is True
    assert "onnxruntime" not in diffs and "numpy" not in diffs  # pinned to the training versions
    # Second run: every wheel comes from the cache.
    again = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert again["passed"] and again["downloaded_wheels"] == 0


def test_a_tampered_lock_is_refused(context: Path, portable_dir: Path, tmp_path: Path) -> None:
    # parity's wheel no longer matches its pinned hash: pip's hash check stops the install.
    text = (context / "requirements.lock").read_text()
    wheel = next(p for p in read_lock(context / "requirements.lock").packages if p.path is not None)
    broken = tmp_path / "requirements.lock"
    broken.write_text(text.replace(wheel.sha256, "0" * 64))
    (tmp_path / "wheels").symlink_to(context / "wheels")
    result = runner.invoke(app, ["env", "verify", str(portable_dir), "--lock", str(broken)])
    assert result.exit_code != 0
    assert "hash" in result.output.lower()
