"""Server lifecycle: bearer token, repository extension, SIGTERM + lake, hot reload, workers."""

from __future__ import annotations

import asyncio
import io
import json
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tritonclient.http as triton

from parity._io import sha256_bytes
from parity.artifact import SAMPLE_FILE, Artifact
from parity.lake import read_lake
from parity.registry import Registry
from tests._servers import ServerProcess, make_certificate
from tests.server.conftest import ModelEnv, fit_pipeline, package
from tests.server.test_rest import ONE, tensors


def _infer_body(rows: Any) -> dict[str, Any]:
    return {"inputs": tensors(rows)}


def test_token_and_repository_extension(start_server: type[ServerProcess], model_env: ModelEnv) -> None:
    server = start_server(
        ["churn@production", "--registry", str(model_env.registry_root), "--lake", "none", "--enable-repository-api"],
        env={"PARITY_TOKEN": "s3cret"},
    )
    server.wait_ready()
    auth = {"Authorization": "Bearer s3cret"}
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.get("/v2/health/live").status_code == 200  # probes need no token
        assert c.get("/v2/health/ready").status_code == 200
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic s3cret"}):
            r = c.get("/v2", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert c.post("/v2/models/churn/infer", json=_infer_body(ONE), headers=headers).status_code == 401
            assert c.get("/metrics", headers=headers).status_code == 401
        assert c.get("/v2", headers=auth).status_code == 200
        assert c.post("/v2/models/churn/infer", json=_infer_body(ONE), headers=auth).status_code == 200

        tc = triton.InferenceServerClient(server.url.removeprefix("http://"))
        try:
            assert tc.get_model_metadata("churn", headers=auth)["name"] == "churn"
            index = tc.get_model_repository_index(headers=auth)
            assert {"name": "churn", "version": "1", "state": "READY", "reason": ""} in index
            tc.unload_model("churn", headers=auth)
            assert c.post("/v2/models/churn/infer", json=_infer_body(ONE), headers=auth).status_code == 404
            assert "unloaded" in c.get("/v2/models/churn", headers=auth).json()["error"]
            # With its only model unloaded the server serves nothing: not ready (a load balancer must skip it).
            assert c.get("/v2/health/ready").status_code == 503
            tc.load_model("churn", headers=auth)
            assert tc.is_model_ready("churn", headers=auth)
            assert c.get("/v2/health/ready").status_code == 200
        finally:
            tc.close()
        assert c.post("/v2/models/churn/infer", json=_infer_body(ONE), headers=auth).status_code == 200
        assert c.post("/v2/repository/models/nope/load", headers=auth).status_code == 404
        assert c.post("/v2/repository/models/bad..name!/load", headers=auth).status_code == 400
        assert c.post("/v2/repository/models/churn/load").status_code == 401


def test_sigterm_under_load_loses_no_lake_record(
    start_server: type[ServerProcess], model_env: ModelEnv, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    server = start_server(["churn@production", "--registry", str(model_env.registry_root), "--lake", str(lake)])
    server.wait_ready()
    frame = model_env.frame
    ok: dict[str, int] = {}

    async def one(client: httpx.AsyncClient, i: int) -> None:
        rows = frame.iloc[[i % len(frame), (i * 7) % len(frame)]] if i % 3 == 0 else frame.iloc[[i % len(frame)]]
        rid = f"req-{i}"
        try:
            r = await client.post("/v2/models/churn/infer", json=_infer_body(rows), headers={"X-Request-ID": rid})
        except httpx.TransportError:
            return  # the server closed: this request never got an answer, so it need not be logged
        if r.status_code == 200:
            ok[rid] = len(rows)

    async def load() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            # Phase 1: requests that all complete.
            await asyncio.gather(*(one(client, i) for i in range(60)))
            assert len(ok) == 60
            # Phase 2: a steady stream, interrupted by SIGTERM.
            tasks = []
            for i in range(60, 100_000):
                tasks.append(asyncio.ensure_future(one(client, i)))
                if i == 160:
                    server.proc.send_signal(15)
                if server.proc.poll() is not None:
                    break
                await asyncio.sleep(0.002)
            await asyncio.gather(*tasks)

    asyncio.run(load())
    assert server.terminate() == 0, server.log()
    table = read_lake(lake)
    assert table.num_rows == sum(ok.values()), server.log()
    ids, counts = np.unique(table.column("request_id").to_numpy(zero_copy_only=False), return_counts=True)
    logged = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    assert logged == ok
    assert len(ok) > 100
    assert table.column_names[:6] == ["ts", "model", "model_version", "request_id", "row", "latency_ms"]
    assert table.column_names[6:] == ["age", "income", "plan", "output.label", "output.probability"]
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert set(table.column("model_version").to_pylist()) == {1}
    # The lake holds the raw inputs (nulls included) and the served outputs of each row.
    first = table.filter(pa.compute.equal(table["request_id"], "req-1")).to_pylist()[0]
    want = model_env.artifact.predict(frame.iloc[[1]].reset_index(drop=True))
    assert first["output.label"] == want["label"][0] and first["income"] == frame["income"][1]
    assert not list(lake.rglob(".*.tmp"))


def _failing_copy(artifact: Artifact) -> Artifact:
    """Same model, but its stored parity sample expects other probabilities: verify() fails."""
    table = pq.read_table(io.BytesIO(artifact.file_bytes(SAMPLE_FILE)))
    col = table.column_names.index("expected.probability")
    table = table.set_column(col, "expected.probability", pa.compute.add(table.column(col), 0.25))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    files = {name: artifact.file_bytes(name) for name in artifact.manifest["files"]}
    files[SAMPLE_FILE] = buf.getvalue()
    manifest = dict(artifact.manifest)
    manifest["files"] = {n: {"sha256": sha256_bytes(b), "size": len(b)} for n, b in sorted(files.items())}
    return Artifact(manifest, files, artifact.runtime)


def test_hot_reload_swaps_without_failures_and_refuses_a_bad_version(
    start_server: type[ServerProcess], model_env: ModelEnv, tmp_path: Path
) -> None:
    registry = Registry(tmp_path / "home")
    registry.push(model_env.artifact_dir)
    registry.set_alias("churn", "production", 1)
    server = start_server(
        ["churn@production", "--registry", str(tmp_path / "home"), "--lake", "none", "--reload-interval", "0.1"]
    )
    v2 = package(fit_pipeline(model_env.frame, flip=True), model_env.frame)
    bad = _failing_copy(v2)
    rows = model_env.frame.head(5)
    body = _infer_body(rows)
    server.wait_ready()

    failures: list[str] = []
    seen: list[tuple[str, list[str]]] = []
    stop = threading.Event()

    def client_loop() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            while not stop.is_set():
                r = c.post("/v2/models/churn/infer", json=body)
                if r.status_code != 200:
                    failures.append(r.text)
                    continue
                data = r.json()
                seen.append((data["model_version"], data["outputs"][0]["data"]))

    thread = threading.Thread(target=client_loop)
    thread.start()
    try:
        _wait(lambda: len(seen) >= 3, "requests answered by version 1")
        registry.set_alias("churn", "production", registry.push(v2).version)
        _wait(lambda: seen and seen[-1][0] == "2", "version 2 to be served")
        registry.set_alias("churn", "production", registry.push(bad).version)
        with httpx.Client(base_url=server.url, timeout=10) as c:
            failed = 'parity_reload_failures_total{model="churn"} 1.0'
            _wait(lambda: failed in c.get("/metrics").text, "the reload failure metric")
            metrics = c.get("/metrics").text
            index = c.post("/v2/repository/index").json()
            meta = c.get("/v2/models/churn").json()
        answered = len(seen)
        _wait(lambda: len(seen) >= answered + 5, "more requests after the refused reload")
    finally:
        stop.set()
        thread.join()
    assert failures == []
    versions = [v for v, _ in seen]
    assert versions[0] == "1" and versions[-1] == "2" and set(versions) == {"1", "2"}
    assert versions == sorted(versions)  # once swapped, never back
    assert seen[-1][1] == v2.predict(rows.reset_index(drop=True))["label"].tolist()
    assert seen[0][1] == model_env.artifact.predict(rows.reset_index(drop=True))["label"].tolist()
    assert 'parity_model_active_version{model="churn"} 2.0' in metrics
    assert meta["versions"] == ["2"]
    assert index[0]["version"] == "2" and "smoke check" in index[0]["reason"]
    assert "refused, still serving 2" in server.log()


def _wait(predicate: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _access_log_pids(server: ServerProcess) -> set[int]:
    """PIDs of the processes that logged an answered /infer request (uvicorn's access log)."""
    pids = set()
    for line in server.log().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("logger") == "uvicorn.access" and "/infer" in record.get("msg", ""):
                pids.add(int(record["pid"]))
    return pids


def test_workers_answer_from_two_processes_on_one_port(
    start_server: type[ServerProcess], model_env: ModelEnv, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    server = start_server(
        [str(model_env.artifact_dir), "--registry", str(model_env.registry_root), "--lake", str(lake), "--workers", "2",
         "--access-log"]
    )  # fmt: skip
    server.wait_ready()
    sent = 0
    with httpx.Client(base_url=server.url, timeout=10) as c:
        # Each request on a new connection; the kernel hands connections to whichever worker accepts
        # first, so keep going until both have answered (bounded).
        while sent < 400 and (sent < 20 or len(_access_log_pids(server)) < 2):
            for _ in range(10):
                r = c.post("/v2/models/churn/infer", json=_infer_body(ONE), headers={"Connection": "close"})
                assert r.status_code == 200 and r.json()["model_version"] == "1"  # the path ref resolves to churn:1
                sent += 1
    pids = _access_log_pids(server)
    assert len(pids) == 2, f"answered by {pids} after {sent} requests"
    assert server.proc.pid not in pids  # the supervisor only supervises
    assert server.terminate() == 0
    assert read_lake(lake).num_rows == sent
    # Each worker writes its own lake files, so at least one file per worker.
    assert len(list(lake.rglob("part-*.parquet"))) >= 2


def test_rest_over_tls(start_server: type[ServerProcess], model_env: ModelEnv, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    server = start_server(
        [str(model_env.artifact_dir), "--lake", "none", "--tls-cert", str(cert), "--tls-key", str(key)]
    )
    context = ssl.create_default_context(cafile=str(cert))
    server.probe = lambda: _probe_tls(server, context)  # type: ignore[method-assign]
    server.wait_ready()
    with httpx.Client(base_url=f"https://127.0.0.1:{server.port}", verify=context, timeout=10) as c:
        r = c.post("/v2/models/churn/infer", json=_infer_body(ONE))
        assert r.status_code == 200 and r.json()["model_name"] == "churn"
    with httpx.Client(base_url=server.url, timeout=5) as plain, pytest.raises(httpx.TransportError):
        plain.get("/v2/health/ready")


def _probe_tls(server: ServerProcess, context: ssl.SSLContext) -> bool:
    try:
        r = httpx.get(f"https://127.0.0.1:{server.port}/v2/health/ready", verify=context, timeout=1.0)
    except httpx.TransportError:
        return False
    return r.status_code == 200


def test_a_taken_port_restarts_the_server_on_fresh_ports(
    model_env: ModelEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from tests import _servers

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = int(blocker.getsockname()[1])
        ports = iter([taken])
        real = _servers.free_port
        monkeypatch.setattr(_servers, "free_port", lambda: next(ports, None) or real())
        server = ServerProcess([str(model_env.artifact_dir), "--lake", "none"], tmp_path / "server.log")
        try:
            server.wait_ready()
            assert server.restarts == 1 and server.port != taken
            assert httpx.post(server.url + "/v2/models/churn/infer", json=_infer_body(ONE)).status_code == 200
        finally:
            assert server.terminate() == 0
