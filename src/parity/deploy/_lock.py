"""The runtime lock of an artifact: which distributions its image needs, pinned with sha256 hashes.

A portable artifact runs on onnxruntime: its lock is parity's own runtime requirements (the
``serve`` extra when the installed parity declares one) minus the training-only libraries
(scikit-learn, skl2onnx, skops, XGBoost, LightGBM), with every package the manifest recorded
(numpy, onnxruntime, pandas, pyarrow...) pinned to the training version. A non-portable artifact
runs its Python model, so every package of the training environment is pinned exactly.

The closure is resolved by pip itself (``pip install --dry-run --report``) for the image's Python
and platform, binary wheels only; parity is added as a wheel built from the installed source, with
its hash, so the lock is complete and ``pip install --no-deps --require-hashes`` installs it.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from parity._io import sha256_file
from parity.deploy._errors import DeployError
from parity.errors import MissingDependencyError

__all__ = [
    "NUMERIC_PACKAGES",
    "TRAINING_ONLY",
    "Lock",
    "LockedPackage",
    "build_parity_wheel",
    "lock_for",
    "read_lock",
    "runtime_requirements",
]

TRAINING_ONLY = frozenset({"scikit-learn", "skl2onnx", "skops", "xgboost", "xgboost-cpu", "lightgbm"})
"""Distributions a portable artifact does not need at serving time."""
NUMERIC_PACKAGES = frozenset({"onnxruntime", "numpy", "scikit-learn", "xgboost", "xgboost-cpu", "lightgbm"})
"""Distributions whose version can change a model's numbers (the runtime and the estimator libraries)."""
PLATFORMS: Mapping[str, tuple[str, ...]] = {
    "linux/amd64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64"),
    "linux/arm64": ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64"),
}
WHEEL_DIR = "wheels"
_PIP_TIMEOUT_S = 900


def _packaging(module: str) -> Any:
    """A ``packaging`` submodule, or a clear error naming the extra that brings it."""
    try:
        return importlib.import_module(f"packaging.{module}")
    except ImportError as exc:  # pragma: no cover - packaging comes with the deploy extra
        raise MissingDependencyError("parity build needs packaging: pip install 'parity[deploy]'") from exc


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name (``packaging.utils.canonicalize_name``)."""
    return str(_packaging("utils").canonicalize_name(name))


def _wheel_name(filename: str) -> tuple[str, str] | None:
    """``(canonical name, version)`` of a wheel file name, or None if it is not one."""
    utils = _packaging("utils")
    try:
        name, version, _, _ = utils.parse_wheel_filename(filename)
    except utils.InvalidWheelFilename:
        return None
    return str(name), str(version)


@dataclass(frozen=True)
class LockedPackage:
    """One pinned distribution: ``name==version`` with its hash, or a local wheel path with its hash."""

    name: str
    version: str
    sha256: str
    path: str | None = None
    """Wheel path relative to the lock file (parity itself); None for an index package."""

    def line(self) -> str:
        """The requirements-file entry."""
        head = self.path if self.path is not None else f"{self.name}=={self.version}"
        return f"{head} \\\n    --hash=sha256:{self.sha256}"


@dataclass
class Lock:
    """A complete, hash-pinned runtime environment for one Python version and platform."""

    python: str
    platform: str
    packages: list[LockedPackage] = field(default_factory=list)

    def versions(self) -> dict[str, str]:
        """``{canonical name: version}`` of every locked distribution."""
        return {canonical(p.name): p.version for p in self.packages}

    def render(self) -> str:
        """The ``requirements.lock`` text (pip's hash-checking format)."""
        head = (
            f"# parity runtime lock: CPython {self.python}, {self.platform}. Written by `parity build`.\n"
            "# Install with: pip install --no-deps --require-hashes --only-binary=:all: -r requirements.lock\n"
            f"# python={self.python} platform={self.platform}\n"
        )
        body = "\n".join(p.line() for p in sorted(self.packages, key=lambda p: canonical(p.name)))
        return head + body + "\n"


def read_lock(path: Path) -> Lock:
    """Parse a lock written by :meth:`Lock.render` (the wheel paths stay relative to the file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeployError(f"cannot read the lock {str(path)!r}: {exc}") from exc
    header = re.search(r"^# python=(\S+) platform=(\S+)$", text, re.MULTILINE)
    if header is None:
        raise DeployError(f"{path} is not a parity requirements.lock (no '# python=... platform=...' line)")
    lock = Lock(python=header.group(1), platform=header.group(2))
    joined = re.sub(r"\\\n\s*", " ", text)
    for number, raw in enumerate(joined.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"(\S+)\s+--hash=sha256:([0-9a-f]{64})", line)
        if match is None:
            raise DeployError(f"{path}: entry {number} must pin NAME==VERSION with one sha256 hash, got {line!r}")
        head, digest = match.groups()
        if "==" in head:
            name, version = head.split("==", 1)
            lock.packages.append(LockedPackage(name, version, digest))
        else:
            wheel = _wheel_name(Path(head).name)
            if wheel is None:
                raise DeployError(f"{path}: entry {number} must be NAME==VERSION or a wheel file, got {head!r}")
            lock.packages.append(LockedPackage(wheel[0], wheel[1], digest, path=head))
    return lock


def _requirement(text: str) -> Any:
    return _packaging("requirements").Requirement(text)


def _applies(req: Any, extras: set[str]) -> bool:
    """Whether a requirement's marker holds for the base install or one of ``extras``."""
    return any(req.marker.evaluate({"extra": e}) for e in (extras or {""}))


def _trained(manifests: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``{package: version}`` the artifacts were trained with; two artifacts pinning one package differently fail."""
    out: dict[str, str] = {}
    for manifest in manifests:
        for key, value in (manifest.get("environment", {}).get("packages") or {}).items():
            name, version = canonical(key), str(value)
            if name != "parity" and out.setdefault(name, version) != version:
                raise DeployError(
                    f"the in-process artifacts need two versions of {name} ({out[name]} and {version} for "
                    f"{manifest.get('name')!r}); one image holds one: retrain them in one environment"
                )
    return out


def runtime_requirements(
    manifest: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, extra: str = "serve"
) -> list[str]:
    """Requirement strings of the runtime of one or more artifacts under parity's ``extra``, training versions pinned.

    A model image uses the ``serve`` extra and one manifest; a composition image the ``compose``
    extra and the manifests of its in-process artifacts (none: parity's own requirements only).
    """
    manifests = [manifest] if isinstance(manifest, Mapping) else list(manifest)
    portable = all(bool(m.get("portable", True)) for m in manifests)
    trained = _trained(manifests)
    declared = set(metadata.metadata("parity").get_all("Provides-Extra") or [])
    requires = [_requirement(text) for text in metadata.requires("parity") or []]
    # The extra, plus every extra it pulls in through a self-reference such as "parity[cli]".
    wanted = {extra} & declared
    while True:
        more = {
            extra
            for req in requires
            if canonical(req.name) == "parity" and (req.marker is None or _applies(req, wanted))
            for extra in req.extras
        } - wanted
        if not more:
            break
        wanted |= more
    out: dict[str, str] = {}
    for req in requires:
        name = canonical(req.name)
        if name == "parity" or (req.marker is not None and not _applies(req, wanted)):
            continue
        if portable and name in TRAINING_ONLY:
            continue
        extra = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        out[name] = f"{req.name}{extra}=={trained[name]}" if name in trained else f"{req.name}{extra}{req.specifier}"
    for name, version in trained.items():
        if name not in out and (not portable or name not in TRAINING_ONLY):
            out[name] = f"{name}=={version}"
    return [out[k] for k in sorted(out)]


def _pip(args: Sequence[str], what: str) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, env=env
        )
    except subprocess.TimeoutExpired as exc:
        raise DeployError(f"{what}: pip did not finish within {_PIP_TIMEOUT_S} s") from exc
    if proc.returncode != 0:
        tail = "\n".join(line for line in proc.stderr.splitlines() if "is ignored" not in line)[-2000:]
        raise DeployError(f"{what} failed (pip exit {proc.returncode}):\n{tail}")


def _source_root() -> Path | None:
    """The source tree of an editable / directory install of parity, if that is how it is installed."""
    try:
        text = metadata.distribution("parity").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    info = json.loads(text)
    url = urlparse(str(info.get("url", "")))
    if url.scheme != "file" or "dir_info" not in info:
        return None
    root = Path(unquote(url.path))
    return root if (root / "pyproject.toml").is_file() else None


def build_parity_wheel(dest: Path, wheel: Path | None = None) -> Path:
    """Copy ``wheel`` or build parity's wheel from its source tree into ``dest`` (reproducibly)."""
    dest.mkdir(parents=True, exist_ok=True)
    if wheel is not None:
        if not wheel.is_file() or (_wheel_name(wheel.name) or ("",))[0] != "parity":
            raise DeployError(f"wheel must be an existing parity-*.whl file, got {str(wheel)!r}", param="wheel")
        return Path(shutil.copy2(wheel, dest / wheel.name))
    root = _source_root()
    if root is None:
        raise DeployError(
            "parity is not installed from a source tree, so its wheel cannot be rebuilt: pass wheel= "
            "(the parity wheel to put in the image)",
            param="wheel",
        )
    with tempfile.TemporaryDirectory() as tmp:
        # A fixed timestamp makes the wheel (and so its hash in the lock) identical on every build.
        os.environ.setdefault("SOURCE_DATE_EPOCH", "315532800")
        _pip(["wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp, str(root)], "building parity's wheel")
        built = sorted(Path(tmp).glob("parity-*.whl"))
        if not built:
            raise DeployError(f"building parity's wheel from {root} produced no parity-*.whl")
        return Path(shutil.copy2(built[0], dest / built[0].name))


def _hash_of(item: Mapping[str, Any]) -> str:
    info = item.get("download_info", {})
    digest = (info.get("archive_info") or {}).get("hashes", {}).get("sha256")
    if digest:
        return str(digest)
    url = urlparse(str(info.get("url", "")))
    if url.scheme == "file":
        return sha256_file(unquote(url.path))
    raise DeployError(f"pip reported no sha256 for {item['metadata']['name']} ({info.get('url')})")


def lock_for(
    manifest: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    wheel: Path,
    *,
    python: str,
    platform: str,
    wheel_path: str,
    extra: str = "serve",
) -> Lock:
    """Resolve the runtime closure (see :func:`runtime_requirements`) for CPython ``python`` on ``platform``, hashed."""
    if platform not in PLATFORMS:
        raise DeployError(f"platform must be one of {', '.join(PLATFORMS)}, got {platform!r}")
    if not re.fullmatch(r"3\.\d+(\.\d+)?", python):
        raise DeployError(f"python version must look like 3.11 or 3.11.7, got {python!r}")
    major_minor = ".".join(python.split(".")[:2])
    requirements = runtime_requirements(manifest, extra=extra)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        args = ["install", "--quiet", "--dry-run", "--ignore-installed", "--report", str(report)]
        args += ["--only-binary=:all:", "--python-version", major_minor, "--implementation", "cp"]
        args += ["--abi", f"cp{major_minor.replace('.', '')}"]
        for tag in PLATFORMS[platform]:
            args += ["--platform", tag]
        _pip([*args, *requirements], "resolving the runtime lock")
        items = json.loads(report.read_text())["install"]
    lock = Lock(python=python, platform=platform)
    for item in items:
        meta = item["metadata"]
        lock.packages.append(LockedPackage(meta["name"], meta["version"], _hash_of(item)))
    version = wheel.name.split("-")[1]
    lock.packages.append(LockedPackage("parity", version, sha256_file(wheel), path=wheel_path))
    return lock
