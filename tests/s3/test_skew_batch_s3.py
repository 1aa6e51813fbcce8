"""``parity skew`` and ``parity batch`` on s3:// data, through the real S3-compatible server: same results as local."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import parity
from parity._fs import filesystem
from parity.batch import score
from parity.cli import app
from parity.codec import encode_frame
from parity.lake import LakeWriter
from parity.skew import skew_report
from tests.fixtures import pipeline, raw_frame, targets
from tests.s3.conftest import S3Server


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = raw_frame(400)
    model = pipeline(LogisticRegression(max_iter=500)).fit(frame, targets(frame, "binary"))
    path = tmp_path_factory.mktemp("s3skew") / "churn"
    parity.package(model, frame, name="churn").save(path)
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARITY_CACHE", str(tmp_path / "cache"))


def _serving(n: int, seed: int) -> pd.DataFrame:
    """Serving rows as they arrive from a CSV: drifted charges, NaN for missing text."""
    frame = raw_frame(n, seed=seed)
    frame["charges"] = frame["charges"] * 1.3
    return frame


def _write_lake(artifact_dir: Path, root: Path) -> None:
    artifact = parity.load(artifact_dir)
    with LakeWriter(root) as lake:
        for i in range(3):
            frame = _serving(150, seed=10 + i)
            inputs = encode_frame(artifact.signature, frame)
            lake.write(
                model="churn",
                version=1,
                signature=artifact.signature,
                inputs=inputs,
                outputs=artifact.runtime.predict(inputs),
                request_id=f"r{i}",
                latency_ms=1.0,
            )


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(report))
    out["data"].pop("path", None)
    for key in ("seconds", "created"):
        out.pop(key, None)
    return out


def _upload(local: Path, url: str) -> None:
    fs, path = filesystem(url)
    for f in sorted(p for p in local.rglob("*") if p.is_file()):
        fs.put_file(str(f), f"{path}/{f.relative_to(local).as_posix()}")


def test_skew_reads_an_s3_lake(s3_server: S3Server, artifact_dir: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _write_lake(artifact_dir, lake)
    url = f"s3://{s3_server.bucket()}/prod/lake"
    _upload(lake, url)
    local = skew_report(artifact_dir, lake)
    remote = skew_report(artifact_dir, url)
    assert remote.data.rows == 450 and local.data.rows == 450
    assert _comparable(remote.to_dict()) == _comparable(local.to_dict())
    assert "charges" in remote.flagged()  # the drift is seen through S3 too

    result = CliRunner().invoke(app, ["skew", str(artifact_dir), "--data", url, "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"]["rows"] == 450


def test_batch_reads_and_writes_s3(s3_server: S3Server, artifact_dir: Path, tmp_path: Path) -> None:
    frame = _serving(3000, seed=3)
    frame.insert(0, "customer_id", np.arange(len(frame)))
    frame.to_csv(tmp_path / "in.csv", index=False)
    arrived = pd.read_csv(tmp_path / "in.csv")  # object columns with NaN, as data arrives
    pq.write_table(pa.Table.from_pandas(arrived, preserve_index=False), tmp_path / "in.parquet")
    bucket = s3_server.bucket()
    fs, _ = filesystem(f"s3://{bucket}")
    fs.put_file(str(tmp_path / "in.parquet"), f"{bucket}/batch/in.parquet")

    local = score(artifact_dir, tmp_path / "in.parquet", tmp_path / "out_local", keys=["customer_id"], batch_size=1000)
    source, target = f"s3://{bucket}/batch/in.parquet", f"s3://{bucket}/batch/out"
    remote = score(artifact_dir, source, target, keys=["customer_id"], batch_size=1000)
    assert remote.rows == local.rows == 3000
    mirrored = tmp_path / "out_remote"
    fs.get(f"{bucket}/batch/out", str(mirrored), recursive=True)
    got = pq.read_table(mirrored).to_pandas().sort_values("customer_id").reset_index(drop=True)
    want = pq.read_table(tmp_path / "out_local").to_pandas().sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert not [k for k in fs.find(f"{bucket}/batch") if ".tmp" in k]  # published, no temp keys left
    assert fs.exists(f"{bucket}/batch/out/_SUCCESS")
