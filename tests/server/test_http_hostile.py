"""Hostile HTTP clients against a real server, over raw sockets on 127.0.0.1 (every wait bounded).

Slow and idle clients (header/body timeouts, header cap, probes beside the connection limit),
cross-site requests (415, ``Host`` allow-list), ids and names a client controls (bounded), the
repository extension (no slot leak), and errors that must stay 4xx without revealing server paths.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from tests._servers import ServerProcess
from tests.server.conftest import ModelEnv, shared_server_args

LIMIT = 16  # --limit-concurrency of the server below
TOKEN = "hostile-test-token"  # the repository API (load/unload) is served only with a token
AUTH = {"authorization": f"Bearer {TOKEN}"}
ROW = {"age": 41.0, "income": 52.0, "plan": "pro"}


def infer_body(rows: int = 1, **request: Any) -> bytes:
    """A JSON OIP request of ``rows`` copies of ROW."""
    inputs = [
        {"name": "age", "datatype": "FP64", "shape": [rows], "data": [ROW["age"]] * rows},
        {"name": "income", "datatype": "FP64", "shape": [rows], "data": [ROW["income"]] * rows},
        {"name": "plan", "datatype": "BYTES", "shape": [rows], "data": [ROW["plan"]] * rows},
    ]
    return json.dumps({"inputs": inputs, **request}).encode()


@pytest.fixture(scope="module")
def guarded(model_env: ModelEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with 1 s header/body timeouts, a connection limit of 16 and the repository API (token)."""
    root = tmp_path_factory.mktemp("guarded")
    args = shared_server_args(model_env, root / "lake")
    args += ["--header-timeout", "1", "--body-timeout", "1", "--limit-concurrency", str(LIMIT)]
    args += ["--enable-repository-api"]
    proc = ServerProcess(args, root / "server.log", env={"PARITY_TOKEN": TOKEN})
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.terminate()


def connect(server: ServerProcess) -> socket.socket:
    """A raw TCP connection with a 10 s cap on every read."""
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (each read capped at 10 s)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def request(method: str, path: str, *, body: bytes = b"", host: str = "127.0.0.1", **headers: str) -> bytes:
    """Raw HTTP/1.1 request bytes (``Connection: close``)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close", f"Content-Length: {len(body)}"]
    headers = {"authorization": AUTH["authorization"], **headers}
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def exchange(server: ServerProcess, raw: bytes) -> bytes:
    """Send ``raw`` and return the whole response."""
    with connect(server) as sock:
        sock.sendall(raw)
        return read_until_closed(sock)


# ---------------------------------------------------------------------------------------- slow and idle clients


def test_a_connection_that_sends_nothing_is_closed(guarded: ServerProcess) -> None:
    with connect(guarded) as sock:
        response = read_until_closed(sock)  # main kept it open: the 10 s read cap raised TimeoutError
    assert response.startswith(b"HTTP/1.1 408"), response


def test_dripped_headers_are_cut_off(guarded: ServerProcess) -> None:
    raw = request("GET", "/v2/health/live")
    sent = 0
    with connect(guarded) as sock:
        sock.settimeout(0.25)
        response = b""
        for byte in raw[:-4]:  # never finish the headers
            try:
                sock.sendall(bytes([byte]))
                sent += 1
                response = sock.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if response or sent > 200:
                break
    # 0.25 s per byte: the 1 s header timeout fires after a handful of bytes, not at the end of the headers.
    assert response.startswith(b"HTTP/1.1 408"), (sent, response)
    assert sent < len(raw) - 4


@pytest.mark.parametrize(
    "path", ["/v2/repository/models/churn/load", "/v2/repository/index", "/v1/models/churn:predict"]
)
def test_a_declared_body_that_never_comes_is_cut_off(guarded: ServerProcess, path: str) -> None:
    head = request("POST", path, content_type="application/json").replace(b"Content-Length: 0", b"Content-Length: 50")
    with connect(guarded) as sock:
        sock.sendall(head + b"{")
        response = read_until_closed(sock)  # main: the load route waited for the body forever
    assert response.startswith(b"HTTP/1.1 408"), response


def test_header_bytes_are_capped(guarded: ServerProcess) -> None:
    response = exchange(guarded, request("GET", "/v2/health/live", x_padding="a" * (70 * 1024)))
    assert response.startswith(b"HTTP/1.1 431"), response[:200]
    many = {f"x_h{i}": "b" * 1000 for i in range(80)}  # 80 KB in many small headers
    response = exchange(guarded, request("GET", "/v2/health/live", **many))
    assert response.startswith(b"HTTP/1.1 431"), response[:200]
    assert exchange(guarded, request("GET", "/v2/health/live", x_small="ok")).startswith(b"HTTP/1.1 200")


def test_health_probes_answer_while_idle_sockets_fill_the_limit(guarded: ServerProcess) -> None:
    idle = [connect(guarded) for _ in range(LIMIT + 4)]
    try:
        time.sleep(0.2)  # let the server accept them all
        with httpx.Client(base_url=guarded.url, headers=AUTH, timeout=5) as client:
            assert client.get("/v2/health/live").status_code == 200
            assert client.get("/v2/health/ready").status_code == 200
            # Everything else is still bounded by the limit.
            assert client.post("/v2/models/churn/infer", content=infer_body()).status_code == 503
    finally:
        for sock in idle:
            sock.close()


# ---------------------------------------------------------------------------------------- cross-site requests


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "TEXT/PLAIN"]
)
@pytest.mark.parametrize(
    "path", ["/v2/models/churn/infer", "/v1/models/churn:predict", "/v2/repository/models/churn/unload"]
)
def test_browser_form_content_types_are_refused(guarded: ServerProcess, path: str, content_type: str) -> None:
    response = exchange(guarded, request("POST", path, body=infer_body(), content_type=content_type))
    assert response.startswith(b"HTTP/1.1 415"), response[:300]
    assert exchange(guarded, request("GET", "/v2/models/churn/ready")).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("content_type", [None, "application/json", "application/octet-stream"])
def test_json_octet_stream_and_no_content_type_are_accepted(guarded: ServerProcess, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content_type": content_type}
    response = exchange(guarded, request("POST", "/v2/models/churn/infer", body=infer_body(), **headers))
    assert response.startswith(b"HTTP/1.1 200"), response[:300]


def test_other_hosts_are_refused_when_bound_to_loopback(guarded: ServerProcess) -> None:
    for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example"):
        response = exchange(guarded, request("POST", "/v2/models/churn/infer", body=infer_body(), host=host))
        assert response.startswith(b"HTTP/1.1 400"), (host, response[:300])
        assert b"does not answer for host" in response
        assert exchange(guarded, request("GET", "/v2", host=host)).startswith(b"HTTP/1.1 400")
    for host in ("localhost", f"localhost:{guarded.port}", f"127.0.0.1:{guarded.port}", "[::1]:80"):
        response = exchange(guarded, request("POST", "/v2/models/churn/infer", body=infer_body(), host=host))
        assert response.startswith(b"HTTP/1.1 200"), (host, response[:300])
    # Probes come from the kubelet with the pod's address as Host: they are not checked.
    assert exchange(guarded, request("GET", "/v2/health/ready", host="10.1.2.3")).startswith(b"HTTP/1.1 200")


def test_allowed_hosts_option(start_server: type[ServerProcess], model_env: ModelEnv, tmp_path: Path) -> None:
    args = [*shared_server_args(model_env, tmp_path / "lake"), "--allowed-hosts", "models.example,*.svc.local"]
    server = start_server(args)
    server.wait_ready()
    with httpx.Client(base_url=server.url, timeout=5) as client:
        assert client.get("/v2", headers={"host": "models.example"}).status_code == 200
        assert client.get("/v2", headers={"host": "churn.ns.svc.local:8080"}).status_code == 200
        assert client.get("/v2", headers={"host": "localhost"}).status_code == 400


# ---------------------------------------------------------------------------------------- bounded ids and names


def test_a_huge_request_id_is_cut_to_128_characters(guarded: ServerProcess) -> None:
    with httpx.Client(base_url=guarded.url, headers=AUTH, timeout=10) as client:
        r = client.post(
            "/v2/models/churn/infer", content=infer_body(id="i" * 100_000), headers={"x-request-id": "h" * 50_000}
        )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "h" * 128
    assert r.json()["id"] == "i" * 128


def test_unknown_model_errors_neither_echo_huge_names_nor_reveal_paths(
    guarded: ServerProcess, model_env: ModelEnv
) -> None:
    with httpx.Client(base_url=guarded.url, headers=AUTH, timeout=10) as client:
        r = client.post(f"/v2/models/{'n' * 20_000}/infer", content=infer_body())
        assert r.status_code == 404 and len(r.text) < 1000, r.text[:300]
        r = client.post("/v2/repository/models/nope/load")
        assert r.status_code == 404, r.text
        assert "nope" in r.json()["error"]
        assert str(model_env.registry_root) not in r.text


def test_deep_nesting_is_a_client_error(guarded: ServerProcess) -> None:
    deep = "[" * 980 + "1.0" + "]" * 980  # built as text: json.dumps itself would recurse too deep
    v1 = '{"instances": [{"age": ' + deep + ', "income": 52.0, "plan": "pro"}]}'
    oip = infer_body().decode().replace('"data": [41.0]', f'"data": [{deep}]', 1)
    with httpx.Client(base_url=guarded.url, headers=AUTH, timeout=10) as client:
        for path, body in (("/v1/models/churn:predict", v1), ("/v2/models/churn/infer", oip)):
            r = client.post(path, content=body.encode())
            assert 400 <= r.status_code < 500, (path, r.text[:300])


# ---------------------------------------------------------------------------------------- repository extension


def test_reloading_the_same_ref_does_not_add_slots(guarded: ServerProcess) -> None:
    with httpx.Client(base_url=guarded.url, headers=AUTH, timeout=30) as client:
        for _ in range(30):
            assert client.post("/v2/repository/models/churn:1/load").status_code == 200
        index = client.post("/v2/repository/index").json()
    # churn@production (configured) + churn:1: main had one slot per load call (31).
    assert len([m for m in index if m["name"] == "churn"]) == 2, index


def test_lake_keeps_capped_ids(guarded: ServerProcess, tmp_path: Path) -> None:
    lake = Path(str(guarded.log_path)).parent / "lake"
    rid = "z" * 5000
    with httpx.Client(base_url=guarded.url, headers=AUTH, timeout=10) as client:
        assert client.post("/v2/models/churn/infer", content=infer_body(300), headers={"x-request-id": rid}).is_success
    deadline = time.monotonic() + 15  # the lake flushes every 2 s
    ids: list[str] = []
    while time.monotonic() < deadline and "z" * 128 not in ids:
        time.sleep(0.5)
        ids = [
            i
            for f in lake.rglob("*.parquet")
            for i in pq.read_table(f, columns=["request_id"])["request_id"].to_pylist()
        ]
    assert ids.count("z" * 128) == 300
    assert max(len(i) for i in ids) <= 128
