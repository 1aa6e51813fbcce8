"""The composition service as real processes: two model servers + `parity compose serve`, over REST V1, V2 and gRPC."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import numpy as np

from parity.proto import open_inference_grpc_pb2 as pb
from parity.proto import open_inference_grpc_pb2_grpc as pb_grpc
from tests.compose.conftest import Models, Stack
from tests.compose.rules_app import build


def _records(models: Models, n: int = 25) -> list[dict[str, Any]]:
    """Rows as a client sends them: NaN for a missing number becomes null, a missing plan null."""
    rows = models.frame.head(n).to_dict("records")
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in rows]


def _expected(models: Models, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The business rule applied to in-process predictions of the same artifacts."""
    comp = build("http://127.0.0.1:9", "grpc://127.0.0.1:9")
    try:
        return comp.run(records, models={"churn": models.churn, "spend": models.spend}).rows()
    finally:
        comp.close()


def _close(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [g["decision"] for g in got] == [w["decision"] for w in want]
    np.testing.assert_allclose([g["value"] for g in got], [w["value"] for w in want], rtol=1e-12)


def test_v1_v2_and_grpc_answer_the_rule_over_in_process_predictions(stack: Stack, models: Models) -> None:
    records = _records(models)
    want = _expected(models, records)
    assert {w["decision"] for w in want} >= {"ignore"}  # the rule is exercised, not constant
    with httpx.Client(base_url=stack.compose.url, timeout=10) as client:
        v1 = client.post("/v1/models/retention:predict", json={"instances": records})
        assert v1.status_code == 200, v1.text
        _close(v1.json()["predictions"], want)
        assert v1.json()["parameters"]["composition_routes"] == "churn=primary,spend=primary"

        cols = {k: [r[k] for r in records] for k in ("age", "income", "plan")}
        dtypes = {"age": "FP64", "income": "FP64", "plan": "BYTES"}
        body = {"inputs": [{"name": k, "datatype": dtypes[k], "shape": [len(v)], "data": v} for k, v in cols.items()]}
        v2 = client.post("/v2/models/retention/infer", json=body, headers={"x-request-id": "v2-req-1"})
        assert v2.status_code == 200, v2.text
        out = {t["name"]: t["data"] for t in v2.json()["outputs"]}
        _close([{"decision": d, "value": v} for d, v in zip(out["decision"], out["value"], strict=True)], want)
        assert v2.headers["x-request-id"] == "v2-req-1"
        assert v2.json()["model_name"] == "retention"

        meta = client.get("/v2/models/retention").json()
        assert [t["name"] for t in meta["inputs"]] == ["age", "income", "plan"]
        assert client.get("/v2/health/ready").status_code == 200
        metrics = client.get("/metrics").text
        assert 'parity_compose_breaker_state{downstream="spend",state="closed"} 1.0' in metrics
        assert 'parity_requests_total{model="retention",protocol="rest",status="200",version="1"}' in metrics

    with grpc.insecure_channel(f"127.0.0.1:{stack.compose.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="retention", id="grpc-1")
        for name, dt in dtypes.items():
            tensor = request.inputs.add(name=name, datatype=dt, shape=[len(records)])
            if dt == "BYTES":
                tensor.contents.bytes_contents.extend(("\ue000" if v is None else v).encode() for v in cols[name])
            else:
                tensor.contents.fp64_contents.extend(float("nan") if v is None else v for v in cols[name])
        reply = stub.ModelInfer(request, timeout=10)
        got = {o.name: o for o in reply.outputs}
        decisions = [b.decode() for b in got["decision"].contents.bytes_contents]
        values = list(got["value"].contents.fp64_contents)
        _close([{"decision": d, "value": v} for d, v in zip(decisions, values, strict=True)], want)
        assert reply.parameters["composition_routes"].string_param == "churn=primary,spend=primary"


def test_bad_input_is_a_400_naming_the_field(stack: Stack) -> None:
    with httpx.Client(base_url=stack.compose.url, timeout=10) as client:
        r = client.post(
            "/v1/models/retention:predict", json={"instances": [{"age": "old", "income": 1, "plan": "pro"}]}
        )
        assert r.status_code == 400
        assert "age" in r.json()["error"]
        r = client.post("/v1/models/retention:predict", json={"instances": [{"agee": 1, "income": 1, "plan": "pro"}]})
        assert r.status_code == 400 and "age" in r.json()["error"]
