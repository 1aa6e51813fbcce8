"""Serving benchmark: parity's REST server vs a bare Starlette floor, in the same run.

Prints requests/s and p50/p99 latency for 1-row requests at 1 and 32 connections, and rows/s for
100-row requests, for both servers. Uses ``wrk`` when installed, else a small keep-alive HTTP/1.1
load generator on raw asyncio sockets (uvloop; pre-built requests, so the client costs little).

    python benchmarks/serve.py [--duration 3] [--lake]

The floor app receives the same body, parses it with orjson and answers a small JSON document,
under the same uvicorn settings (uvloop, httptools, no access log): the difference is parity's
per-request cost (routing, validation, batching, model run, encoding).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd

FLOOR_APP = """
import orjson
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def infer(request):
    body = orjson.loads(await request.body())
    n = body["inputs"][0]["shape"][0]
    out = {"model_name": "floor", "outputs": [{"name": "label", "datatype": "BYTES", "shape": [n], "data": ["no"] * n}]}
    return Response(orjson.dumps(out), media_type="application/json")

async def ready(request):
    return Response(b'{"ready":true}', media_type="application/json")

app = Starlette(routes=[Route("/v2/models/churn/infer", infer, methods=["POST"]), Route("/v2/health/ready", ready)])
"""


def free_port() -> int:
    """A TCP port free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_model(root: Path) -> Path:
    """Package the test pipeline (imputers, scaler, one-hot, logistic regression) into ``root``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    import parity

    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.normal(50, 20, n),
            "plan": rng.choice(["basic", "pro", "max"], n).astype(object),
        }
    )
    target = ((frame["income"] > 50) ^ (frame["plan"] == "pro")).astype(int)
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                ["plan"],
            ),
        ]
    )
    model = make_pipeline(pre, LogisticRegression()).fit(frame, target)
    art = parity.package(model, frame, name="churn", postprocess=parity.Threshold(0.6, labels=("no", "yes")))
    return art.save(root / "churn")


def body(rows: int) -> bytes:
    """An OIP JSON request of ``rows`` rows."""
    rng = np.random.default_rng(rows)
    return orjson.dumps(
        {
            "inputs": [
                {"name": "age", "datatype": "FP64", "shape": [rows], "data": rng.normal(40, 10, rows).tolist()},
                {"name": "income", "datatype": "FP64", "shape": [rows], "data": rng.normal(50, 20, rows).tolist()},
                {"name": "plan", "datatype": "BYTES", "shape": [rows], "data": ["pro"] * rows},
            ]
        }
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Poll the ready probe."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server not ready")


# ------------------------------------------------------------------------------------ load generation


async def _connection(port: int, request: bytes, stop_at: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if not head.startswith(b"HTTP/1.1 200") or match is None:
                raise RuntimeError(f"unexpected response: {head[:200]!r}")
            await reader.readexactly(int(match.group(1)))
            latencies.append(time.perf_counter() - t0)
    finally:
        writer.close()


async def _load(port: int, payload: bytes, connections: int, duration: float) -> list[float]:
    request = (
        b"POST /v2/models/churn/infer HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    await asyncio.gather(*(_connection(port, request, time.perf_counter() + 0.3, []) for _ in range(connections)))
    latencies: list[float] = []
    stop_at = time.perf_counter() + duration
    await asyncio.gather(*(_connection(port, request, stop_at, latencies) for _ in range(connections)))
    return latencies


def python_load(port: int, payload: bytes, connections: int, duration: float) -> tuple[float, float, float]:
    """(req/s, p50 ms, p99 ms) with the asyncio generator."""
    try:
        import uvloop

        latencies = uvloop.run(_load(port, payload, connections, duration))
    except ImportError:
        latencies = asyncio.run(_load(port, payload, connections, duration))
    arr = np.array(latencies) * 1000
    return len(arr) / duration, float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def wrk_load(port: int, payload: bytes, connections: int, duration: float) -> tuple[float, float, float]:
    """(req/s, p50 ms, p99 ms) with wrk."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write(f"wrk.body = {orjson.dumps(payload.decode()).decode()}\n")
        script = f.name
    seconds = max(1, round(duration))  # wrk takes whole seconds only ("-d3.0s" is a usage error)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script,
         f"http://127.0.0.1:{port}/v2/models/churn/infer"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script)

    def ms(label: str) -> float:
        m = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out)
        if m is None:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(rps.group(1)) if rps else float("nan"), ms("50%"), ms("99%")


def main() -> None:
    """Run every scenario against both servers and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--lake", action="store_true", help="write the prediction lake during the benchmark")
    parser.add_argument("--max-batch-size", type=int, default=64)
    args = parser.parse_args()
    load = wrk_load if shutil.which("wrk") else python_load
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        artifact = build_model(root)
        (root / "floor_app.py").write_text(FLOOR_APP)
        servers: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
        port = free_port()
        lake = ["--lake", str(root / "lake")] if args.lake else ["--lake", "none"]
        cmd = [sys.executable, "-m", "parity.server", str(artifact), "--port", str(port), "--grpc-port", "0", *lake]
        cmd += ["--max-batch-size", str(args.max_batch_size), "--log-level", "warning"]
        servers["parity"] = (port, subprocess.Popen(cmd, env=env))
        port = free_port()
        floor_cmd = [sys.executable, "-m", "uvicorn", "floor_app:app", "--port", str(port), "--loop", "uvloop"]
        floor_cmd += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
        servers["floor"] = (port, subprocess.Popen(floor_cmd, cwd=root, env=env))
        try:
            for port, proc in servers.values():
                wait_ready(f"http://127.0.0.1:{port}", proc)
            print(f"load generator: {'wrk' if load is wrk_load else 'python asyncio'}; {os.cpu_count()} cores")
            print(f"{'scenario':34} {'server':7} {'req/s':>9} {'rows/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
            for rows, conns in ((1, 1), (1, 32), (100, 1), (100, 32)):
                payload = body(rows)
                for name, (port, _) in servers.items():
                    rps, p50, p99 = load(port, payload, conns, args.duration)
                    label = f"{rows} row(s)/request, {conns} conn"
                    print(f"{label:34} {name:7} {rps:9.0f} {rps * rows:10.0f} {p50:8.2f} {p99:8.2f}", flush=True)
        finally:
            for _, proc in servers.values():
                proc.terminate()
                proc.wait(30)


if __name__ == "__main__":
    main()
