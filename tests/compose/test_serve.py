"""The composition service as real processes: two model servers + `parity compose serve`, over REST V1, V2 and gRPC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from parity.compose import CompositionError, explain
from parity.proto import open_inference_grpc_pb2 as pb
from parity.proto import open_inference_grpc_pb2_grpc as pb_grpc
from tests.compose.conftest import RULES, Models, Stack, compose_server, model_server
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
        assert 'parity_requests_total{code="200",model="retention",protocol="v2",version="1"}' in metrics

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


def _metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_killing_a_model_server_falls_back_opens_the_breaker_and_recovers(
    models: Models, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("compose-kill")
    churn, spend = model_server(models, "churn", tmp), model_server(models, "spend", tmp)
    procs = [churn, spend]
    try:
        churn.wait_ready()
        spend.wait_ready()
        env = {"TEST_CHURN_URL": churn.url, "TEST_SPEND_URL": f"grpc://127.0.0.1:{spend.grpc_port}"}
        comp = compose_server(env, tmp / "lake", tmp)
        procs.append(comp)
        comp.wait_ready()
        records = _records(models, 3)
        results: list[tuple[int, dict[str, Any], float]] = []
        hung: list[BaseException] = []
        lock = threading.Lock()
        killed = threading.Event()

        def load(n: int) -> None:
            # Client timeout well above the composition's 2 s deadline: hitting it means a hang.
            with httpx.Client(base_url=comp.url, timeout=6.0) as client:
                for _ in range(n):
                    t0 = time.monotonic()
                    try:
                        r = client.post("/v1/models/retention:predict", json={"instances": records})
                    except httpx.TimeoutException as exc:
                        with lock:
                            hung.append(exc)
                        continue
                    with lock:
                        results.append((r.status_code, r.json(), time.monotonic() - t0))

        threads = [threading.Thread(target=load, args=(60,)) for _ in range(4)]
        for t in threads:
            t.start()
        while len(results) < 40:
            time.sleep(0.01)
        spend.kill()
        killed.set()
        for t in threads:
            t.join(60)
        assert not hung, f"{len(hung)} request(s) hung"
        assert len(results) == 240
        statuses = {s for s, _, _ in results}
        assert statuses <= {200, 502, 504}, statuses
        fallbacks = [b for s, b, _ in results if s == 200 and b.get("parameters", {}).get("composition_fallback")]
        assert fallbacks, "no request answered with the fallback after the spend server died"
        assert all(b["parameters"]["composition_fallback"] == "spend=default" for b in fallbacks)
        assert all(p["value"] == pytest.approx(0.0) for b in fallbacks for p in b["predictions"])
        assert max(elapsed for _, _, elapsed in results) < 2.0 + 1.0  # within the deadline, plus transport
        with httpx.Client(base_url=comp.url, timeout=5) as client:
            metrics = client.get("/metrics").text
            assert _metric(metrics, 'parity_compose_breaker_opened_total{downstream="spend"}') >= 1
            assert _metric(metrics, 'parity_compose_fallbacks_total{endpoint="spend",kind="default"}') >= 1
            # A downstream with a fallback is not required: the composition stays ready.
            assert client.get("/v2/health/ready").status_code == 200

            spend.restart()  # the same ports again
            spend.wait_ready()
            recovered = False
            for _ in range(200):
                r = client.post("/v1/models/retention:predict", json={"instances": records})
                if r.status_code == 200 and "composition_fallback" not in r.json().get("parameters", {}):
                    recovered = True
                    break
                time.sleep(0.05)
            assert recovered, "the breaker never closed after the spend server came back"
            metrics = client.get("/metrics").text
            assert _metric(metrics, 'parity_compose_breaker_state{downstream="spend",state="closed"}') == 1.0

            churn.kill()  # no fallback: a 502 naming the model, within the deadline
            t0 = time.monotonic()
            r = client.post("/v1/models/retention:predict", json={"instances": records})
            assert time.monotonic() - t0 < 3.0
            assert r.status_code in (502, 504), r.text
            assert "churn" in r.json()["error"]
            for _ in range(100):  # the readiness poll notices the required downstream is gone
                if client.get("/v2/health/ready").status_code == 503:
                    break
                time.sleep(0.05)
            assert client.get("/v2/health/ready").status_code == 503
    finally:
        for p in reversed(procs):
            p.terminate()


def _cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "parity.cli", *args], capture_output=True, text=True, env=full, timeout=120
    )


def _wait_for(request_id: str, lake: Any) -> dict[str, Any]:
    for _ in range(100):  # the lake flushes every 2 s
        try:
            return explain(lake, request_id)
        except CompositionError:
            time.sleep(0.1)
    raise AssertionError(f"request {request_id} never reached the lake")


def test_explain_replay_and_skew_on_the_composition_lake(stack: Stack, models: Models, tmp_path: Any) -> None:
    records = _records(models, 40)
    with httpx.Client(base_url=stack.compose.url, timeout=10) as client:
        for i in range(0, 40, 4):
            r = client.post(
                "/v1/models/retention:predict",
                json={"instances": records[i : i + 4]},
                headers={"x-request-id": f"req-{i}"},
            )
            assert r.status_code == 200
    found = _wait_for("req-36", stack.lake)
    want = _expected(models, records[36:40])
    assert [row["decision"]["decision"] for row in found["rows"]] == [w["decision"] for w in want]
    churn = found["rows"][0]["downstreams"]["churn"]
    assert churn["model"] == "churn" and churn["version"] == "1" and churn["route"] == "primary"
    assert churn["fallback"] == "" and churn["latency_ms"] > 0
    assert churn["outputs"]["probability"] == pytest.approx(
        float(models.churn.predict(models.frame.iloc[36:37])["probability"].iloc[0])
    )

    shown = _cli(["compose", "explain", "req-36", "--lake", str(stack.lake)])
    assert shown.returncode == 0, shown.stderr
    assert "churn" in shown.stdout and "spend" in shown.stdout and "decision" in shown.stdout
    missing = _cli(["compose", "explain", "no-such-request", "--lake", str(stack.lake)])
    assert missing.returncode == 8 and "no-such-request" in missing.stderr

    for _ in range(100):  # every request of this test is in the lake
        if all(explain(stack.lake, f"req-{i}") for i in range(0, 40, 4)):
            break
    same = _cli(["compose", "replay", f"{RULES}:composition", "--lake", str(stack.lake), "--json"], stack.env)
    assert same.returncode == 0, same.stderr
    report = json.loads(same.stdout)
    assert report["rows"] >= 40 and report["changed_rows"] == 0
    changed = _cli(
        ["compose", "replay", f"{RULES}:composition", "--lake", str(stack.lake), "--json"],
        {**stack.env, "TEST_THRESHOLD": "0.2"},
    )
    report = json.loads(changed.stdout)
    expected_changes = sum(
        1 for a, b in zip(_expected(models, records), _expected_at(models, records, 0.2), strict=True) if a != b
    )
    assert expected_changes > 0
    assert report["changed_rows"] >= expected_changes  # at least this test's rows change (earlier tests logged more)
    assert report["examples"][0]["before"] != report["examples"][0]["after"]

    reference_data = tmp_path / "reference.csv"
    models.frame.to_csv(reference_data, index=False)
    ref = tmp_path / "retention-ref.json"
    made = _cli(
        ["compose", "reference", f"{RULES}:composition", "--data", str(reference_data), "--out", str(ref)], stack.env
    )
    assert made.returncode == 0, made.stderr
    skew = _cli(["skew", str(ref), "--data", str(stack.lake), "--json", "-", "--min-rows", "10"])
    assert skew.returncode == 0, skew.stderr
    doc = json.loads(skew.stdout)
    features = {f["name"] for f in doc["features"]}
    assert {"age", "plan", "churn.probability", "spend.prediction", "output.decision"} <= features
    assert doc["model"] == "retention"
    assert "lineage." not in json.dumps(doc.get("schema", []))


def _expected_at(models: Models, records: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    comp = build("http://127.0.0.1:9", "grpc://127.0.0.1:9", threshold=threshold)
    try:
        return comp.run(records, models={"churn": models.churn, "spend": models.spend}).rows()
    finally:
        comp.close()


def test_a_downstream_4xx_is_a_4xx_naming_the_model(stack: Stack) -> None:
    # The composition accepts a missing income (nullable); the churn model does not: its 400 comes back.
    with httpx.Client(base_url=stack.compose.url, timeout=10) as client:
        r = client.post(
            "/v1/models/retention:predict", json={"instances": [{"age": 40, "income": None, "plan": "pro"}]}
        )
        assert r.status_code == 400, r.text
        assert "churn" in r.json()["error"] and "income" in r.json()["error"]
