"""``parity env verify``: prove an artifact runs identically in a fresh environment built from its lock.

A virtualenv is created from nothing but ``requirements.lock`` (the lock the Dockerfile installs:
``--no-deps --require-hashes``, binary wheels from a local wheel cache, no index), the artifact is
loaded there and its parity sample replayed; the outputs are compared bit for bit with the same
replay in the calling environment and, within the artifact's tolerance, with the stored outputs of
the Python model. The report lists package versions that differ from the training environment and
flags those that can change numbers (onnxruntime, numpy, the estimator library).

What this proves: the locked packages, on this machine's CPU and OS, reproduce the artifact. What it
does not: the base image's system libraries, another CPU architecture, or the image build itself.
"""

from __future__ import annotations

import json
import os
import platform as _platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from parity._io import atomic_write_json, sha256_file
from parity.deploy._errors import DeployError
from parity.deploy._image import build_context
from parity.deploy._lock import NUMERIC_PACKAGES, TRAINING_ONLY, Lock, canonical, read_lock
from parity.registry import verify_artifact_dir

__all__ = ["EnvReport", "default_wheel_cache", "verify_environment"]

_MACHINES = {"linux/amd64": ("x86_64", "amd64"), "linux/arm64": ("aarch64", "arm64")}
_TIMEOUT_S = 900

# Runs inside the fresh venv with -I (no cwd, no user site): only the locked packages are importable.
_PROBE = r"""
import json, sys
from importlib import metadata
import numpy as np
import pyarrow as pa, pyarrow.parquet as pq
import parity
import parity.server._app, parity.cli  # the image's entrypoint must import with the locked packages only
from parity.artifact import load_artifact
art = load_artifact(sys.argv[1], trusted=sys.argv[3] == "1")
report = art.verify(raise_on_failure=False)
frame, _ = art.parity_sample()
outputs = art.predict(frame)
pq.write_table(pa.Table.from_pandas(outputs, preserve_index=False), sys.argv[2])
packages = {d.metadata["Name"]: d.version for d in metadata.distributions()}
print(json.dumps({"passed": report.passed, "report": report.to_dict(), "packages": packages,
                  "parity_file": parity.__file__}))
"""


def default_wheel_cache() -> Path:
    """``$PARITY_WHEEL_CACHE`` or ``~/.cache/parity/wheels``: wheels kept between runs."""
    env = os.environ.get("PARITY_WHEEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "parity" / "wheels"


@dataclass
class EnvReport:
    """Outcome of one environment check."""

    passed: bool
    identical: bool
    parity_passed: bool
    lock: str
    venv_packages: dict[str, str]
    differences: list[dict[str, Any]] = field(default_factory=list)
    parity: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    downloaded: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "passed": self.passed,
            "identical_to_host": self.identical,
            "parity_passed": self.parity_passed,
            "lock": self.lock,
            "differences": self.differences,
            "venv_packages": self.venv_packages,
            "parity": self.parity,
            "seconds": round(self.seconds, 2),
            "downloaded_wheels": self.downloaded,
        }


def _run(args: list[str], what: str, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=_TIMEOUT_S, cwd=cwd, env=env)
    except subprocess.TimeoutExpired as exc:
        raise DeployError(f"{what}: did not finish within {_TIMEOUT_S} s") from exc
    if proc.returncode != 0:
        tail = "\n".join(line for line in proc.stderr.splitlines() if "is ignored" not in line)[-3000:]
        raise DeployError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _check_target(lock: Lock) -> None:
    here = ".".join(_platform.python_version_tuple()[:2])
    want = ".".join(lock.python.split(".")[:2])
    if here != want:
        raise DeployError(
            f"the lock targets CPython {lock.python} but this is {_platform.python_version()}: run "
            f"`parity env verify` with a Python {want} interpreter"
        )
    if sys.platform != "linux" or _platform.machine().lower() not in _MACHINES.get(lock.platform, ()):
        raise DeployError(f"the lock targets {lock.platform}; this machine is {sys.platform}/{_platform.machine()}")


def _fill_cache(lock: Lock, lock_path: Path, cache: Path) -> int:
    """Download the lock's wheels that the cache lacks (hash-checked by pip); return how many were fetched."""
    cache.mkdir(parents=True, exist_ok=True)
    index_file = cache / "sha256.json"
    try:
        known: dict[str, str] = json.loads(index_file.read_text())
    except (OSError, ValueError):
        known = {}
    # Drop entries whose file vanished; the hash of a present file was checked when it was recorded.
    known = {h: n for h, n in known.items() if (cache / n).is_file()}
    missing = [p for p in lock.packages if p.path is None and p.sha256 not in known]
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            req = Path(tmp) / "missing.txt"
            req.write_text("\n".join(p.line() for p in missing) + "\n", encoding="utf-8")
            fetched = Path(tmp) / "wheels"
            _run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                 "-d", str(fetched), "-r", str(req)],
                "downloading the locked wheels",
            )  # fmt: skip
            for wheel in fetched.iterdir():
                digest = sha256_file(wheel)
                shutil.move(str(wheel), cache / wheel.name)
                known[digest] = wheel.name
        atomic_write_json(index_file, known)
    return len(missing)


def _equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for name in a.columns:
        x, y = a[name].to_numpy(), b[name].to_numpy()
        if x.dtype.kind == "f" and y.dtype.kind == "f":
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif x.tolist() != y.tolist():
            return False
    return True


def _differences(trained: dict[str, str], venv: dict[str, str], portable: bool) -> list[dict[str, Any]]:
    out = []
    for name, version in sorted(trained.items()):
        key = canonical(name)
        if key == "parity":
            continue
        got = venv.get(key)
        if got == version:
            continue
        if got is None and portable and key in TRAINING_ONLY:
            note = "not installed: a portable artifact does not need it"
        else:
            note = "differs" if got is not None else "not installed"
        out.append({"package": name, "training": version, "venv": got, "can_change_numbers": key in NUMERIC_PACKAGES,
                    "note": note})  # fmt: skip
    return out


def verify_environment(
    artifact_dir: Path,
    *,
    lock_path: Path | None = None,
    cache: Path | None = None,
    trusted: bool = False,
    keep_venv: Path | None = None,
) -> EnvReport:
    """Build a fresh venv from the lock, replay the parity sample there, and compare with this environment."""
    from parity.artifact import load_artifact

    started = time.perf_counter()
    manifest = verify_artifact_dir(artifact_dir)
    cache = cache or default_wheel_cache()
    with tempfile.TemporaryDirectory(prefix="parity-env-") as tmp_name:
        tmp = Path(tmp_name)
        if lock_path is None:
            here = _platform.python_version()
            arch = "linux/arm64" if _platform.machine().lower() in ("aarch64", "arm64") else "linux/amd64"
            lock_path = build_context(artifact_dir, tmp / "context", python=here, platform=arch).directory
            lock_path = lock_path / "requirements.lock"
        lock = read_lock(lock_path)
        _check_target(lock)
        for pkg in lock.packages:
            if pkg.path is not None and not (lock_path.parent / pkg.path).is_file():
                raise DeployError(f"{lock_path}: wheel {pkg.path!r} is missing next to the lock")
        downloaded = _fill_cache(lock, lock_path, cache)
        venv = keep_venv or tmp / "venv"
        if venv.exists():
            shutil.rmtree(venv)
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], "creating the virtualenv")
        py = venv / "bin" / "python"
        _run(
            [sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--no-compile", "--no-index",
             "--find-links", str(cache), "--no-deps", "--require-hashes", "--only-binary=:all:",
             "-r", str(lock_path.resolve())],
            "installing the lock into a fresh virtualenv",
            cwd=lock_path.parent,
        )  # fmt: skip
        out_file = tmp / "outputs.parquet"
        stdout = _run(
            [str(py), "-I", "-c", _PROBE, str(artifact_dir.resolve()), str(out_file), "1" if trusted else "0"],
            "replaying the parity sample in the fresh virtualenv",
        )
        result = json.loads(stdout.strip().splitlines()[-1])
        venv_outputs = pd.read_parquet(out_file)
    host = load_artifact(artifact_dir, trusted=trusted)
    frame, _ = host.parity_sample()
    identical = _equal(host.predict(frame).reset_index(drop=True), venv_outputs)
    venv_packages = {canonical(k): v for k, v in result["packages"].items()}
    trained = dict(manifest.get("environment", {}).get("packages") or {})
    report = EnvReport(
        passed=bool(result["passed"]) and identical,
        identical=identical,
        parity_passed=bool(result["passed"]),
        lock=str(lock_path) if keep_venv or lock_path.exists() else "(generated)",
        venv_packages=dict(sorted(venv_packages.items())),
        differences=_differences(trained, venv_packages, bool(manifest.get("portable", True))),
        parity=result["report"],
        seconds=time.perf_counter() - started,
        downloaded=downloaded,
    )
    return report
