"""One owner of the artifact format; loading hashes each file once; the digest covers every claim of a manifest."""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import parity
from parity._format import MANIFEST, VOLATILE_FIELDS, manifest_digest, read_dir
from parity._io import canonical_json
from parity.cli import app
from parity.cli._context import load_verified
from parity.errors import IntegrityError
from parity.registry import Registry
from tests.fixtures import pipeline, raw_frame, targets

SRC = Path(parity.__file__).parent


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = raw_frame(300)
    model = pipeline(LogisticRegression(max_iter=500)).fit(frame, targets(frame, "binary"))
    path = tmp_path_factory.mktemp("fmt") / "churn"
    parity.package(model, frame, name="churn", metrics={"auc": 0.81}, tags={"team": "risk"}).save(path)
    return path


class _CountingSha256:
    """Stands in for hashlib.sha256 and records how many bytes each hash object consumed."""

    seen: list[_CountingSha256] = []  # noqa: RUF012 (reset per test)
    _real = hashlib.sha256

    def __init__(self, data: bytes = b"", **kwargs: Any) -> None:
        self._hash = self._real(data, **kwargs)
        self.size = len(data)
        self.seen.append(self)

    def update(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def digest(self) -> bytes:
        return self._hash.digest()


@pytest.fixture
def count_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], int]]:
    _CountingSha256.seen = []
    monkeypatch.setattr(hashlib, "sha256", _CountingSha256)
    yield lambda size: sum(1 for h in _CountingSha256.seen if h.size == size)


def test_cli_load_hashes_each_file_once(
    artifact_dir: Path, tmp_path: Path, count_hashing: Callable[[int], int]
) -> None:
    registry = Registry(tmp_path / "home")
    version = registry.push(artifact_dir)
    onnx_size = (version.path / "model.onnx").stat().st_size
    _CountingSha256.seen.clear()
    artifact = load_verified("churn:1", registry, trusted=False)
    assert artifact.version == 1
    assert count_hashing(onnx_size) == 1
    _CountingSha256.seen.clear()
    result = CliRunner().invoke(app, ["--registry", str(tmp_path / "home"), "verify", "churn"])
    assert result.exit_code == 0, result.output
    assert count_hashing(onnx_size) == 1


def _edit_nullable(m: dict[str, Any]) -> None:
    column = m["signature"]["inputs"][0]
    column["nullable"] = not column["nullable"]


def _edit_metrics(m: dict[str, Any]) -> None:
    m["metrics"]["auc"] = 0.99


def _edit_lineage(m: dict[str, Any]) -> None:
    m["lineage"]["tags"]["team"] = "someone-else"


def _edit_parity(m: dict[str, Any]) -> None:
    m["parity"]["passed"] = not m["parity"]["passed"]


@pytest.mark.parametrize("edit", [_edit_nullable, _edit_metrics, _edit_lineage, _edit_parity])
def test_editing_a_registered_manifest_is_detected(
    artifact_dir: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None]
) -> None:
    home = tmp_path / "home"
    version = Registry(home).push(artifact_dir)
    path = version.path / MANIFEST
    manifest = json.loads(path.read_bytes())
    edit(manifest)
    path.chmod(0o644)
    path.write_bytes(canonical_json(manifest))
    registry = Registry(home)
    with pytest.raises(IntegrityError, match=r"manifest\.json of churn:1 was modified"):
        registry.load("churn")
    with pytest.raises(IntegrityError):
        registry.verify("churn:1")
    for command in ("verify", "inspect"):
        result = CliRunner().invoke(app, ["--registry", str(home), command, "churn"])
        assert result.exit_code == 6, result.output
        assert "was modified" in result.stderr


def test_volatile_fields_are_documented_and_left_out(artifact_dir: Path) -> None:
    manifest, _ = read_dir(artifact_dir)
    assert {"created"} == VOLATILE_FIELDS
    assert manifest_digest({**manifest, "created": "2000-01-01T00:00:00+00:00"}) == manifest_digest(manifest)
    for key in set(manifest) - VOLATILE_FIELDS - {"name", "files"}:
        changed = {**manifest, key: "tampered"}
        assert manifest_digest(changed) != manifest_digest(manifest), key


def test_format_constants_have_one_owner() -> None:
    owners: dict[str, set[str]] = {"manifest.json": set(), "profile.json": set(), "parity.reference/1": set()}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in owners:
                owners[node.value].add(path.relative_to(SRC).as_posix())
    assert owners == {k: {"_format.py"} for k in owners}


def _edges() -> dict[str, set[str]]:
    """Imports between parity's top-level modules/packages, lazy ones included."""
    edges: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        unit = rel.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "parity" and len(parts) > 1 and parts[1] != unit:
                    edges.setdefault(unit, set()).add(parts[1])
    return edges


def test_artifact_does_not_import_the_registry() -> None:
    edges = _edges()
    assert "registry" not in edges.get("artifact", set())
    assert "artifact" not in edges.get("_format", set()) and "registry" not in edges.get("_format", set())
