"""``parity serve --lake s3://...``: a real server process logs predictions into a bucket of the S3 server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pyarrow.parquet as pq

from parity._fs import filesystem
from tests._servers import ServerProcess
from tests.s3.conftest import S3Server
from tests.server.conftest import ModelEnv


def test_served_rows_reach_the_s3_lake(s3_server: S3Server, model_env: ModelEnv, tmp_path: Path) -> None:
    url = f"s3://{s3_server.bucket()}/prod/lake"
    server = ServerProcess(
        [str(model_env.artifact_dir), "--lake", url], tmp_path / "server.log", env={"PARITY_CACHE": str(tmp_path)}
    )
    try:
        server.wait_ready()
        rows = model_env.frame.head(7).astype(object).where(model_env.frame.head(7).notna(), None)
        body = {"instances": rows.to_dict(orient="records")}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(3):
                r = client.post("/v1/models/churn:predict", json=body)
                assert r.status_code == 200, r.text
    finally:
        assert server.terminate() == 0, server.log()  # SIGTERM: the lake is closed and published
    fs, base = filesystem(url)
    keys = [k for k in fs.find(base) if k.endswith(".parquet")]
    assert keys and all("/model=churn/" in k for k in keys) and not [k for k in keys if "/_tmp/" in k]
    assert sum(pq.ParquetFile(fs.open(k)).metadata.num_rows for k in keys) == 21
    assert not list((tmp_path / "lake-buffer").rglob("part-*.parquet"))  # nothing left waiting locally
