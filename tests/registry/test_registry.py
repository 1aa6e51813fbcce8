"""Tests of parity.registry on hand-made artifact directories (no dependency on parity.artifact)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity._io import canonical_json, sha256_bytes
from parity.errors import ArtifactError, IntegrityError, NotFoundError, ParityMismatchError, RegistryError
from parity.registry import (
    AliasChange,
    LocalStorage,
    ModelSummary,
    ModelVersion,
    Ref,
    Registry,
    artifact_digest,
    parse_ref,
    verify_artifact_dir,
)


def make_artifact(directory: Path, name: str = "churn", files: dict[str, bytes] | None = None, **extra: Any) -> Path:
    """Write ``files`` and a manifest listing them into ``directory``; return it."""
    files = {"model.onnx": b"onnx-bytes", "sub/schema.json": b"{}"} if files is None else files
    entries = {}
    for rel, data in files.items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        entries[rel] = {"sha256": sha256_bytes(data), "size": len(data)}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_bytes(canonical_json({"name": name, "files": entries, **extra}))
    return directory


def rewrite(path: Path, data: bytes) -> None:
    """Overwrite a (read-only) stored file, as an attacker or a bad disk would."""
    path.chmod(0o644)
    path.write_bytes(data)


def age(path: Path, seconds: float) -> None:
    """Make a folder look untouched for ``seconds`` (what a crashed push's staging looks like later)."""
    past = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (past, past), follow_symlinks=False)


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "home")


def _utc(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    return parsed


# --------------------------------------------------------------------------- push


def test_push_returns_version_with_all_fields(reg: Registry, tmp_path: Path) -> None:
    src = make_artifact(tmp_path / "a")
    manifest = json.loads((src / "manifest.json").read_bytes())

    v = reg.push(src)

    assert isinstance(v, ModelVersion)
    assert (v.name, v.version, v.aliases) == ("churn", 1, ())
    assert v.digest == artifact_digest(manifest)
    _utc(v.created)
    assert v.path == tmp_path / "home" / "registry" / "models" / "churn" / "versions" / "1"
    assert (v.path / "model.onnx").read_bytes() == b"onnx-bytes"
    assert (v.path / "sub" / "schema.json").read_bytes() == b"{}"
    assert (v.path / "model.onnx").stat().st_mode & 0o777 == 0o444
    assert str(v) == "churn:1"
    with pytest.raises(AttributeError):
        v.version = 2  # type: ignore[misc]
    index = json.loads((v.path.parent.parent / "index.json").read_bytes())
    assert index["versions"] == [{"version": 1, "digest": v.digest, "digest_scheme": 2, "created": v.created}]
    assert index["aliases"] == {}


def test_push_numbers_versions_and_deduplicates(reg: Registry, tmp_path: Path) -> None:
    a = make_artifact(tmp_path / "a", files={"m.bin": b"1"})
    b = make_artifact(tmp_path / "b", files={"m.bin": b"2"})
    # Same files, only a volatile field (created) differs: same digest by definition.
    a_again = make_artifact(tmp_path / "a2", files={"m.bin": b"1"}, created="2030-01-01")

    v1, v2, v1_again, v1_meta = reg.push(a), reg.push(b), reg.push(a), reg.push(a_again)

    assert (v1.version, v2.version) == (1, 2)
    assert v1_again == v1 and v1_meta == v1
    assert [v.version for v in reg.versions("churn")] == [1, 2]
    assert not any((tmp_path / "home/registry/models/churn/.staging").iterdir())


def test_push_same_files_other_name_is_another_model(reg: Registry, tmp_path: Path) -> None:
    reg.push(make_artifact(tmp_path / "a", name="churn"))
    other = reg.push(make_artifact(tmp_path / "b", name="fraud"))
    assert (other.name, other.version) == ("fraud", 1)
    assert [s.name for s in reg.list()] == ["churn", "fraud"]


def test_push_accepts_object_with_save_and_manifest(reg: Registry, tmp_path: Path) -> None:
    class FakeArtifact:
        manifest: ClassVar[dict[str, str]] = {"name": "obj"}

        def save(self, path: Path) -> Path:
            return make_artifact(Path(path), name="obj", files={"w.bin": b"w"})

    v = reg.push(FakeArtifact())
    assert (v.name, v.version) == ("obj", 1)
    assert (v.path / "w.bin").read_bytes() == b"w"
    with pytest.raises(RegistryError, match="takes a path"):
        reg.push(42)  # type: ignore[arg-type]


def test_push_rejects_tampered_source_and_registers_nothing(reg: Registry, tmp_path: Path) -> None:
    src = make_artifact(tmp_path / "a")
    (src / "model.onnx").write_bytes(b"evil")
    with pytest.raises(IntegrityError, match=r"'model\.onnx'.*expected [0-9a-f]{64}, actual [0-9a-f]{64}"):
        reg.push(src)
    assert reg.list() == []
    assert not (tmp_path / "home/registry/models/churn").exists()


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda d: (d / "extra.txt").write_bytes(b"x"), IntegrityError, "'extra.txt'.*not listed"),
        (lambda d: (d / "model.onnx").unlink(), IntegrityError, "'model.onnx'.*missing"),
        (lambda d: (d / "manifest.json").write_text("{not json"), ArtifactError, "cannot read"),
        (lambda d: (d / "manifest.json").unlink(), ArtifactError, "no manifest.json"),
    ],
)
def test_push_rejects_malformed_directories(
    reg: Registry, tmp_path: Path, mutate: Any, error: type[Exception], match: str
) -> None:
    src = make_artifact(tmp_path / "a")
    mutate(src)
    with pytest.raises(error, match=match):
        reg.push(src)


def test_push_rejects_escaping_paths_and_bad_names(reg: Registry, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    entry = {"sha256": "0" * 64, "size": 1}
    (bad / "manifest.json").write_bytes(canonical_json({"name": "x", "files": {"../outside": entry}}))
    with pytest.raises(ArtifactError, match="invalid file path"):
        reg.push(bad)
    with pytest.raises(RegistryError, match="invalid model name 'bad name'"):
        reg.push(make_artifact(tmp_path / "n", name="bad name"))


def test_orphan_version_folder_is_replaced(reg: Registry, tmp_path: Path) -> None:
    # A crash between the rename and the index write leaves versions/2 without an index entry: debris.
    v1 = reg.push(make_artifact(tmp_path / "a", files={"m": b"1"}))
    (v1.path.parent / "2").mkdir()
    (v1.path.parent / "2" / "junk").write_bytes(b"x")
    v = reg.push(make_artifact(tmp_path / "b", files={"m": b"2"}))
    assert v.version == 2 and not (v.path / "junk").exists()
    reg.verify("churn:2")


# --------------------------------------------------------------------------- read


def test_list_versions_get(reg: Registry, tmp_path: Path) -> None:
    v1 = reg.push(make_artifact(tmp_path / "a", files={"m": b"1"}))
    v2 = reg.push(make_artifact(tmp_path / "b", files={"m": b"2"}))
    reg.set_alias("churn", "production", 1)

    [summary] = reg.list()
    assert summary == ModelSummary(name="churn", latest=2, aliases={"production": 1}, created=v1.created)
    assert reg.get("churn") == v2
    assert reg.get("churn:1").aliases == ("production",)
    assert reg.get("churn@production").version == 1
    assert reg.get(Ref(kind="version", name="churn", version=2)) == v2
    assert reg.path("churn:2") == v2.path
    assert [v.version for v in reg.versions("churn")] == [1, 2]


def test_get_by_path_maps_content_to_registered_version(reg: Registry, tmp_path: Path) -> None:
    src = make_artifact(tmp_path / "a")
    v = reg.push(src)
    assert reg.get(src) == v
    assert reg.get(str(src)) == v
    assert reg.get(v.path) == v
    assert reg.path(src) == src
    other = make_artifact(tmp_path / "b", files={"m": b"new"})
    with pytest.raises(NotFoundError, match=r"matches none of its versions \(1\); push it first"):
        reg.get(other)
    with pytest.raises(ArtifactError, match=r"no manifest\.json"):
        reg.path(tmp_path / "nothing")


def test_not_found_messages_list_what_exists(reg: Registry, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"no model named 'churn'.*models: \(none\)"):
        reg.get("churn")
    for i in (1, 2, 3):
        reg.push(make_artifact(tmp_path / str(i), files={"m": bytes([i])}))
    reg.push(make_artifact(tmp_path / "f", name="fraud"))
    reg.set_alias("churn", "staging", 2)
    reg.set_alias("churn", "production", 1)

    with pytest.raises(NotFoundError, match=r"model 'churn' has no version 7; versions: 1, 2, 3$"):
        reg.get("churn:7")
    with pytest.raises(NotFoundError, match=r"model 'churn' has no alias 'prod'; aliases: production, staging$"):
        reg.get("churn@prod")
    with pytest.raises(NotFoundError, match=r"no model named 'nope'.*models: churn, fraud$"):
        reg.versions("nope")
    with pytest.raises(NotFoundError, match="has no version 9; versions: 1, 2, 3"):
        reg.set_alias("churn", "production", 9)
    with pytest.raises(NotFoundError, match="has no alias 'ghost'; aliases: production, staging"):
        reg.delete_alias("churn", "ghost")
    assert isinstance(NotFoundError("x"), LookupError)


# --------------------------------------------------------------------------- aliases & history


def test_aliases_and_history(reg: Registry, tmp_path: Path) -> None:
    for i in (1, 2):
        reg.push(make_artifact(tmp_path / str(i), files={"m": bytes([i])}))

    c1 = reg.set_alias("churn", "production", 1)
    c2 = reg.set_alias("churn", "production", 2)
    c3 = reg.set_alias("churn", "production", 2)  # no-op: returned but not recorded
    reg.set_alias("churn", "staging", 1)
    c4 = reg.delete_alias("churn", "production")

    assert (c1.old_version, c1.new_version, c2.old_version, c2.new_version) == (None, 1, 1, 2)
    assert (c3.old_version, c3.new_version) == (2, 2)
    assert (c4.alias, c4.old_version, c4.new_version) == ("production", 2, None)
    assert reg.aliases("churn") == {"staging": 1}
    history = Registry(tmp_path / "home").history("churn")  # persisted: a fresh instance reads it back
    assert [(h.alias, h.old_version, h.new_version) for h in history] == [
        ("production", None, 1),
        ("production", 1, 2),
        ("staging", None, 1),
        ("production", 2, None),
    ]
    assert all(isinstance(h, AliasChange) and h.name == "churn" for h in history)
    times = [_utc(h.time) for h in history]
    assert times == sorted(times)
    with pytest.raises(RegistryError, match="must not be all digits"):
        reg.set_alias("churn", "123", 1)
    with pytest.raises(RegistryError, match="invalid alias 'a b'"):
        reg.set_alias("churn", "a b", 1)


def test_history_ignores_a_torn_last_line(reg: Registry, tmp_path: Path) -> None:
    reg.push(make_artifact(tmp_path / "a"))
    assert reg.history("churn") == []
    reg.set_alias("churn", "production", 1)
    with open(tmp_path / "home/registry/models/churn/history.jsonl", "ab") as fh:
        fh.write(b'{"alias": "prod')
    assert len(reg.history("churn")) == 1


# --------------------------------------------------------------------------- verify & load


def test_verify_detects_tampered_file(reg: Registry, tmp_path: Path) -> None:
    v = reg.push(make_artifact(tmp_path / "a"))
    assert reg.verify("churn:1") == v
    expected, evil = sha256_bytes(b"{}"), b'{"evil": 1}'
    rewrite(v.path / "sub" / "schema.json", evil)
    with pytest.raises(IntegrityError) as info:
        reg.verify("churn")
    message = str(info.value)
    assert "'sub/schema.json'" in message
    assert f"expected {expected}" in message
    assert f"actual {sha256_bytes(evil)}" in message


def test_verify_detects_manifest_rewritten_to_match(reg: Registry, tmp_path: Path) -> None:
    v = reg.push(make_artifact(tmp_path / "a"))
    rewrite(v.path / "model.onnx", b"evil")
    manifest = json.loads((v.path / "manifest.json").read_bytes())
    manifest["files"]["model.onnx"] = {"sha256": sha256_bytes(b"evil"), "size": 4}
    rewrite(v.path / "manifest.json", canonical_json(manifest))
    with pytest.raises(IntegrityError, match=r"manifest\.json of churn:1 was modified"):
        reg.verify("churn:1")


def test_load_returns_verified_artifact_with_version(reg: Registry, tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import parity

    frame = pd.DataFrame({"x": np.arange(40, dtype=float)})
    model = LogisticRegression().fit(frame, (frame["x"] > 20).astype(int))
    src = parity.package(model, frame, name="churn").save(tmp_path / "a")
    v = reg.push(src)
    loaded = reg.load("churn")
    assert loaded.version == v.version == 1
    assert reg.load(src).version is None
    rewrite(v.path / "model.onnx", b"evil")
    with pytest.raises(IntegrityError, match=r"model\.onnx"):
        reg.load("churn")


def test_verify_artifact_dir_returns_manifest(tmp_path: Path) -> None:
    src = make_artifact(tmp_path / "a", extra_field=1)
    assert verify_artifact_dir(src)["extra_field"] == 1


def test_digest_definition() -> None:
    files = {"b": {"sha256": "2" * 64, "size": 2}, "a": {"sha256": "1" * 64, "size": 1, "note": "x"}}
    manifest = {"name": "m", "files": files, "metrics": {"auc": 0.9}}
    expected = sha256_bytes(canonical_json(manifest))
    # Every field but the volatile ones is covered, whatever the key order.
    assert artifact_digest({**manifest, "created": "now"}) == expected
    assert artifact_digest(dict(reversed(list(manifest.items())))) == expected
    assert artifact_digest({**manifest, "name": "other"}) != expected
    assert artifact_digest({**manifest, "metrics": {"auc": 0.99}}) != expected


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn", Ref(kind="latest", name="churn")),
        ("churn:3", Ref(kind="version", name="churn", version=3)),
        ("churn@production", Ref(kind="alias", name="churn", alias="production")),
        ("my.model-v2_x@blue-1", Ref(kind="alias", name="my.model-v2_x", alias="blue-1")),
        ("0", Ref(kind="latest", name="0")),
        ("./out", Ref(kind="path", path=Path("out"))),
        ("out/churn", Ref(kind="path", path=Path("out/churn"))),
        ("/abs/churn:3", Ref(kind="path", path=Path("/abs/churn:3"))),
    ],
)
def test_parse_ref(text: str, expected: Ref) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "invalid model reference"),
        ("-churn", r"invalid model name '-churn': model names must match \[A-Za-z0-9\]"),
        ("ch urn", "invalid model name"),
        ("a" * 129, "invalid model name"),
        ("churn:", "positive integer"),
        ("churn:0", "positive integer"),
        ("churn:x", "positive integer"),
        ("churn:١", "positive integer"),
        ("churn@", "invalid alias ''"),
        ("churn@42", "must not be all digits"),
        ("churn@a@b", "invalid alias 'a@b'"),
        ("@prod", "invalid model name ''"),
    ],
)
def test_parse_ref_rejects_invalid(text: str, match: str) -> None:
    with pytest.raises(RegistryError, match=match):
        parse_ref(text)


def test_parse_ref_existing_artifact_directory_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_artifact(tmp_path / "churn")
    (tmp_path / "fraud").mkdir()  # a directory without manifest.json is not an artifact
    assert parse_ref("churn") == Ref(kind="path", path=Path("churn"))
    assert parse_ref("fraud") == Ref(kind="latest", name="fraud")
    assert parse_ref(tmp_path / "x") == Ref(kind="path", path=tmp_path / "x")


_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@settings(max_examples=50, deadline=None)
@given(name=_name, version=st.integers(1, 10**6), alias=_name.filter(lambda a: not a.isdigit()))
def test_parse_ref_round_trips(name: str, version: int, alias: str) -> None:
    for ref in (Ref(kind="latest", name=name), Ref("version", name, version), Ref("alias", name, alias=alias)):
        assert parse_ref(str(ref)) == ref


# --------------------------------------------------------------------------- roots & storage


def test_default_root_from_parity_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARITY_HOME", str(tmp_path / "ph"))
    assert Registry().root == tmp_path / "ph"
    v = Registry().push(make_artifact(tmp_path / "a"))
    assert v.path.is_relative_to(tmp_path / "ph" / "registry")


def test_default_root_is_dot_parity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARITY_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    reg = Registry()
    monkeypatch.chdir("/")  # the root was made absolute at construction
    assert reg.root == tmp_path / ".parity"
    assert reg.push(make_artifact(tmp_path / "a")).path.is_relative_to(tmp_path / ".parity" / "registry")


def test_custom_storage(tmp_path: Path) -> None:
    reg = Registry(storage=LocalStorage(tmp_path / "elsewhere"))
    assert reg.push(make_artifact(tmp_path / "a")).path.is_relative_to(tmp_path / "elsewhere")
    with pytest.raises(RegistryError, match="not both"):
        Registry(tmp_path, storage=LocalStorage(tmp_path))


def test_local_storage_refuses_escaping_keys(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    for key in ("../x", "/etc/passwd", "a/./b", "a\\b", ""):
        with pytest.raises(RegistryError, match="invalid storage key"):
            storage.read_bytes(key)
    storage.write_bytes_atomic("a/b.txt", b"1")
    storage.append_bytes("a/log", b"x\n")
    storage.append_bytes("a/log", b"y\n")
    assert storage.read_bytes("a/log") == b"x\ny\n"
    assert storage.list("a") == ["b.txt", "log"] and storage.list("missing") == []
    storage.delete("a")
    assert not storage.exists("a")


# --------------------------------------------------------------------------- concurrency (real processes)

_WORKER = """
import os, sys, time
from parity.registry import Registry
ready, go, home, src = sys.argv[1:5]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
v = Registry(home).push(src)
print(v.version, v.digest)
"""


def _push_concurrently(home: Path, sources: list[Path], tmp_path: Path) -> list[tuple[int, str]]:
    go = tmp_path / "go"
    readies = [tmp_path / f"ready{i}" for i in range(len(sources))]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(r), str(go), str(home), str(s)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for r, s in zip(readies, sources, strict=True)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(r.exists() for r in readies):  # every process imported and waiting
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.005)
        go.touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err.decode()
            version, digest = out.decode().split()
            results.append((int(version), digest))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_concurrent_pushes_of_distinct_artifacts_get_distinct_versions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sources = [make_artifact(tmp_path / f"src{i}", files={"m.bin": bytes([i]) * 1000}) for i in range(6)]

    results = _push_concurrently(home, sources, tmp_path)

    assert sorted(v for v, _ in results) == [1, 2, 3, 4, 5, 6]
    reg = Registry(home)
    versions = reg.versions("churn")
    assert {(v.version, v.digest) for v in versions} == set(results)
    assert len({v.digest for v in versions}) == 6
    for v in versions:
        reg.verify(v.path)
    assert reg.list()[0].latest == 6
    assert list((home / "registry/models/churn/.staging").iterdir()) == []


def test_concurrent_pushes_of_identical_content_make_one_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sources = [make_artifact(tmp_path / f"src{i}", files={"m.bin": b"same"}) for i in range(4)]

    results = _push_concurrently(home, sources, tmp_path)

    assert {v for v, _ in results} == {1}
    assert len({d for _, d in results}) == 1
    assert [v.version for v in Registry(home).versions("churn")] == [1]
    assert list((home / "registry/models/churn/versions").iterdir()) == [home / "registry/models/churn/versions/1"]


def test_copy_to_keeps_numbers_digests_and_aliases(reg: Registry, tmp_path: Path) -> None:
    for i in range(3):
        reg.push(make_artifact(tmp_path / f"a{i}", files={"m.bin": bytes([i])}))
    reg.set_alias("churn", "prod", 2)
    reg.set_alias("churn", "old", 1)
    dest = Registry(tmp_path / "image")
    copied = reg.copy_to(dest, ["churn@prod", "churn:3", "churn:3"])
    assert [(v.version, v.digest) for v in copied] == [
        (2, reg.get("churn:2").digest),
        (3, reg.get("churn:3").digest),
        (3, reg.get("churn:3").digest),
    ]
    assert [v.version for v in dest.versions("churn")] == [2, 3]  # only what was asked for
    assert dest.aliases("churn") == {"prod": 2}  # 'old' points at a version not copied
    assert dest.get("churn").version == 3 and dest.verify("churn@prod").version == 2
    with pytest.raises(RegistryError, match="already has that model"):
        reg.copy_to(dest, ["churn:1"])
    rewrite(reg.get("churn:1").path / "m.bin", b"evil")
    with pytest.raises(IntegrityError):  # the source is verified before anything is copied
        reg.copy_to(Registry(tmp_path / "other"), ["churn:1"])
    assert not (tmp_path / "other" / "registry" / "models" / "churn" / "index.json").exists()


# --------------------------------------------------------------------------- debris and history, in-process
# (tests/registry/test_crash.py makes the same states with real killed processes; these build them
# directly, fast enough to run for every mutant of scripts/mutation.sh)


def _index_path(home: Path, name: str = "churn") -> Path:
    return home / "registry" / "models" / name / "index.json"


def _edit_index(home: Path, edit: Any) -> None:
    path = _index_path(home)
    index = json.loads(path.read_bytes())
    edit(index)
    path.write_bytes(canonical_json(index))


def test_find_debris_names_stale_staging_orphan_versions_and_temp_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    reg = Registry(home, stale_after_s=100)
    reg.push(make_artifact(tmp_path / "a"))
    model = home / "registry" / "models" / "churn"
    for name in ("old", "young", "mine"):
        (model / ".staging" / name).mkdir(parents=True)
        (model / ".staging" / name / "f").write_bytes(b"x")
    age(model / ".staging" / "old", 200)
    age(model / ".staging" / "mine", 200)
    (model / "versions" / "7").mkdir()  # renamed, never in the index
    (model / "versions" / "tmp-x").mkdir()  # not even a number
    (model / ".index.json.abc.tmp").write_bytes(b"half")
    (model / "notes.tmp").write_bytes(b"")  # not a dot-file: not ours
    (model / ".hidden").write_bytes(b"")  # a dot-file but not a temp file

    index = json.loads(_index_path(home).read_bytes())
    found = reg.find_debris("churn", index, keep="models/churn/.staging/mine")
    assert sorted(found) == [
        ("orphan_version", "models/churn/versions/7"),
        ("orphan_version", "models/churn/versions/tmp-x"),
        ("stale_staging", "models/churn/.staging/old"),
        ("temp_file", "models/churn/.index.json.abc.tmp"),
    ]
    # Without an index nothing is listed: every version folder is an orphan.
    assert ("orphan_version", "models/churn/versions/1") in reg.find_debris("churn", None)

    # The next write (here an alias change, which keeps no staging folder) deletes all of it, and nothing else.
    reg.set_alias("churn", "production", 1)
    assert [p.name for p in (model / ".staging").iterdir()] == ["young"]
    assert sorted(p.name for p in (model / "versions").iterdir()) == ["1"]
    assert not (model / ".index.json.abc.tmp").exists()
    assert (model / "notes.tmp").exists() and (model / ".hidden").exists()


def test_a_push_cleans_debris_but_keeps_young_staging(tmp_path: Path) -> None:
    home = tmp_path / "home"
    reg = Registry(home, stale_after_s=100)
    reg.push(make_artifact(tmp_path / "a", files={"m": b"1"}))
    model = home / "registry" / "models" / "churn"
    (model / ".staging" / "young").mkdir()
    (model / ".staging" / "old").mkdir()
    age(model / ".staging" / "old", 150)
    (model / ".index.json.x.tmp").write_bytes(b"")
    v = reg.push(make_artifact(tmp_path / "b", files={"m": b"2"}))
    assert v.version == 2
    assert [p.name for p in (model / ".staging").iterdir()] == ["young"]
    assert not (model / ".index.json.x.tmp").exists()


def test_history_keeps_only_the_changes_the_index_counts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    reg = Registry(home)
    for i in (1, 2):
        reg.push(make_artifact(tmp_path / str(i), files={"m": bytes([i])}))
    reg.set_alias("churn", "production", 1)
    history = home / "registry/models/churn/history.jsonl"
    one_line = history.read_bytes()
    index = json.loads(_index_path(home).read_bytes())
    assert index["changes"] == 1 and index["last_change"]["new_version"] == 1

    # A line past the count was never applied (debris of an older version's crash): ignored.
    never = {"time": "2030-01-01T00:00:00Z", "name": "churn", "alias": "x", "old_version": None, "new_version": 2}
    history.write_bytes(one_line + (json.dumps(never) + "\n").encode())
    assert [(c.alias, c.new_version) for c in reg.history("churn")] == [("production", 1)]

    # The counted change is missing from the file (crash before the append): derived from last_change.
    history.write_bytes(b"")
    assert [(c.alias, c.old_version, c.new_version) for c in reg.history("churn")] == [("production", None, 1)]

    # The next write first rewrites the file to what the index implies, then appends.
    reg.set_alias("churn", "production", 2)
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    assert [(e["alias"], e["old_version"], e["new_version"]) for e in lines] == [
        ("production", None, 1),
        ("production", 1, 2),
    ]
    assert json.loads(_index_path(home).read_bytes())["changes"] == 2


def test_history_of_an_index_without_a_change_count(tmp_path: Path) -> None:
    # Indexes written before the count existed appended the history first: a last line whose
    # change the index does not show was never applied.
    home = tmp_path / "home"
    reg = Registry(home)
    for i in (1, 2):
        reg.push(make_artifact(tmp_path / str(i), files={"m": bytes([i])}))
    reg.set_alias("churn", "production", 1)
    reg.set_alias("churn", "production", 2)
    _edit_index(home, lambda ix: [ix.pop("changes"), ix.pop("last_change")])
    assert len(reg.history("churn")) == 2  # the last line matches the aliases: applied

    _edit_index(home, lambda ix: ix["aliases"].update(production=1))  # the index never saw the 2nd change
    assert [(c.old_version, c.new_version) for c in reg.history("churn")] == [(None, 1)]

    _edit_index(home, lambda ix: ix["aliases"].update(production=7))  # matches neither: keep every line
    assert len(reg.history("churn")) == 2

    # The next alias write counts the changes the history implies, then adds its own.
    _edit_index(home, lambda ix: ix["aliases"].update(production=1))
    reg.set_alias("churn", "staging", 1)
    assert json.loads(_index_path(home).read_bytes())["changes"] == 2
    assert [(c.alias, c.new_version) for c in reg.history("churn")] == [("production", 1), ("staging", 1)]


def test_corrupt_history_and_index_are_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    reg = Registry(home)
    reg.push(make_artifact(tmp_path / "a"))
    reg.set_alias("churn", "production", 1)
    history = home / "registry/models/churn/history.jsonl"
    good = history.read_bytes()
    history.write_bytes(b"\n" + b"{broken\n" + good)  # a blank line is skipped; a bad one mid-file is not
    with pytest.raises(RegistryError, match=r"history of model 'churn' is corrupt at line 2: "):
        reg.history("churn")
    history.write_bytes(good + b'{"alias": "x"}\n')  # valid JSON, not a change, last line: torn
    assert len(reg.history("churn")) == 1
    _index_path(home).write_bytes(b"{not json")
    with pytest.raises(RegistryError, match="index of model 'churn' is not valid JSON"):
        reg.get("churn")
    _index_path(home).write_bytes(canonical_json({"format": 99, "versions": []}))
    with pytest.raises(RegistryError, match="unknown format; upgrade parity"):
        reg.get("churn")
    _index_path(home).write_bytes(b"[1, 2]")
    with pytest.raises(RegistryError, match="unknown format"):
        reg.get("churn")


def test_failed_parity_is_refused_unless_allowed(reg: Registry, tmp_path: Path) -> None:
    bad = make_artifact(tmp_path / "bad", files={"m": b"x"}, parity={"passed": False, "failure": "max diff 0.5"})
    with pytest.raises(ParityMismatchError, match=r"refusing to push 'churn'.*FAILED.*max diff 0\.5"):
        reg.push(bad)
    assert reg.list() == []
    good = reg.push(make_artifact(tmp_path / "good", files={"m": b"y"}, parity={"passed": True}))
    v = reg.push(bad, allow_failed_parity=True)
    assert (good.version, v.version) == (1, 2)
    with pytest.raises(ParityMismatchError, match="refusing to point alias 'production' at 'churn'"):
        reg.set_alias("churn", "production", 2)
    assert reg.set_alias("churn", "production", 2, allow_failed_parity=True).new_version == 2
    reg.set_alias("churn", "staging", 1)  # a version that passed needs no flag
    with pytest.raises(RegistryError, match="version must be an int, got True"):
        reg.set_alias("churn", "staging", True)  # type: ignore[arg-type]


def test_legacy_digest_entries_are_not_matched_by_content(reg: Registry, tmp_path: Path) -> None:
    # An entry of an older registry (digest scheme 1) cannot be compared with today's digest: a push of
    # the same files becomes a new version rather than being matched to it.
    src = make_artifact(tmp_path / "a")
    v1 = reg.push(src)
    home = tmp_path / "home"
    _edit_index(home, lambda ix: ix["versions"][0].pop("digest_scheme"))
    assert reg.get("churn:1").digest_scheme == 1
    v2 = reg.push(src)
    assert (v1.version, v2.version, v2.digest_scheme) == (1, 2, 2)
    assert reg.get(src) == v2


def test_list_and_versions_order_and_empty_models(reg: Registry, tmp_path: Path) -> None:
    for i in (1, 2, 3):
        reg.push(make_artifact(tmp_path / str(i), files={"m": bytes([i])}))
    home = tmp_path / "home"
    _edit_index(home, lambda ix: ix["versions"].reverse())  # index order is not version order
    assert [v.version for v in reg.versions("churn")] == [1, 2, 3]
    [summary] = reg.list()
    assert summary.latest == 3
    assert reg.get("churn").version == 3
    reg.set_alias("churn", "production", 1)
    reg.set_alias("churn", "staging", 2)
    reg.set_alias("churn", "canary", 2)
    assert [v.aliases for v in reg.versions("churn")] == [("production",), ("canary", "staging"), ()]
    assert json.loads((home / "registry/models/churn/index.json").read_bytes())["format"] == 1
    (home / "registry/models/.hidden").mkdir()
    (home / "registry/models/noindex").mkdir()
    reg.push(make_artifact(tmp_path / "e", name="empty"))
    (home / "registry/models/empty/index.json").write_bytes(
        canonical_json({"format": 1, "name": "empty", "versions": [], "aliases": {}})
    )
    assert [s.name for s in reg.list()] == ["churn"]  # a model without versions is not listed
    with pytest.raises(NotFoundError, match="model 'empty' has no versions"):
        reg.get("empty")
    with pytest.raises(NotFoundError, match=r"models: churn, empty$"):
        reg.get("noindex")


def test_with_no_grace_every_staging_folder_but_the_push_s_own_is_debris(tmp_path: Path) -> None:
    home = tmp_path / "home"
    reg = Registry(home, stale_after_s=0)
    reg.push(make_artifact(tmp_path / "a", files={"m": b"1"}))
    other = home / "registry/models/churn/.staging/other"
    other.mkdir(parents=True)
    v = reg.push(make_artifact(tmp_path / "b", files={"m": b"2"}))  # its own staging folder is kept to commit
    assert v.version == 2 and (v.path / "m").read_bytes() == b"2"
    assert not other.exists()
