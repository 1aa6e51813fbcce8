"""Admission control against a real server: past ``--max-inflight`` requests are refused at once (503 with
``Retry-After``, gRPC ``UNAVAILABLE``) while the admitted ones are answered in full; the limit is per model.

Functional assertions only: which answers come back and what they say, never how fast.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as tgrpc
from tritonclient.utils import InferenceServerException

from tests._servers import ServerProcess, free_port
from tests.server.conftest import ModelEnv, make_frame, trusted_env
from tests.server.slow_step import SLOW_MARKER
from tests.server.test_metrics import _grpc_inputs
from tests.server.test_operability import _metric_sum
from tests.server.test_rest import expected, tensors


def _request(port: int, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer (status, lower-cased headers, body) from a keep-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1 << 16)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(1 << 16)
        assert chunk, "the server closed the connection"
        body += chunk
    return int(lines[0].split(" ")[1]), headers, body


def test_a_burst_beyond_the_limit_is_refused_and_the_admitted_are_answered(
    start_server: type[ServerProcess], model_env: ModelEnv
) -> None:
    # --max-batch-size 1: every request runs alone, inline on the event loop, so an admitted request
    # holds the loop from its slot to its answer. Counted only around the model run, the limit was
    # never reached by such requests (nothing was ever refused); counted from before decoding, a
    # burst that arrives together is refused beyond the limit.
    server = start_server(
        [str(model_env.artifact_dir), "--lake", "none", "--max-inflight", "2", "--max-batch-size", "1"]
    )
    server.wait_ready()
    rows = make_frame(40, seed=11)
    want = expected(model_env, rows)
    request = _request(server.port, "/v2/models/churn/infer", orjson.dumps({"inputs": tensors(rows)}))
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(12)]
    statuses: list[int] = []
    try:
        for _ in range(30):  # bursts until one arrives together (one usually does at once)
            for sock in socks:  # all sent before any answer is read
                sock.sendall(request)
            burst = [_read_answer(sock) for sock in socks]
            statuses += [status for status, _, _ in burst]
            for status, headers, body in burst:
                assert status in (200, 503), (status, body)
                if status == 503:
                    assert headers["retry-after"] == "1"
                    assert "2 requests in flight" in orjson.loads(body)["error"]
                else:  # an admitted request is answered in full and right
                    outputs = {o["name"]: o["data"] for o in orjson.loads(body)["outputs"]}
                    assert set(outputs) == set(want.columns)
                    for name, values in outputs.items():
                        if want[name].dtype == object:
                            assert values == want[name].tolist(), name
                        else:
                            np.testing.assert_allclose(np.asarray(values, dtype=float), want[name].to_numpy(float))
            if 503 in statuses and statuses.count(200) >= 2:
                break
    finally:
        for sock in socks:
            sock.close()
    assert 503 in statuses and 200 in statuses, statuses
    # Every answer is counted under its code (no refusal goes unseen by the metrics).
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for code in (200, 503):
        assert _metric_sum(text, "parity_requests_total", code=str(code), protocol="v2") == statuses.count(code)
    assert _metric_sum(text, "parity_requests_in_flight", model="churn") == 0  # every slot was given back


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_a_model_at_its_limit_refuses_on_every_protocol_while_others_serve(
    start_server: type[ServerProcess], model_env: ModelEnv, slow_dir: Path, protocol: str
) -> None:
    admin_port = free_port()
    server = start_server(
        [
            str(model_env.artifact_dir), str(slow_dir), "--trusted", "--lake", "none", "--max-inflight", "1",
            "--request-timeout", "5", "--admin-port", str(admin_port),
        ],
        env=trusted_env(),
        grpc=True,
    )  # fmt: skip
    server.wait_ready()
    marked = make_frame(3000, seed=5)  # more rows than run inline: the slow run takes a thread, the loop is free
    marked.loc[marked.index[0], "income"] = SLOW_MARKER
    holder: dict[str, Any] = {}

    def hold() -> None:  # takes the slow model's only slot until its 5 s deadline: 504
        with httpx.Client(base_url=server.url, timeout=30) as c:
            holder["status"] = c.post("/v2/models/slow/infer", json={"inputs": tensors(marked)}).status_code

    thread = threading.Thread(target=hold)
    thread.start()
    small = make_frame(50, seed=6).iloc[:3]
    refused: list[Any] = []
    served: list[Any] = []
    with httpx.Client(base_url=server.url, timeout=30) as c, httpx.Client(timeout=5) as admin:
        metrics = f"http://127.0.0.1:{admin_port}/metrics"
        while thread.is_alive() and _metric_sum(admin.get(metrics).text, "parity_requests_in_flight", model="slow") < 1:
            time.sleep(0.01)  # polling interval of a wait on a condition (the slot is taken), not a sync sleep
        if protocol == "rest":
            r = c.post("/v2/models/slow/infer", json={"inputs": tensors(small)})
            v1 = c.post("/v1/models/slow:predict", json={"instances": orjson.loads(small.to_json(orient="records"))})
            ok = c.post("/v2/models/churn/infer", json={"inputs": tensors(small)})
            refused += [(r.status_code, r.headers.get("retry-after"), r.json()["error"]), (v1.status_code,)]
            served.append(ok.status_code)
        else:
            client = tgrpc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
            try:
                try:
                    client.infer("slow", _grpc_inputs(small))
                except InferenceServerException as exc:
                    refused.append((exc.status(), "in flight" in str(exc.message())))
                served.append(client.infer("churn", _grpc_inputs(small)).as_numpy(_first_output(model_env)).shape)
            finally:
                client.close()
        still_held = thread.is_alive()
    thread.join()
    assert still_held, "the probes ran while the slot was held"
    assert holder["status"] == 504
    if protocol == "rest":
        assert refused[0][:2] == (503, "1") and "1 requests in flight" in refused[0][2], refused
        assert refused[1] == (503,)
        assert served == [200]  # the limit is per model: churn is not held up by slow
    else:
        assert refused == [("StatusCode.UNAVAILABLE", True)]
        assert served == [(3,)]
    text = httpx.get(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).text
    label = "grpc" if protocol == "grpc" else "v2"
    assert _metric_sum(text, "parity_requests_total", model="slow", code="503", protocol=label) == 1


def _first_output(model_env: ModelEnv) -> str:
    return model_env.artifact.signature.output_names[0]
