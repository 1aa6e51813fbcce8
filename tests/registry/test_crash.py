"""Crash consistency of the registry: a real process killed (``os._exit``, no cleanup runs) at each step of a
push and an alias change; the next write cleans the debris, the index stays the truth, ``fsck`` repairs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parity.cli import app
from parity.registry import Registry
from tests.registry.test_registry import age, make_artifact

# A registry whose storage dies at one step, as kill -9 would: no finally block, no atexit.
_CRASHER = """
import os, sys, tempfile
from parity.registry import LocalStorage, Registry

home, step, action = sys.argv[1:4]


class Crashing(LocalStorage):
    def put_dir(self, local_dir, key_prefix, files):
        files = sorted(files)
        if step == "mid_copy":
            super().put_dir(local_dir, key_prefix, files[:1])
            os._exit(137)
        super().put_dir(local_dir, key_prefix, files)
        if step == "after_copy":
            os._exit(137)

    def move(self, src, dst):
        super().move(src, dst)
        if step == "after_rename":
            os._exit(137)

    def write_bytes_atomic(self, key, data):
        if step == "mid_index_write" and key.endswith("index.json"):
            path = self._path(key)
            fd, _ = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.write(fd, data[: len(data) // 2])
            os._exit(137)
        super().write_bytes_atomic(key, data)
        if step == "after_index_write" and key.endswith("index.json"):
            os._exit(137)

    def append_bytes(self, key, data):
        if step == "mid_history_append":
            super().append_bytes(key, data[: len(data) // 2])
            os._exit(137)
        super().append_bytes(key, data)


registry = Registry(storage=Crashing(os.path.join(home, "registry")))
if action.startswith("push="):
    registry.push(action[5:])
else:
    alias, version = action.split("=")
    registry.set_alias("churn", alias, int(version))
os._exit(0)
"""


def crash(home: Path, step: str, action: str) -> None:
    """Run one registry write in a child process that dies at ``step``."""
    proc = subprocess.run(
        [sys.executable, "-c", _CRASHER, str(home), step, action], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 137, proc.stderr


def seeded(tmp_path: Path) -> tuple[Path, Registry]:
    """A registry with versions 1 and 2 of churn and production -> 1."""
    home = tmp_path / "home"
    registry = Registry(home)
    for i in (1, 2):
        registry.push(make_artifact(tmp_path / f"v{i}", files={"m": bytes([i])}))
    registry.set_alias("churn", "production", 1)
    return home, registry


def model_dir(home: Path) -> Path:
    return home / "registry" / "models" / "churn"


@pytest.mark.parametrize("step", ["mid_copy", "after_copy"])
def test_push_killed_while_staging_is_cleaned_by_the_next_push_once_stale(tmp_path: Path, step: str) -> None:
    home = tmp_path / "home"
    registry = Registry(home)
    registry.push(make_artifact(tmp_path / "v1", files={"m": b"1"}))
    crash(home, step, f"push={make_artifact(tmp_path / 'v2', files={'m': b'2'})}")
    (dead,) = (model_dir(home) / ".staging").iterdir()
    assert [v.version for v in registry.versions("churn")] == [1]  # the index never saw it

    # A young staging folder may be a live push on another machine: kept.
    registry.push(make_artifact(tmp_path / "v3", files={"m": b"3"}))
    assert dead.exists()
    age(dead, 2 * 3600)
    registry.push(make_artifact(tmp_path / "v4", files={"m": b"4"}))
    assert not dead.exists()
    assert list((model_dir(home) / ".staging").iterdir()) == []
    assert [v.version for v in registry.versions("churn")] == [1, 2, 3]


@pytest.mark.parametrize("step", ["after_rename", "mid_index_write"])
def test_push_killed_before_the_index_write_leaves_nothing_registered(tmp_path: Path, step: str) -> None:
    home = tmp_path / "home"
    registry = Registry(home)
    registry.push(make_artifact(tmp_path / "v1", files={"m": b"1"}))
    crash(home, step, f"push={make_artifact(tmp_path / 'v2', files={'m': b'2'})}")
    assert (model_dir(home) / "versions" / "2").is_dir()  # renamed, but never acknowledged
    assert [v.version for v in registry.versions("churn")] == [1]
    kinds = {p.kind for p in registry.fsck()}
    assert "orphan_version" in kinds
    assert ("temp_file" in kinds) == (step == "mid_index_write")

    v = registry.push(make_artifact(tmp_path / "v2b", files={"m": b"2"}))
    assert v.version == 2 and registry.get("churn:2").digest == v.digest
    registry.verify("churn:2")
    assert not [p for p in model_dir(home).iterdir() if p.name.endswith(".tmp")]
    assert registry.fsck() == []


def test_alias_change_killed_before_the_index_write_is_not_in_history(tmp_path: Path) -> None:
    home, registry = seeded(tmp_path)
    crash(home, "mid_index_write", "production=2")
    assert registry.aliases("churn") == {"production": 1}
    # History never claims a change the index does not have (it was appended first before).
    assert [(c.alias, c.new_version) for c in registry.history("churn")] == [("production", 1)]
    raw = (model_dir(home) / "history.jsonl").read_text().splitlines()
    assert len(raw) == 1


@pytest.mark.parametrize("step", ["after_index_write", "mid_history_append"])
def test_alias_change_killed_after_the_index_write_is_derived_and_repaired(tmp_path: Path, step: str) -> None:
    home, registry = seeded(tmp_path)
    crash(home, step, "production=2")
    assert registry.aliases("churn") == {"production": 2}
    expected = [("production", None, 1), ("production", 1, 2)]
    assert [(c.alias, c.old_version, c.new_version) for c in registry.history("churn")] == expected
    assert [p.kind for p in registry.fsck()] == ["history"]
    assert [p.kind for p in registry.fsck(repair=True)] == ["history"]
    crash(home, step, "production=1")  # again, now repaired by the next write instead

    # The next write first makes the file match the index, so no torn line ends up mid-file.
    registry.set_alias("churn", "staging", 1)
    lines = [json.loads(line) for line in (model_dir(home) / "history.jsonl").read_text().splitlines()]
    expected += [("production", 2, 1), ("staging", None, 1)]
    assert [(e["alias"], e["old_version"], e["new_version"]) for e in lines] == expected
    assert len(Registry(home).history("churn")) == 4
    assert registry.fsck() == []


def test_fsck_command_reports_then_repairs(tmp_path: Path) -> None:
    home, registry = seeded(tmp_path)
    crash(home, "mid_history_append", "production=2")
    crash(home, "after_rename", f"push={make_artifact(tmp_path / 'v4', files={'m': b'4'})}")
    crash(home, "mid_copy", f"push={make_artifact(tmp_path / 'v3', files={'m': b'3'})}")
    age(next((model_dir(home) / ".staging").iterdir()), 2 * 3600)
    # The first push of a new model died: a model folder with only a staging copy and no index.
    crash(home, "mid_copy", f"push={make_artifact(tmp_path / 'n1', name='newmodel')}")
    age(home / "registry" / "models" / "newmodel", 2 * 3600)

    def fsck(*args: str) -> tuple[int, list[dict[str, object]]]:
        result = CliRunner().invoke(app, ["--registry", str(home), "registry", "fsck", "--json", *args])
        return result.exit_code, json.loads(result.stdout)

    code, found = fsck()
    assert code == 8, found
    assert sorted((p["model"], p["kind"]) for p in found) == [
        ("churn", "history"),
        ("churn", "orphan_version"),
        ("churn", "stale_staging"),
        ("newmodel", "no_index"),
        ("newmodel", "stale_staging"),
    ]
    assert not any(p["repaired"] for p in found)
    code, fixed = fsck("--repair")
    assert code == 0 and all(p["repaired"] for p in fixed) and len(fixed) == len(found)
    assert fsck() == (0, [])
    assert not (home / "registry" / "models" / "newmodel").exists()
    assert registry.aliases("churn") == {"production": 2}
    assert [v.version for v in registry.versions("churn")] == [1, 2]
    assert len(registry.history("churn")) == 2
