"""The prediction lake on a real S3-compatible server: files published from temp keys, buffered when S3 is down."""

from __future__ import annotations

import socket
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

import parity
from parity._fs import filesystem
from parity._lake_s3 import S3LakeWriter
from parity.codec import encode_frame
from parity.lake import LakeWriter
from parity.skew import skew_report
from tests.fixtures import pipeline, raw_frame, targets
from tests.s3.conftest import S3Server


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> parity.Artifact:
    frame = raw_frame(300)
    model = pipeline(LogisticRegression(max_iter=500)).fit(frame, targets(frame, "binary"))
    path = tmp_path_factory.mktemp("s3lake") / "churn"
    parity.package(model, frame, name="churn").save(path)
    return parity.load(path)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARITY_CACHE", str(tmp_path / "cache"))


def _log(lake: LakeWriter, artifact: parity.Artifact, requests: int, rows: int) -> None:
    for i in range(requests):
        inputs = encode_frame(artifact.signature, raw_frame(rows, seed=100 + i))
        lake.write(
            model="churn",
            version=1,
            signature=artifact.signature,
            inputs=inputs,
            outputs=artifact.runtime.predict(inputs),
            request_id=f"req-{i}",
            latency_ms=0.5,
        )


def _published(url: str) -> list[str]:
    fs, base = filesystem(url)
    return sorted(k for k in fs.find(base) if k.endswith(".parquet"))


def test_lake_files_land_in_s3_from_temp_keys(s3_server: S3Server, artifact: parity.Artifact) -> None:
    url = f"s3://{s3_server.bucket()}/serving/lake"
    with S3LakeWriter(url) as lake:
        _log(lake, artifact, requests=4, rows=50)
    keys = _published(url)
    assert keys and all("/model=churn/version=1/date=" in k and "/part-" in k for k in keys)
    fs, base = filesystem(url)
    assert not [k for k in fs.find(base) if "/_tmp/" in k]  # temporary keys are gone once published
    assert lake.uploader.pending() == [] and lake.uploader.uploaded == len(keys)
    assert sum(pq.ParquetFile(fs.open(k)).metadata.num_rows for k in keys) == 200
    report = skew_report(artifact, url)
    assert report.data.rows == 200


def _dead_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there once closed


def test_unreachable_s3_buffers_locally_and_retries(
    s3_server: S3Server, artifact: parity.Artifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.bucket()
    url = f"s3://{bucket}/serving/lake"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", _dead_endpoint())
    with S3LakeWriter(url, retry_interval_s=3600) as down:
        _log(down, artifact, requests=3, rows=40)
    pending = down.uploader.pending()
    assert pending and down.uploader.failures >= 1
    rows = sum(pq.ParquetFile(down.root / k).metadata.num_rows for k in pending)
    assert rows == 120  # every acknowledged row is kept on local disk
    # S3 is back; a restarted writer on the same URL publishes what the first one left.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    with S3LakeWriter(url, retry_interval_s=3600) as up:
        pass
    assert up.uploader.pending() == []
    assert sorted(k.split("/serving/lake/", 1)[1] for k in _published(url)) == pending
