"""Environment lock and lineage recorded in a manifest: what produced this artifact, and where."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["environment", "lineage", "model_packages"]

# Packages whose exact versions matter for reproducing or serving a model.
_ALWAYS = ("parity", "numpy", "pandas", "scikit-learn", "onnx", "onnxruntime", "pyarrow")
_BY_MODULE = {"xgboost": ("xgboost", "xgboost-cpu"), "lightgbm": ("lightgbm",), "skops": ("skops",)}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def model_packages(model: Any) -> list[str]:
    """Distributions a model object needs beyond the defaults, found from its classes' modules."""
    seen: set[str] = set()
    stack = [model]
    while stack:
        obj = stack.pop()
        root = type(obj).__module__.split(".")[0]
        for dist in _BY_MODULE.get(root, ()):
            seen.add(dist)
        for attr in ("steps", "transformers_", "transformers"):
            for item in getattr(obj, attr, None) or []:
                if isinstance(item, tuple) and len(item) >= 2:
                    stack.append(item[1])
    return sorted(seen)


def environment(extra: list[str] | None = None) -> dict[str, Any]:
    """Python version, platform and exact versions of the packages the model needs."""
    names = list(_ALWAYS) + list(extra or [])
    packages = {name: v for name in names if (v := _version(name)) is not None}
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "packages": dict(sorted(packages.items())),
    }


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def lineage(cwd: Path | None = None, tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Git commit and dirty flag of the working tree packaging happens in, plus user tags."""
    where = cwd or Path.cwd()
    commit = _git(["rev-parse", "HEAD"], where)
    info: dict[str, Any] = {"git_commit": commit, "git_dirty": None, "tags": dict(tags or {})}
    if commit:
        # Untracked files count: a new, uncommitted module the model imports is not in the commit either.
        status = _git(["status", "--porcelain", "--untracked-files=normal"], where)
        info["git_dirty"] = bool(status)
    return info
