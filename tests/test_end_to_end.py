"""The whole level-0 loop through the real entry points, as a user runs it.

train -> package -> ``parity registry push --alias production`` -> ``parity serve churn@production``
-> requests over REST V1, REST V2 and gRPC -> SIGTERM -> lake files -> ``parity skew`` (a planted
shift in one input found, the other inputs ok) -> ``parity skew --replay`` (every served row
replayed, 0 mismatches).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as tgrpc
from sklearn.linear_model import LogisticRegression

import parity
from parity.lake import read_lake
from parity.schema import MISSING_STRING
from tests._servers import PARITY, ServerProcess
from tests.fixtures import pipeline, raw_frame, targets

INPUTS = ("tenure", "charges", "age", "plan", "region")
SHIFTED = "charges"
ROWS_PER_PROTOCOL = 300
BATCH = 50


def _parity(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(PARITY), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode in ok, (args, result.returncode, result.stdout, result.stderr)
    return result


def _null(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else v


def _v2_tensors(rows: pd.DataFrame, signature: parity.Signature) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "datatype": c.datatype,
            "shape": [len(rows)],
            "data": [_null(v) for v in rows[c.name].tolist()],
        }
        for c in signature.inputs
    ]


def _grpc_inputs(rows: pd.DataFrame, signature: parity.Signature) -> list[tgrpc.InferInput]:
    out = []
    for c in signature.inputs:
        if c.datatype == "BYTES":  # gRPC strings cannot be null: the missing-string marker
            values = np.array([MISSING_STRING if pd.isna(v) else v for v in rows[c.name]], dtype=object)
        else:
            values = rows[c.name].to_numpy(dtype=np.float64 if c.datatype == "FP64" else np.int64)
        tensor = tgrpc.InferInput(c.name, [len(rows)], c.datatype)
        tensor.set_data_from_numpy(values)
        out.append(tensor)
    return out


def _assert_same(labels: Any, probs: Any, want: pd.DataFrame) -> None:
    assert [v.decode() if isinstance(v, bytes) else v for v in labels] == want["label"].tolist()
    np.testing.assert_allclose(np.asarray(probs, dtype=float), want["probability"].to_numpy(), rtol=1e-12, atol=0)


def test_train_package_register_serve_log_and_report_skew(tmp_path: Path) -> None:
    # 1. Train and package (string labels, a declared threshold).
    train = raw_frame(1500, seed=0)
    model = pipeline(LogisticRegression(max_iter=1000)).fit(train, targets(train, "binary"))
    art = parity.package(model, train, name="churn", postprocess=parity.Threshold(0.5, labels=("stay", "churn")))
    art_dir = art.save(tmp_path / "churn-artifact")

    # 2. Register through the CLI and point production at it.
    home = tmp_path / "home"
    pushed = json.loads(_parity("--registry", str(home), "registry", "push", str(art_dir), "--alias", "production",
                                "--json").stdout)  # fmt: skip
    assert pushed["version"] == 1 and "production" in pushed["aliases"]

    # 3. Serve it with the real command, lake on, REST and gRPC.
    lake = tmp_path / "lake"
    server = ServerProcess(
        ["churn@production", "--registry", str(home), "--lake", str(lake), "--reload-interval", "0"],
        tmp_path / "server.log",
        grpc=True,
    )
    serving = raw_frame(3 * ROWS_PER_PROTOCOL, seed=7)
    serving[SHIFTED] = serving[SHIFTED] + 60.0  # the planted shift: +2.4 standard deviations
    sig = art.signature
    sent: dict[str, int] = {}
    try:
        server.wait_ready()
        parts = [serving.iloc[i : i + ROWS_PER_PROTOCOL].reset_index(drop=True) for i in range(0, len(serving), 300)]
        with httpx.Client(base_url=server.url, timeout=30) as client:
            # REST KServe V1 records.
            for i in range(0, ROWS_PER_PROTOCOL, BATCH):
                rows = parts[0].iloc[i : i + BATCH]
                records = [{k: _null(v) for k, v in rec.items()} for rec in rows.to_dict(orient="records")]
                r = client.post(
                    "/v1/models/churn:predict", json={"instances": records}, headers={"X-Request-ID": f"v1-{i}"}
                )
                assert r.status_code == 200, r.text
                preds = r.json()["predictions"]
                _assert_same([p["label"] for p in preds], [p["probability"] for p in preds], art.predict(rows))
                sent[f"v1-{i}"] = len(rows)
            # REST Open Inference Protocol V2.
            for i in range(0, ROWS_PER_PROTOCOL, BATCH):
                rows = parts[1].iloc[i : i + BATCH]
                body = {"id": f"v2-{i}", "inputs": _v2_tensors(rows, sig)}
                r = client.post("/v2/models/churn/infer", json=body, headers={"X-Request-ID": f"v2-{i}"})
                assert r.status_code == 200, r.text
                out = {o["name"]: o["data"] for o in r.json()["outputs"]}
                _assert_same(out["label"], out["probability"], art.predict(rows))
                sent[f"v2-{i}"] = len(rows)
        # gRPC (tritonclient).
        grpc_client = tgrpc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        try:
            for i in range(0, ROWS_PER_PROTOCOL, BATCH):
                rows = parts[2].iloc[i : i + BATCH]
                result = grpc_client.infer("churn", _grpc_inputs(rows, sig), request_id=f"grpc-{i}")
                _assert_same(result.as_numpy("label"), result.as_numpy("probability"), art.predict(rows))
                sent[f"grpc-{i}"] = len(rows)
        finally:
            grpc_client.close()
    finally:
        # 4. SIGTERM: drain, flush the lake, exit 0.
        code = server.terminate()
    assert code == 0, server.log()

    # 5. The lake holds every served row, with the raw inputs as sent.
    files = list(lake.rglob("*.parquet"))
    assert files and all(p.parent.parent.name == "version=1" and not p.name.startswith(".") for p in files)
    table = read_lake(lake, model="churn")
    assert table.num_rows == 3 * ROWS_PER_PROTOCOL
    ids, counts = np.unique(table.column("request_id").to_numpy(zero_copy_only=False), return_counts=True)
    assert dict(zip(ids.tolist(), counts.tolist(), strict=True)) == sent
    logged = table.to_pandas()
    first_v2 = logged[logged["request_id"].astype(str) == "v2-0"].sort_values("row")
    np.testing.assert_array_equal(first_v2["charges"].to_numpy(), parts[1]["charges"].head(BATCH).to_numpy())
    assert first_v2["region"].isna().tolist() == parts[1]["region"].head(BATCH).isna().tolist()

    # 6. The skew report finds the planted shift and nothing else among the inputs.
    report_path = tmp_path / "skew.json"
    html_path = tmp_path / "skew.html"
    result = _parity("--registry", str(home), "skew", "churn@production", "--data", str(lake), "--json",
                     str(report_path), "--html", str(html_path), "--fail-on", "alert", ok=(11,))  # fmt: skip
    report = json.loads(report_path.read_text())
    features = {f["name"]: f for f in report["features"] if f["role"] == "input"}
    assert set(features) == set(INPUTS)
    assert features[SHIFTED]["severity"] == "alert", features[SHIFTED]
    for name in set(INPUTS) - {SHIFTED}:
        assert features[name]["severity"] == "ok", features[name]
    assert report["data"]["rows"] == 3 * ROWS_PER_PROTOCOL
    assert SHIFTED in result.stdout and html_path.stat().st_size > 1000

    # 7. Replay: every logged row re-run through the version that served it, no mismatch.
    replay = _parity("--registry", str(home), "skew", "churn@production", "--data", str(lake), "--replay",
                     "--json", "-").stdout  # fmt: skip
    doc = json.loads(replay)["replay"]
    assert doc["rows"] == 3 * ROWS_PER_PROTOCOL and doc["replayed"] == 3 * ROWS_PER_PROTOCOL
    assert (doc["mismatched"], doc["errors"], doc["severity"]) == (0, 0, "ok")


@pytest.fixture(autouse=True)
def _no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARITY_TOKEN", raising=False)
