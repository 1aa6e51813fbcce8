"""REST adapter against a real server process: tritonclient, V1 records, errors, limits, batching, metrics."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import time
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests._servers import ServerProcess
from tests.server.conftest import ModelEnv

COLUMNS = (("age", "FP64"), ("income", "FP64"), ("plan", "BYTES"))


def tensors(rows: pd.DataFrame, **overrides: Any) -> list[dict[str, Any]]:
    """OIP JSON input tensors of ``rows`` (NaN/None as null)."""
    out = []
    for name, datatype in COLUMNS:
        values = [None if (v is None or (isinstance(v, float) and np.isnan(v))) else v for v in rows[name].tolist()]
        out.append({"name": name, "datatype": datatype, "shape": [len(rows)], "data": values})
    for name, patch in overrides.items():
        for t in out:
            if t["name"] == name:
                t.update(patch)
    return out


def expected(env: ModelEnv, rows: pd.DataFrame) -> pd.DataFrame:
    return env.artifact.predict(rows.reset_index(drop=True))


def assert_outputs(labels: Any, probs: Any, want: pd.DataFrame) -> None:
    labels = [v.decode() if isinstance(v, bytes) else v for v in labels]
    assert labels == want["label"].tolist()
    np.testing.assert_allclose(np.asarray(probs, dtype=float), want["probability"].to_numpy(), rtol=1e-9, atol=1e-12)


@pytest.fixture
def client(server: ServerProcess) -> Any:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


@pytest.fixture
def tclient(server: ServerProcess) -> Any:
    c = triton.InferenceServerClient(server.url.removeprefix("http://"))
    yield c
    c.close()


# ---------------------------------------------------------------------------------------- happy paths


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_outputs_equal_artifact_predict(tclient: Any, model_env: ModelEnv, binary: bool) -> None:
    # Binary BYTES tensors cannot carry a null: take rows whose plan is present.
    rows = model_env.frame[model_env.frame["plan"].notna()].head(25)
    inputs = []
    for name, datatype in COLUMNS:
        values = rows[name].to_numpy(dtype=object if datatype == "BYTES" else np.float64)
        tensor = triton.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(o, binary_data=binary) for o in ("label", "probability")]
    want = expected(model_env, rows)
    for requested in (outputs, None):
        result = tclient.infer("churn", inputs, outputs=requested, request_id="abc")
        assert_outputs(result.as_numpy("label"), result.as_numpy("probability"), want)
        response = result.get_response()
        assert response["model_name"] == "churn" and response["model_version"] == "1" and response["id"] == "abc"
    result = tclient.infer("churn", inputs, model_version="1")
    assert_outputs(result.as_numpy("label"), result.as_numpy("probability"), want)


def test_health_and_metadata_with_tritonclient(tclient: Any, model_env: ModelEnv) -> None:
    assert tclient.is_server_live() and tclient.is_server_ready()
    assert tclient.is_model_ready("churn") and tclient.is_model_ready("churn", "1")
    assert not tclient.is_model_ready("nope") and not tclient.is_model_ready("churn", "7")
    meta = tclient.get_server_metadata()
    assert meta["name"] == "parity" and "binary_tensor_data" in meta["extensions"]
    model = tclient.get_model_metadata("churn")
    assert model["versions"] == ["1"] and model["platform"] == "parity-onnx"
    assert [(i["name"], i["datatype"], i["shape"]) for i in model["inputs"]] == [
        ("age", "FP64", [-1]), ("income", "FP64", [-1]), ("plan", "BYTES", [-1])
    ]  # fmt: skip
    assert [(o["name"], o["datatype"]) for o in model["outputs"]] == [("label", "BYTES"), ("probability", "FP64")]
    assert tclient.get_model_metadata("churn", "1") == model
    with pytest.raises(InferenceServerException, match="unknown model"):
        tclient.get_model_metadata("nope")


def test_json_nulls_shapes_and_selected_outputs(client: httpx.Client, model_env: ModelEnv) -> None:
    rows = model_env.frame.head(40)  # holds NaN ages and None plans
    assert rows["age"].isna().any() and rows["plan"].isna().any()
    want = expected(model_env, rows)
    r = client.post("/v2/models/churn/infer", json={"id": "x1", "inputs": tensors(rows)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "x1" and [o["shape"] for o in body["outputs"]] == [[40], [40]]
    out = {o["name"]: o["data"] for o in body["outputs"]}
    assert_outputs(out["label"], out["probability"], want)
    # [N, 1] shapes with nested data, and only one output requested.
    nested = [{**t, "shape": [len(rows), 1], "data": [[v] for v in t["data"]]} for t in tensors(rows)]
    r = client.post("/v2/models/churn/versions/1/infer", json={"inputs": nested, "outputs": [{"name": "probability"}]})
    assert r.status_code == 200, r.text
    assert [o["name"] for o in r.json()["outputs"]] == ["probability"]
    np.testing.assert_allclose(r.json()["outputs"][0]["data"], want["probability"], rtol=1e-9)


def test_v1_records(client: httpx.Client, model_env: ModelEnv) -> None:
    rows = model_env.frame.head(7)
    instances = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rec.items()}
        for rec in rows.to_dict(orient="records")
    ]
    r = client.post("/v1/models/churn:predict", json={"instances": instances})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 7 and set(preds[0]) == {"label", "probability"}
    assert_outputs([p["label"] for p in preds], [p["probability"] for p in preds], expected(model_env, rows))


def test_request_id_is_echoed_or_generated(client: httpx.Client) -> None:
    r = client.get("/v2/models/churn", headers={"X-Request-ID": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"
    r = client.get("/v2/models/churn")
    assert re.fullmatch("[0-9a-f]{32}", r.headers["x-request-id"])


def test_openapi_document(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/v2/health/ready", "/v2/models/{name}/infer", "/v1/models/{name}:predict", "/metrics"):
        assert path in doc["paths"]
    refs = re.findall(r'"#/components/schemas/(\w+)"', orjson.dumps(doc).decode())
    assert set(refs) <= set(doc["components"]["schemas"])


# ---------------------------------------------------------------------------------------- client mistakes


def _binary_body(header: dict[str, Any], *blobs: bytes) -> tuple[bytes, dict[str, str]]:
    js = orjson.dumps(header)
    return js + b"".join(blobs), {"Inference-Header-Content-Length": str(len(js))}


def _bytes_tensor(*values: str) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


ONE = pd.DataFrame({"age": [30.0], "income": [70.0], "plan": ["pro"]})
BIN_INPUTS = [
    {"name": "age", "datatype": "FP64", "shape": [1], "parameters": {"binary_data_size": 8}},
    {"name": "income", "datatype": "FP64", "shape": [1], "parameters": {"binary_data_size": 8}},
    {"name": "plan", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 7}},
]
F8 = struct.pack("<d", 1.0)

BAD_JSON: dict[str, tuple[Any, str]] = {
    "missing input": ({"inputs": tensors(ONE)[:2]}, "plan"),
    "extra input": ({"inputs": [*tensors(ONE), {"name": "zip", "datatype": "FP64", "shape": [1], "data": [1]}]}, "zip"),
    "wrong datatype": ({"inputs": tensors(ONE, age={"datatype": "INT64"})}, "age"),
    "unknown datatype": ({"inputs": tensors(ONE, age={"datatype": "FLOAT"})}, "age"),
    "string in numeric": ({"inputs": tensors(ONE, age={"data": ["thirty"]})}, "age"),
    "number in BYTES": ({"inputs": tensors(ONE, plan={"data": [3]})}, "plan"),
    "wrong shape": ({"inputs": tensors(ONE, age={"shape": [1, 2], "data": [1.0, 2.0]})}, "age"),
    "shape vs data": ({"inputs": tensors(ONE, age={"shape": [2]})}, "age"),
    "bad shape type": ({"inputs": tensors(ONE, age={"shape": "1"})}, "age"),
    "null in non-nullable": ({"inputs": tensors(ONE, income={"data": [None]})}, "income"),
    "rows differ": ({"inputs": tensors(ONE, age={"shape": [2], "data": [1.0, 2.0]})}, "like the other columns"),
    "no data": ({"inputs": [*tensors(ONE)[1:], {"name": "age", "datatype": "FP64", "shape": [1]}]}, "age"),
    "duplicate input": ({"inputs": [*tensors(ONE), tensors(ONE)[0]]}, "age"),
    "no inputs": ({"inputs": []}, "inputs"),
    "not an object": ([1, 2], "JSON object"),
    "unknown output": ({"inputs": tensors(ONE), "outputs": [{"name": "score"}]}, "score"),
    "zero rows": ({"inputs": tensors(ONE.head(0))}, "no rows"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_JSON), ids=list(BAD_JSON))
def test_bad_json_requests_are_400_naming_the_problem(client: httpx.Client, case: str) -> None:
    payload, needle = BAD_JSON[case]
    r = client.post("/v2/models/churn/infer", json=payload)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


BAD_RAW: dict[str, tuple[bytes, dict[str, str], str]] = {
    "malformed JSON": (b'{"inputs": [', {}, "malformed JSON"),
    "binary size too small": (
        *_binary_body({"inputs": [{**BIN_INPUTS[0], "parameters": {"binary_data_size": 4}}, *BIN_INPUTS[1:]]},
                      F8[:4], F8, _bytes_tensor("pro")),
        "age",
    ),
    "binary size past the end": (
        *_binary_body({"inputs": [{**BIN_INPUTS[0], "parameters": {"binary_data_size": 80}}, *BIN_INPUTS[1:]]},
                      F8, F8, _bytes_tensor("pro")),
        "age",
    ),
    "extra binary bytes": (*_binary_body({"inputs": BIN_INPUTS}, F8, F8, _bytes_tensor("pro"), b"xx"), "binary data"),
    "truncated BYTES element": (
        *_binary_body({"inputs": [*BIN_INPUTS[:2], {**BIN_INPUTS[2], "parameters": {"binary_data_size": 7}}]},
                      F8, F8, struct.pack("<I", 9) + b"pro"),
        "plan",
    ),
    "bad header length": (b'{"inputs": []}', {"Inference-Header-Content-Length": "9999"}, "Inference-Header"),
    "non-numeric header length": (b"{}", {"Inference-Header-Content-Length": "abc"}, "Inference-Header"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_RAW), ids=list(BAD_RAW))
def test_bad_raw_bodies_are_400(client: httpx.Client, case: str) -> None:
    body, headers, needle = BAD_RAW[case]
    r = client.post("/v2/models/churn/infer", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_good_binary_body_by_hand(client: httpx.Client, model_env: ModelEnv) -> None:
    body, headers = _binary_body(
        {"inputs": BIN_INPUTS, "parameters": {"binary_data_output": True}},
        struct.pack("<d", 30.0), struct.pack("<d", 70.0), _bytes_tensor("pro"),
    )  # fmt: skip
    r = client.post("/v2/models/churn/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    header = orjson.loads(r.content[:n])
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    label_raw, prob_raw = r.content[n : n + sizes[0]], r.content[n + sizes[0] :]
    want = expected(model_env, ONE)
    assert label_raw[4:].decode() == want["label"][0]
    assert struct.unpack("<d", prob_raw)[0] == pytest.approx(want["probability"][0], rel=1e-12)


def test_not_found_and_v1_mistakes(client: httpx.Client) -> None:
    body = {"inputs": tensors(ONE)}
    for path in ("/v2/models/nope/infer", "/v2/models/churn/versions/9/infer", "/v2/models/churn/versions/x/infer"):
        r = client.post(path, json=body)
        assert r.status_code == 404, (path, r.text)
    assert client.get("/v2/models/nope").status_code == 404
    assert client.get("/no/such/route").json() == {"error": "Not Found"}
    r = client.post("/v1/models/churn:predict", json={"instances": [{"age": 1.0, "income": 2.0}]})
    assert r.status_code == 400 and "plan" in r.json()["error"]
    extra = {"age": 1.0, "income": 2.0, "plan": "pro", "zip": 1}
    r = client.post("/v1/models/churn:predict", json={"instances": [extra]})
    assert r.status_code == 400 and "zip" in r.json()["error"]
    r = client.post("/v1/models/churn:predict", content=b"nope")
    assert r.status_code == 400
    assert client.post("/v1/models/nope:predict", json={"instances": [{}]}).status_code == 404


def test_oversized_bodies_are_413(client: httpx.Client) -> None:
    big = b'{"inputs": [' + b" " * (1024 * 1024 + 10) + b"]}"
    r = client.post("/v2/models/churn/infer", content=big)
    assert r.status_code == 413, r.text

    def chunks() -> Any:  # no Content-Length: the streamed bytes are counted
        for _ in range(40):
            yield b" " * 32768

    r = client.post("/v2/models/churn/infer", content=chunks())
    assert r.status_code == 413, r.text
    assert client.get("/v2/health/ready").status_code == 200


def test_stalled_body_times_out_instead_of_hanging(server: ServerProcess) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v2/models/churn/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"inputs"'
        )
        # Headers and body may arrive in separate packets: read until the server closes or the
        # expected text has arrived.
        response = b""
        while b"not completed within" not in response:
            chunk = sock.recv(4096)
            if not chunk:
                break
            response += chunk
    assert response.startswith(b"HTTP/1.1 504"), response
    assert b"not completed within 3 s" in response
    assert time.monotonic() - started < 8


# ---------------------------------------------------------------------------------------- batching, metrics


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_concurrent_requests_are_batched_and_each_gets_its_rows(server: ServerProcess, model_env: ModelEnv) -> None:
    frame = model_env.frame
    want = expected(model_env, frame)
    with httpx.Client(base_url=server.url) as c:
        before = c.get("/metrics").text

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as ac:
            bodies = [{"inputs": tensors(frame.iloc[[i]])} for i in range(len(frame))]
            return await asyncio.gather(*(ac.post("/v2/models/churn/infer", json=b) for b in bodies))

    responses = asyncio.run(run())
    with httpx.Client(base_url=server.url) as c:  # one client mistake of this test's own, counted below
        assert c.post("/v2/models/churn/infer", json={"inputs": tensors(frame.head(1))[:2]}).status_code == 400
    for i, r in enumerate(responses):
        assert r.status_code == 200, r.text
        out = {o["name"]: o["data"] for o in r.json()["outputs"]}
        assert out["label"] == [want["label"][i]]
        assert out["probability"][0] == pytest.approx(want["probability"][i], rel=1e-9)
    with httpx.Client(base_url=server.url) as c:
        after = c.get("/metrics").text
    batches = _metric(after, "parity_batch_size_requests_count") - _metric(before, "parity_batch_size_requests_count")
    requests = _metric(after, "parity_batch_size_requests_sum") - _metric(before, "parity_batch_size_requests_sum")
    assert requests == len(frame)
    assert batches < requests, "no batch merged more than one request"
    ok = _metric(after, "parity_requests_total", model="churn", code="200", protocol="v2") - _metric(
        before, "parity_requests_total", model="churn", code="200", protocol="v2"
    )
    assert ok == len(frame)
    errors = _metric(after, "parity_request_errors_total", code="400") - _metric(
        before, "parity_request_errors_total", code="400"
    )
    assert errors == 1
    assert "parity_request_latency_seconds_bucket" in after and "parity_queue_depth" in after
    assert "parity_lake_rows_total" in after
