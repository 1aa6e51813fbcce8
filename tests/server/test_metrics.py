"""Metrics tell what clients saw: per status code, the server counts every request a client sent and
its latency sums match the client's own clock within 5% (200, 401, 503 and 504 included).

A real ``parity serve`` process on 127.0.0.1, a real HTTP client timing each request from before
it sends the first byte until it has read the last one, then one scrape of the admin port. The
server's clock runs from the first parsed byte until the answer's last byte went to the socket, so
what it cannot see is the client's own work and the time the request waits in the kernel before the
event loop reads it (see docs/serving.md, "Metrics").
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import tritonclient.grpc as tgrpc
from tritonclient.utils import InferenceServerException

from tests._servers import ServerProcess, free_port
from tests.server.conftest import ModelEnv, make_frame, trusted_env
from tests.server.slow_step import SLOW_MARKER
from tests.server.test_operability import _metric_sum, _scrape
from tests.server.test_rest import tensors

TOKEN = "metrics-tok"
ROWS = 20_000  # an answer that takes tens of milliseconds to decode, run, encode and send
OK_REQUESTS = 6
TOLERANCE = 0.05


class WireClient:
    """A keep-alive HTTP/1.1 client on a plain socket, timing each request on the wire.

    The clock starts before the request's first byte is sent and stops once the answer's last
    byte is read. A client library's own work (measured with httpx on a busy 2-core machine:
    2-20 ms per request, building the request and parsing the answer) is not server latency,
    so the observation is taken as close to the socket as a client can be.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: dict[tuple[str, str], list[float]] = defaultdict(list)
        """Latencies by (model, status code)."""
        self._lock = threading.Lock()
        self._local = threading.local()  # one connection per thread

    def _socket(self) -> socket.socket:
        sock: socket.socket | None = getattr(self._local, "sock", None)
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.sock = sock
        return sock

    def post(self, model: str, body: bytes, token: str = TOKEN) -> int:
        """POST a pre-encoded JSON body; record the status and the latency the client observed."""
        sock = self._socket()
        head = (
            f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        start = time.perf_counter()
        sock.sendall(head + body)
        received = b""
        while b"\r\n\r\n" not in received:
            received += _recv(sock)
        header, _, rest = received.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length: *(\d+)", header).group(1))  # type: ignore[union-attr]
        got = len(rest)
        while got < length:
            got += len(_recv(sock))
        seconds = time.perf_counter() - start
        status = header.split(b" ", 2)[1].decode()
        assert got == length and b"connection: close" not in header.lower(), header
        with self._lock:
            self.seen[model, status].append(seconds)
        return int(status)

    def close(self) -> None:
        """Close this thread's connection."""
        sock = getattr(self._local, "sock", None)
        if sock is not None:
            sock.close()


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(1 << 20)
    if not chunk:
        raise ConnectionError("the server closed the connection")
    return chunk


def _body(frame: Any, **parameters: Any) -> bytes:
    payload: dict[str, Any] = {"inputs": tensors(frame)}
    if parameters:
        payload["parameters"] = parameters
    return orjson.dumps(payload)


def _in_flight(admin: httpx.Client, model: str) -> float:
    return _metric_sum(admin.get("/metrics").text, "parity_requests_in_flight", model=model)


def _grpc_inputs(frame: Any) -> list[tgrpc.InferInput]:
    inputs = []
    for name, datatype in (("age", "FP64"), ("income", "FP64"), ("plan", "BYTES")):
        t = tgrpc.InferInput(name, [len(frame)], datatype)
        t.set_data_from_numpy(frame[name].to_numpy(dtype=object if datatype == "BYTES" else np.float64))
        inputs.append(t)
    return inputs


def test_counts_and_latency_sums_match_what_the_client_observed(
    start_server: type[ServerProcess], model_env: ModelEnv, slow_dir: Path
) -> None:
    admin_port = free_port()
    server = start_server(
        [
            str(model_env.artifact_dir), str(slow_dir), "--trusted", "--lake", "none", "--token", TOKEN,
            "--max-inflight", "1", "--request-timeout", "0.5", "--admin-port", str(admin_port),
        ],
        env=trusted_env(),
        grpc=True,
    )  # fmt: skip
    server.wait_ready()
    client = WireClient(server.port)
    admin = httpx.Client(base_url=f"http://127.0.0.1:{admin_port}", timeout=10)
    big = _body(make_frame(ROWS, seed=3))
    small = _body(make_frame(100, seed=4).iloc[:3])
    # More rows than the batcher ever runs inline on the event loop: the slow run gets a thread.
    marked = make_frame(3000, seed=5)
    marked.loc[marked.index[0], "income"] = SLOW_MARKER
    slow = _body(marked)

    # 504: the slow model sleeps far beyond --request-timeout 0.5. While that request holds the slow
    # model's only in-flight slot (--max-inflight 1), more requests for it are refused: 503.
    slow_done = threading.Event()

    def send_slow() -> None:
        try:
            client.post("slow", slow)
        finally:
            client.close()
            slow_done.set()

    sender = threading.Thread(target=send_slow)
    sender.start()
    while not slow_done.is_set() and _in_flight(admin, "slow") < 1:
        time.sleep(0.01)  # polling interval of a wait on a condition (the slot is taken), not a sync sleep
    refused = 0
    while not slow_done.is_set() and refused < 3:
        refused += client.post("slow", small) == 503
    sender.join()

    for _ in range(OK_REQUESTS):
        client.post("churn", big)  # 200
    for _ in range(3):
        client.post("churn", small, token="wrong")  # 401
    for _ in range(2):
        client.post("churn", _body(make_frame(ROWS, seed=3), timeout=1000))  # 504: a 1 ms client deadline
    client.post("churn", orjson.dumps({"inputs": tensors(make_frame(100).iloc[:3])[:1]}))  # 400: missing inputs

    # gRPC: counted the same way, refusals included (the token interceptor answers 401 itself).
    grpc_client = tgrpc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    auth = {"authorization": f"Bearer {TOKEN}"}
    inputs = _grpc_inputs(make_frame(100, seed=6).iloc[:3])
    grpc_seen: dict[str, int] = defaultdict(int)
    calls = [(auth, inputs), (auth, inputs), ({"authorization": "Bearer no"}, inputs), (auth, inputs[:1])]
    for headers, sent in calls:
        try:
            grpc_client.infer("churn", sent, headers=headers)
            grpc_seen["200"] += 1
        except InferenceServerException as exc:
            grpc_seen[{"StatusCode.UNAUTHENTICATED": "401", "StatusCode.INVALID_ARGUMENT": "400"}[exc.status()]] += 1
    grpc_client.close()

    client.close()
    seen = client.seen
    counts = {key: len(v) for key, v in seen.items()}
    text = _scrape(f"http://127.0.0.1:{admin_port}/metrics", sum(counts.values()), protocol="v2")
    admin.close()
    assert {"200", "400", "401", "503", "504"} <= {code for _, code in seen}, counts
    # A refusal probe sent just as the slow request's 504 freed the slot waits behind its run: 504 too.
    assert counts["churn", "200"] == OK_REQUESTS and counts["slow", "504"] >= 1, counts

    # Counts: exactly what the client saw, per model and code, on each protocol.
    served = {
        (model, code): _metric_sum(text, "parity_requests_total", protocol="v2", model=model, code=code)
        for model, code in seen
    }
    assert served == {key: float(n) for key, n in counts.items()}
    assert _metric_sum(text, "parity_requests_total", protocol="v2") == sum(counts.values())
    assert dict(grpc_seen) == {"200": 2, "401": 1, "400": 1}
    for code, n in grpc_seen.items():
        assert _metric_sum(text, "parity_requests_total", protocol="grpc", code=code) == n, code
        assert _metric_sum(text, "parity_request_latency_seconds_count", protocol="grpc", code=code) == n, code

    # Latency: the server's sums (arrival to the answer's last chunk) against the client's clock.
    by_code: dict[str, tuple[float, float]] = {}
    for code in {code for _, code in seen}:
        client_s = sum(sum(v) for (_, c), v in seen.items() if c == code)
        server_s = _metric_sum(text, "parity_request_latency_seconds_sum", protocol="v2", code=code)
        timed = _metric_sum(text, "parity_request_latency_seconds_count", protocol="v2", code=code)
        assert timed == sum(k for (_, c), k in counts.items() if c == code), code
        by_code[code] = (round(server_s, 4), round(client_s, 4))
    client_total = sum(c for _, c in by_code.values())
    server_total = _metric_sum(text, "parity_request_latency_seconds_sum", protocol="v2")
    report = f"server vs client seconds by code: {by_code}; total {server_total:.4f} vs {client_total:.4f}"
    print(report)  # shown with -rP: the figures behind the 5%
    assert abs(server_total - client_total) <= TOLERANCE * client_total, report
    for code, (server_s, client_s) in by_code.items():
        # Each code's gap within 5% of the client's total. Per code, what no server clock sees
        # weighs more: a millisecond answer (401, 503, 400) is mostly the client's own work, and
        # back-to-back 200s on a busy 2-core machine lost 2-5 ms each (measured) while the next
        # request waited in the kernel for the server to get a core back.
        assert abs(server_s - client_s) <= TOLERANCE * client_total, (code, report)
    # The queue/compute split covers exactly the requests answered 200.
    assert _metric_sum(text, "parity_request_compute_seconds_count") == OK_REQUESTS + grpc_seen["200"]
