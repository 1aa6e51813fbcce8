"""A registry whose index or history was damaged (by hand, a bad disk, an older parity): clear errors, or the
history an older index implies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parity._io import canonical_json
from parity.errors import RegistryError
from parity.registry import Registry
from tests.registry.test_registry import make_artifact


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "home")
    for i in (1, 2):
        registry.push(make_artifact(tmp_path / str(i), files={"m": bytes([i])}))
    return registry


def model_dir(reg: Registry) -> Path:
    return Path(reg.root) / "registry" / "models" / "churn"


def test_repr_names_the_storage(reg: Registry) -> None:
    assert repr(reg).startswith("Registry(storage=") and "registry" in repr(reg)


def test_an_index_that_is_not_json_or_of_another_format(reg: Registry) -> None:
    index = model_dir(reg) / "index.json"
    good = index.read_bytes()
    index.write_bytes(b"{torn")
    with pytest.raises(RegistryError, match="index of model 'churn' is not valid JSON"):
        reg.versions("churn")
    index.write_bytes(canonical_json({**json.loads(good), "format": "parity.index/99"}))
    with pytest.raises(RegistryError, match="index of model 'churn' has an unknown format; upgrade parity"):
        reg.set_alias("churn", "production", 1)
    index.write_bytes(good)
    assert [v.version for v in reg.versions("churn")] == [1, 2]


def test_a_corrupt_history_line_before_the_last_is_an_error(reg: Registry) -> None:
    reg.set_alias("churn", "production", 1)
    reg.set_alias("churn", "production", 2)
    history = model_dir(reg) / "history.jsonl"
    lines = history.read_bytes().splitlines(keepends=True)
    history.write_bytes(b"not json\n" + b"\n" + lines[1])  # a blank line is skipped, a bad one is not
    with pytest.raises(RegistryError, match="history of model 'churn' is corrupt at line 1"):
        reg.history("churn")


def test_an_index_written_before_changes_were_counted(reg: Registry) -> None:
    """Older parity appended the history line first: a last line the index does not show was never applied."""
    reg.set_alias("churn", "production", 1)
    reg.set_alias("churn", "staging", 2)
    reg.delete_alias("churn", "staging")
    index_path = model_dir(reg) / "index.json"
    index = json.loads(index_path.read_bytes())
    old = {k: v for k, v in index.items() if k not in ("changes", "last_change")}
    index_path.write_bytes(canonical_json(old))
    assert [(h.alias, h.new_version) for h in reg.history("churn")] == [
        ("production", 1),
        ("staging", 2),
        ("staging", None),
    ]
    # A crash between the history append and the index write: the index still says staging -> 2.
    index_path.write_bytes(canonical_json({**old, "aliases": {"production": 1, "staging": 2}}))
    assert [(h.alias, h.new_version) for h in reg.history("churn")] == [("production", 1), ("staging", 2)]


def test_set_alias_needs_an_integer_version(reg: Registry) -> None:
    for bad in ("1", True, 1.0):
        with pytest.raises(RegistryError, match="version must be an int, got"):
            reg.set_alias("churn", "production", bad)  # type: ignore[arg-type]
    assert reg.aliases("churn") == {}
