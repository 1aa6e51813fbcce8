"""Metrics tell what clients saw: per status code, the server counts exactly the requests a client sent,
and its latency sums are bounded by the client's own clock, with ``--workers 2`` summed in one scrape.

A real ``parity serve --workers 2`` on 127.0.0.1, a client timing each request on the wire from
before it sends the first byte until it has read the last one, then one scrape of the admin port
(whichever worker answers it reports the sum over both; the test makes both workers answer every
code). Per code (200, 400, 401, 503, 504) the count is exact; the server's latency sum is at most
the client's, and at least 95% of it for the codes whose answers here take long enough (200 and
504, each dominated by answers of seconds: a slow model run, a 1 s client deadline).

Why not 5% for every code: the server's clock runs from the request's first parsed byte until the
answer's last byte went to the socket, inside the client's interval (both read ``CLOCK_MONOTONIC``),
so its sum can never exceed the client's. What it cannot see is the client's own send and receive
and the two wake-ups around the exchange: the server's when the first byte arrives, the client's
when the answer does. On this shared 2-core machine at load 10-15 that was measured at 1-9 ms per
request (20,000-row answers of ~30 ms came out at 91-98% of the client's sum), while a 401, 503 or
400 is answered in well under a millisecond: there the unseen part is as large as what the server
measures (server/client 0.2-0.9 per run), and no server-side clock (Triton's, MLServer's or this
one) can agree with a client within 5%. For those codes the honest check is the bound and the
exact count. See docs/serving.md, "Metrics".
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

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
ROWS = 20_000  # a body that takes tens of milliseconds to decode, run, encode and send
OK_REQUESTS = 3  # per worker
TOLERANCE = 0.05
LONG_CODES = ("200", "504")  # codes whose answers here take long enough for the 5% bound (module docstring)


class Seen:
    """What the client observed: latencies by (model, status code)."""

    def __init__(self) -> None:
        self.latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
        self._lock = threading.Lock()

    def add(self, model: str, status: str, seconds: float) -> None:
        """Record one answer."""
        with self._lock:
            self.latencies[model, status].append(seconds)


class WireConnection:
    """One keep-alive HTTP/1.1 connection on a plain socket, timing each request on the wire.

    The clock starts before the request's first byte is sent and stops once the answer's last
    byte is read. A client library's own work (measured with httpx on a busy 2-core machine:
    2-20 ms per request, building the request and parsing the answer) is not server latency,
    so the observation is taken as close to the socket as a client can be.
    """

    def __init__(self, port: int, seen: Seen) -> None:
        self.port = port
        self.seen = seen
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray(1 << 20)

    def _exchange(self, head: str, body: bytes = b"") -> tuple[bytes, int, float]:
        """Send one request, read its answer: (header, body length, seconds on the client's clock)."""
        request = head.encode() + body  # built before the clock starts: the client's work, not latency
        start = time.perf_counter()
        self.sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            received += _recv(self.sock)
        header, _, rest = received.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length: *(\d+)", header).group(1))  # type: ignore[union-attr]
        got = len(rest)
        while got < length:  # counted, not joined: copying a large answer is client work too
            got += self.sock.recv_into(self._buffer)
        seconds = time.perf_counter() - start
        assert got == length and b"connection: close" not in header.lower(), header
        return header, length, seconds

    def post(self, model: str, body: bytes, token: str = TOKEN) -> int:
        """POST a pre-encoded JSON body; record the status and the latency the client observed."""
        header, _, seconds = self._exchange(
            f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n",
            body,
        )
        status = header.split(b" ", 2)[1].decode()
        self.seen.add(model, status, seconds)
        return int(status)

    def metrics(self) -> str:
        """``/metrics`` from the worker serving this connection (not an inference request: not counted)."""
        head = f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        self.sock.sendall(head.encode())
        received = b""
        while b"\r\n\r\n" not in received:
            received += _recv(self.sock)
        header, _, rest = received.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length: *(\d+)", header).group(1))  # type: ignore[union-attr]
        while len(rest) < length:
            rest += _recv(self.sock)
        return rest.decode()

    def worker(self) -> str:
        """The pid of the worker serving this connection (from its own scrape-time gauge)."""
        return self.metrics().split('parity_lake_rows_queued{pid="')[1].split('"')[0]

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()


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


def _workers(port: int, seen: Seen, n: int = 2) -> dict[str, list[WireConnection]]:
    """Two connections to each of the ``n`` workers (the kernel spreads connections, not requests)."""
    by_worker: dict[str, list[WireConnection]] = defaultdict(list)
    deadline = time.monotonic() + 60  # a worker still loading its models accepts no connection yet
    while time.monotonic() < deadline and not (len(by_worker) == n and all(len(c) == 2 for c in by_worker.values())):
        conn = WireConnection(port, seen)
        pid = conn.worker()
        if len(by_worker[pid]) < 2:
            by_worker[pid].append(conn)
        else:
            conn.close()
            time.sleep(0.01)  # polling interval of a wait on a condition (the other worker accepts), not a sync sleep
    assert len(by_worker) == n and all(len(c) == 2 for c in by_worker.values()), "every worker has two connections"
    return dict(by_worker)


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
            "--max-inflight", "1", "--admin-port", str(admin_port), "--workers", "2",
        ],
        env=trusted_env(),
        grpc=True,
    )  # fmt: skip
    server.wait_ready(timeout=60)
    seen = Seen()
    workers = _workers(server.port, seen)
    big = _body(make_frame(ROWS, seed=3))
    small = _body(make_frame(100, seed=4).iloc[:3])
    # More rows than the batcher ever runs inline on the event loop: the slow run gets a thread.
    marked = make_frame(3000, seed=5)
    marked.loc[marked.index[0], "income"] = SLOW_MARKER
    slow = _body(marked)

    def exercise(holder: WireConnection, prober: WireConnection) -> None:
        # A long 200: the slow model takes SLOW_SECONDS on its marker. While that request holds this
        # worker's only slot of the slow model (--max-inflight 1), more requests for it are refused: 503.
        sender = threading.Thread(target=holder.post, args=("slow", slow))
        sender.start()
        while sender.is_alive() and _metric_sum(prober.metrics(), "parity_requests_in_flight", model="slow") < 1:
            time.sleep(0.01)  # polling interval of a wait on a condition (the slot is taken), not a sync sleep
        refused = 0
        while sender.is_alive() and refused < 3:
            refused += prober.post("slow", small) == 503
        sender.join()
        holder.post("slow", _body(marked, timeout=1_000_000))  # 504: a 1 s client deadline on a 10 s run
        for _ in range(OK_REQUESTS):
            holder.post("churn", big)  # 200
        prober.post("churn", small, token="wrong")  # 401
        prober.post("churn", small, token="")  # 401
        holder.post("churn", _body(make_frame(ROWS, seed=3), timeout=1000))  # 504: a 1 ms client deadline
        prober.post("churn", orjson.dumps({"inputs": tensors(make_frame(100).iloc[:3])[:1]}))  # 400: missing inputs

    threads = [threading.Thread(target=exercise, args=conns) for conns in workers.values()]
    for thread in threads:  # both workers at once
        thread.start()
    for thread in threads:
        thread.join()

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

    for conns in workers.values():
        for conn in conns:
            conn.close()
    counts = {key: len(v) for key, v in seen.latencies.items()}
    text = _scrape(f"http://127.0.0.1:{admin_port}/metrics", sum(counts.values()), protocol="v2")
    assert {"200", "400", "401", "503", "504"} <= {code for _, code in seen.latencies}, counts
    assert counts["churn", "200"] == 2 * OK_REQUESTS and counts["slow", "200"] == 2, counts
    assert counts["slow", "504"] == 2 and counts["slow", "503"] >= 2, counts

    # Counts: exactly what the client saw, per model and code, summed over both workers in one scrape.
    served = {
        (model, code): _metric_sum(text, "parity_requests_total", protocol="v2", model=model, code=code)
        for model, code in seen.latencies
    }
    assert served == {key: float(n) for key, n in counts.items()}
    assert _metric_sum(text, "parity_requests_total", protocol="v2") == sum(counts.values())
    assert dict(grpc_seen) == {"200": 2, "401": 1, "400": 1}
    for code, n in grpc_seen.items():
        assert _metric_sum(text, "parity_requests_total", protocol="grpc", code=code) == n, code
        assert _metric_sum(text, "parity_request_latency_seconds_count", protocol="grpc", code=code) == n, code

    # Latency: the server's sums (arrival to the answer's last chunk) against the client's clock, per code.
    by_code: dict[str, tuple[float, float]] = {}
    for code in sorted({code for _, code in seen.latencies}):
        client_s = sum(sum(v) for (_, c), v in seen.latencies.items() if c == code)
        server_s = _metric_sum(text, "parity_request_latency_seconds_sum", protocol="v2", code=code)
        timed = _metric_sum(text, "parity_request_latency_seconds_count", protocol="v2", code=code)
        assert timed == sum(k for (_, c), k in counts.items() if c == code), code
        by_code[code] = (server_s, client_s)
    client_total = sum(c for _, c in by_code.values())
    server_total = _metric_sum(text, "parity_request_latency_seconds_sum", protocol="v2")
    report = "server vs client seconds by code: " + ", ".join(
        f"{code} {server_s:.4f}/{client_s:.4f} ({server_s / client_s:.3f})"
        for code, (server_s, client_s) in by_code.items()
    )
    print(report)  # shown with -rP: the figures behind the bounds
    assert (1 - TOLERANCE) * client_total <= server_total <= client_total, report
    for code, (server_s, client_s) in by_code.items():
        # Inside the client's interval: never more (1 us per request for the exposition's rounding).
        assert 0 < server_s <= client_s + 1e-6 * counts_of(counts, code), (code, report)
        if code in LONG_CODES:
            assert server_s >= (1 - TOLERANCE) * client_s, (code, report)
    # The queue/compute split covers exactly the requests answered 200.
    assert _metric_sum(text, "parity_request_compute_seconds_count") == 2 * OK_REQUESTS + 2 + grpc_seen["200"]


def counts_of(counts: dict[tuple[str, str], int], code: str) -> int:
    """Requests the client saw answered with ``code``, over every model."""
    return sum(n for (_, c), n in counts.items() if c == code)
