"""The registry on a real S3-compatible server (moto, a subprocess on 127.0.0.1): same promises as on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import parity
from parity._io import canonical_json
from parity.cli import app
from parity.errors import IntegrityError, RegistryError
from parity.registry import ConflictError, Registry
from parity.registry._s3 import S3Storage
from tests.fixtures import pipeline, raw_frame, targets
from tests.registry.test_registry import make_artifact
from tests.s3.conftest import S3Server, start_server


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = raw_frame(300)
    model = pipeline(LogisticRegression(max_iter=500)).fit(frame, targets(frame, "binary"))
    path = tmp_path_factory.mktemp("s3art") / "churn"
    parity.package(model, frame, name="churn").save(path)
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PARITY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _key(url: str, rel: str) -> tuple[str, str]:
    bucket, _, prefix = url[len("s3://") :].partition("/")
    return bucket, f"{prefix}/registry/{rel}"


def test_push_alias_load_round_trip(s3_url: str, s3_server: S3Server, artifact_dir: Path) -> None:
    registry = Registry(s3_url)
    v = registry.push(artifact_dir)
    assert (v.name, v.version) == ("churn", 1)
    assert registry.push(artifact_dir) == v  # identical content: same version, nothing copied again
    registry.set_alias("churn", "production", 1)
    model = Registry(s3_url).load("churn@production")
    assert model.version == 1 and model.verify().passed
    frame = raw_frame(20, seed=5)
    assert model.predict(frame).equals(parity.load(artifact_dir).predict(frame))
    bucket, key = _key(s3_url, "models/churn/index.json")
    index = json.loads(s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read())  # type: ignore[attr-defined]
    assert index["aliases"] == {"production": 1}
    assert [(c.alias, c.new_version) for c in registry.history("churn")] == [("production", 1)]


def test_cli_against_s3(s3_url: str, artifact_dir: Path) -> None:
    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["--registry", s3_url, *args])
        return result.exit_code, result.stdout

    code, out = run("registry", "push", str(artifact_dir), "--alias", "production", "--json")
    assert code == 0, out
    assert json.loads(out)["version"] == 1
    assert run("verify", "churn@production")[0] == 0
    code, out = run("registry", "versions", "churn", "--json")
    assert code == 0 and [v["version"] for v in json.loads(out)] == [1]
    assert run("registry", "fsck")[0] == 0


def test_digests_are_verified_on_load(s3_url: str, s3_server: S3Server, artifact_dir: Path, tmp_path: Path) -> None:
    Registry(s3_url).push(artifact_dir)
    bucket, key = _key(s3_url, "models/churn/versions/1/manifest.json")
    client = s3_server.client()
    manifest = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())  # type: ignore[attr-defined]
    manifest["metrics"] = {"auc": 0.99}
    client.put_object(Bucket=bucket, Key=key, Body=canonical_json(manifest))  # type: ignore[attr-defined]
    fresh = Registry(storage=S3Storage(f"{s3_url}/registry", cache_dir=tmp_path / "fresh"))
    with pytest.raises(IntegrityError, match="was modified"):
        fresh.load("churn:1")
    # A tampered local cache is caught too: the cache is never trusted.
    Registry(storage=S3Storage(f"{s3_url}/registry", cache_dir=tmp_path / "c2"))
    cached = tmp_path / "c2" / "s3" / bucket / s3_url.split("/", 3)[3] / "registry/models/churn/versions/1"
    client.put_object(Bucket=bucket, Key=key, Body=canonical_json({**manifest, "metrics": {}}))  # type: ignore[attr-defined]
    cached.mkdir(parents=True)
    (cached / "manifest.json").write_bytes(b"{}")
    with pytest.raises((IntegrityError, parity.ArtifactError)):
        Registry(storage=S3Storage(f"{s3_url}/registry", cache_dir=tmp_path / "c2")).load("churn:1")


def test_versions_are_immutable(s3_url: str, artifact_dir: Path, tmp_path: Path) -> None:
    registry = Registry(s3_url)
    registry.push(artifact_dir)
    with pytest.raises(FileExistsError):
        registry.storage.move("models/churn/.staging/x", "models/churn/versions/1")
    other = registry.push(make_artifact(tmp_path / "other", files={"m.bin": b"2"}))
    assert other.version == 2
    assert registry.get("churn:1").digest != other.digest
    registry.verify("churn:1")


def test_index_writes_are_compare_and_swap(s3_url: str, artifact_dir: Path) -> None:
    registry = Registry(s3_url)
    registry.push(artifact_dir)
    storage = registry.storage
    raw, tag = storage.read_tagged("models/churn/index.json")
    registry.set_alias("churn", "production", 1)  # another writer moves the index on
    with pytest.raises(ConflictError):
        storage.write_if("models/churn/index.json", raw, tag)  # a stale writer cannot win
    with pytest.raises(ConflictError):
        storage.write_if("models/churn/index.json", raw, None)  # nor create over an existing one
    assert registry.aliases("churn") == {"production": 1}


def test_a_dead_holders_lease_is_taken_over(s3_url: str, s3_server: S3Server, artifact_dir: Path) -> None:
    registry = Registry(s3_url)
    registry.push(artifact_dir)
    bucket, key = _key(s3_url, "locks/churn.lock")
    lease = json.dumps({"owner": "dead", "expires": time.time() - 1}).encode()
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=lease)  # type: ignore[attr-defined]
    registry.set_alias("churn", "production", 1)
    assert registry.aliases("churn") == {"production": 1}
    with pytest.raises(Exception, match=r"404|Not Found|NoSuchKey"):
        s3_server.client().head_object(Bucket=bucket, Key=key)  # type: ignore[attr-defined]  # released


_RACER = """
import os, sys, time
from parity.registry import Registry
url, go, action, arg = sys.argv[1:5]
while not os.path.exists(go):
    time.sleep(0.005)
registry = Registry(url)
if action == "push":
    v = registry.push(arg)
    print(v.version, v.digest)
else:
    registry.set_alias("churn", arg, 1)
    print("ok")
"""


def _race(url: str, tmp_path: Path, jobs: list[tuple[str, str]]) -> list[str]:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, url, str(go), action, arg],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
        )
        for action, arg in jobs
    ]
    try:
        time.sleep(1.0)  # let every process import parity and wait
        go.touch()
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=180)
            assert p.returncode == 0, err.decode()
            outs.append(out.decode().strip())
        return outs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_two_concurrent_pushes_get_distinct_versions(s3_url: str, tmp_path: Path) -> None:
    sources = [make_artifact(tmp_path / f"src{i}", files={"m.bin": bytes([i]) * 5000}) for i in range(2)]
    outs = _race(s3_url, tmp_path, [("push", str(s)) for s in sources])
    results = {(int(v), d) for v, d in (o.split() for o in outs)}
    assert sorted(v for v, _ in results) == [1, 2]
    registry = Registry(s3_url)
    assert {(v.version, v.digest) for v in registry.versions("churn")} == results
    for v in registry.versions("churn"):
        registry.verify(f"churn:{v.version}")
    assert registry.storage.list("models/churn/.staging") == []
    assert registry.fsck() == []


def test_alias_race_loses_no_update(s3_url: str, tmp_path: Path) -> None:
    registry = Registry(s3_url)
    registry.push(make_artifact(tmp_path / "a", files={"m.bin": b"1"}))
    aliases = [f"team{i}" for i in range(4)]
    assert _race(s3_url, tmp_path, [("alias", a) for a in aliases]) == ["ok"] * 4
    # Each process read-modified-wrote the index concurrently: every alias must have survived.
    assert registry.aliases("churn") == dict.fromkeys(aliases, 1)
    history = registry.history("churn")
    assert sorted(c.alias for c in history) == aliases
    assert registry.fsck() == []


def test_unreachable_s3_is_a_clear_error(tmp_path: Path, artifact_dir: Path, s3_server: S3Server) -> None:
    down = start_server()
    bucket = "down"
    down.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    os.environ["AWS_ENDPOINT_URL_S3"] = down.endpoint
    try:
        registry = Registry(f"s3://{bucket}/x")
        down.stop()
        with pytest.raises(RegistryError, match=r"unreachable|failed"):
            registry.push(artifact_dir)
    finally:
        os.environ["AWS_ENDPOINT_URL_S3"] = s3_server.endpoint
