"""Per-call latency of async HTTP clients posting a V2 infer request to a real ``parity serve`` (~40 s).

    python benchmarks/http_clients.py [--calls 600] [httpx aiohttp rest ...]

Why the composition's REST downstreams use aiohttp: one ``parity serve`` of the small test
pipeline on 127.0.0.1, then for each client (in the order given; repeat a name to interleave
rounds) 100 warm-up calls, ``--calls`` sequential calls and ``2 * --calls`` calls over 32
concurrent tasks, all one-row JSON V2 infer requests on a uvloop loop, as the composition service
runs. Prints the client's CPU time per sequential call, p50/p99 sequentially and at 32 concurrent
calls, and req/s. ``httpx`` is ``httpx.AsyncClient`` (keep-alive pool of 64), ``aiohttp`` a bare
``aiohttp.ClientSession`` (``TCPConnector(limit=64)``), ``rest`` parity's ``RestClient.infer``
(aiohttp underneath, plus building and reading the V2 JSON). Client and server share the machine:
compare clients inside one run and note the load average printed first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONCURRENCY = 32
COLUMNS = {"age": np.array([41.0]), "income": np.array([55.0]), "plan": np.array(["pro"], dtype=object)}
HEADERS = {"content-type": "application/json", "x-request-id": "bench", "x-parity-timeout-ms": "5000"}
PATH = "/v2/models/churn/infer"


def body() -> bytes:
    """The JSON V2 request RestClient sends for COLUMNS."""
    inputs = [
        {"name": "age", "datatype": "FP64", "shape": [1], "data": [41.0]},
        {"name": "income", "datatype": "FP64", "shape": [1], "data": [55.0]},
        {"name": "plan", "datatype": "BYTES", "shape": [1], "data": ["pro"], "parameters": {"content_type": "str"}},
    ]
    return orjson.dumps({"id": "bench", "inputs": inputs})


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):6.2f} ms  p99 {np.percentile(ms, 99):7.2f} ms"


async def measure(name: str, post: Callable[[], Awaitable[None]], calls: int) -> None:
    """Warm up, then time sequential and concurrent calls of ``post``."""
    for _ in range(100):
        await post()
    sequential: list[float] = []
    cpu = time.process_time()
    for _ in range(calls):
        start = time.perf_counter()
        await post()
        sequential.append(time.perf_counter() - start)
    cpu_us = (time.process_time() - cpu) / calls * 1e6
    concurrent: list[float] = []
    todo = iter(range(2 * calls))

    async def worker() -> None:
        for _ in todo:
            start = time.perf_counter()
            await post()
            concurrent.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    rate = len(concurrent) / (time.perf_counter() - start)
    print(
        f"{name:8s} client CPU {cpu_us:4.0f} us/call | sequential {percentiles(sequential)} | "
        f"{CONCURRENCY} concurrent {percentiles(concurrent)} ({rate:5.0f} req/s)",
        flush=True,
    )


Client = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]


def httpx_client(url: str, data: bytes) -> Client:
    """httpx.AsyncClient with a keep-alive pool of 64: (post, close)."""
    import httpx

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=30.0)
    client = httpx.AsyncClient(limits=limits)

    async def post() -> None:
        response = await client.post(url + PATH, content=data, headers=HEADERS, timeout=5)
        assert response.status_code == 200, response.text

    return post, client.aclose


def aiohttp_client(url: str, data: bytes) -> Client:
    """A bare aiohttp.ClientSession (TCPConnector(limit=64)): (post, close)."""
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30.0))
    timeout = aiohttp.ClientTimeout(total=5)

    async def post() -> None:
        async with session.post(url + PATH, data=data, headers=HEADERS, timeout=timeout) as response:
            content = await response.read()
            assert response.status == 200, content

    return post, session.close


def rest_client(url: str, data: bytes) -> Client:
    """parity's RestClient.infer (builds and reads the V2 JSON itself): (post, close)."""
    from parity.compose._clients import RestClient

    client = RestClient(url, "churn")

    async def post() -> None:
        await client.infer(COLUMNS, timeout=5, request_id="bench")

    return post, client.aclose


CLIENTS = {"httpx": httpx_client, "aiohttp": aiohttp_client, "rest": rest_client}


async def run(url: str, clients: list[str], calls: int) -> None:
    data = body()
    for name in clients:
        post, close = CLIENTS[name](url, data)
        try:
            await measure(name, post, calls)
        finally:
            await close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clients", nargs="*", help=f"any of {', '.join(CLIENTS)}, in order (default: all)")
    parser.add_argument("--calls", type=int, default=600)
    args = parser.parse_args()
    unknown = [c for c in args.clients if c not in CLIENTS]
    if unknown:
        parser.error(f"unknown client {unknown[0]!r}; choose from {', '.join(CLIENTS)}")

    import uvloop
    from tests._servers import ServerProcess
    from tests.server.conftest import fit_pipeline, make_frame, package

    from parity.registry import Registry

    root = Path(tempfile.mkdtemp(prefix="parity-http-bench-"))
    frame = make_frame()
    registry = Registry(root / "home")
    registry.push(package(fit_pipeline(frame), frame).save(root / "churn"))
    args_ = ["churn", "--registry", str(root / "home"), "--lake", "none", "--reload-interval", "0"]
    server = ServerProcess(args_, root / "server.log")
    try:
        server.wait_ready()
        print(f"load average {os.getloadavg()[0]:.1f} (2-core machine shared with other jobs)", flush=True)
        uvloop.run(run(server.url, args.clients or list(CLIENTS), args.calls))
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
