"""Operable under load: every acknowledged row reaches the lake, overload is shed, health and metrics tell the truth.

Real server processes on 127.0.0.1, real clients, bounded load; no timing assertions (figures
live in benchmarks/serve_peers.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as tgrpc
from tritonclient.utils import InferenceServerException

from parity.lake import LakeWriter, read_lake
from tests._servers import ServerProcess, free_port
from tests.server.conftest import ModelEnv, make_frame
from tests.server.test_rest import tensors


def _args(model_env: ModelEnv, lake: Path, *extra: str) -> list[str]:
    return ["churn@production", "--registry", str(model_env.registry_root), "--lake", str(lake), *extra]


def _body(frame: pd.DataFrame, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": tensors(frame)}
    if params:
        body["parameters"] = params
    return body


def _rows_by_request(lake: Path) -> dict[str, int]:
    table = read_lake(lake)
    if table.num_rows == 0:
        return {}
    ids, counts = np.unique(table.column("request_id").to_numpy(zero_copy_only=False), return_counts=True)
    return dict(zip(ids.tolist(), counts.tolist(), strict=True))


def _metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of every sample of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _scrape(url: str, total: float, **labels: str) -> str:
    """``url``'s metrics once ``parity_requests_total`` matching ``labels`` reaches ``total``.

    REST counts an answer just after writing it: the client may read it a moment before.
    """
    deadline = time.monotonic() + 10
    while True:
        text = httpx.get(url, timeout=10).text
        if _metric_sum(text, "parity_requests_total", **labels) >= total or time.monotonic() > deadline:
            return text
        time.sleep(0.01)  # polling interval of a wait on a condition, not a synchronising sleep


async def _load(
    url: str,
    body: dict[str, Any],
    rows: int,
    *,
    conns: int,
    seconds: float,
    on_tick: Any = None,
    acked: dict[str, int] | None = None,
    stop_after_tick: bool = False,
) -> tuple[dict[str, int], dict[int, int], list[float]]:
    """``conns`` closed loops for ``seconds``; returns rows acked per request id, counts per status, send times."""
    acked = {} if acked is None else acked
    statuses: dict[int, int] = {}
    resets: list[float] = []
    stop = time.monotonic() + seconds
    ticked = asyncio.Event()

    async def loop(c: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            i = 0
            while time.monotonic() < stop and not (stop_after_tick and ticked.is_set()):
                rid = f"c{c}-{i}"
                i += 1
                sent = time.monotonic()
                try:
                    r = await client.post("/v2/models/churn/infer", json=body, headers={"X-Request-ID": rid})
                except httpx.TransportError:
                    resets.append(sent)
                    await asyncio.sleep(0.05)
                    continue
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    acked[rid] = rows

    async def ticker() -> None:
        if on_tick is not None:
            await on_tick()
        ticked.set()

    await asyncio.gather(*(loop(c) for c in range(conns)), ticker())
    return acked, statuses, resets


def test_block_mode_logs_every_acknowledged_row_through_sigterm_drain(
    start_server: type[ServerProcess], model_env: ModelEnv, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    # A small lake queue, so backpressure really happens under this load (500-row requests, 8 connections).
    server = start_server(_args(model_env, lake, "--lake-max-rows", "4000", "--drain", "1.5"))
    server.wait_ready()
    frame = make_frame(500, seed=3)
    body = _body(frame)
    signalled: list[float] = []

    async def sigterm_later() -> None:
        await asyncio.sleep(3.0)
        signalled.append(time.monotonic())
        server.proc.send_signal(signal.SIGTERM)

    acked, statuses, resets = asyncio.run(_load(server.url, body, 500, conns=8, seconds=6.0, on_tick=sigterm_later))
    assert server.terminate() == 0, server.log()
    assert signalled and len(acked) > 8
    # Not one connection reset for a request sent before the signal: the drain kept serving.
    assert [t for t in resets if t < signalled[0]] == []
    logged = _rows_by_request(lake)
    assert logged == acked, server.log()
    assert sum(logged.values()) == 500 * len(acked)
    assert set(statuses) <= {200, 503, 504}


def test_a_huge_request_is_fully_logged_or_refused(
    start_server: type[ServerProcess], model_env: ModelEnv, tmp_path: Path
) -> None:
    frame = pd.concat([make_frame(1000, seed=s) for s in range(120)], ignore_index=True)
    body = _body(frame)
    logged_lake, small_lake = tmp_path / "big", tmp_path / "small"
    big = start_server(_args(model_env, logged_lake))
    small = start_server(_args(model_env, small_lake, "--lake-max-rows", "100000"))
    big.wait_ready()
    small.wait_ready()
    with httpx.Client(timeout=60) as client:
        ok = client.post(big.url + "/v2/models/churn/infer", json=body, headers={"X-Request-ID": "huge"})
        refused = client.post(small.url + "/v2/models/churn/infer", json=body, headers={"X-Request-ID": "huge"})
    assert ok.status_code == 200, ok.text
    assert refused.status_code == 503 and "exceeds the lake queue bound" in refused.json()["error"]
    assert refused.headers["retry-after"] == "1"
    assert big.terminate() == 0 and small.terminate() == 0
    assert _rows_by_request(logged_lake) == {"huge": 120_000}
    assert _rows_by_request(small_lake) == {}


def test_ack_mode_kill9_under_load_loses_no_acknowledged_row(
    start_server: type[ServerProcess], model_env: ModelEnv, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    # Files would only be written after 60 s: everything acknowledged lives in the WAL when killed.
    server = start_server(_args(model_env, lake, "--lake-durability", "ack", "--lake-flush-interval", "60"))
    server.wait_ready()
    frame = make_frame(50, seed=5)

    acked: dict[str, int] = {}

    async def kill_under_load() -> None:
        deadline = time.monotonic() + 30
        while len(acked) < 40 and time.monotonic() < deadline:  # mid-stream, however slow the machine
            await asyncio.sleep(0.05)
        server.proc.send_signal(signal.SIGKILL)

    asyncio.run(
        _load(
            server.url,
            _body(frame),
            50,
            conns=8,
            seconds=32.0,
            on_tick=kill_under_load,
            acked=acked,
            stop_after_tick=True,
        )
    )
    server.proc.wait()
    assert server.proc.returncode == -signal.SIGKILL
    assert len(acked) > 8
    assert read_lake(lake).num_rows == 0  # nothing was published before the kill
    with LakeWriter(lake) as writer:  # the next start replays the write-ahead log
        assert writer.recovered >= 50 * len(acked)
    logged = _rows_by_request(lake)
    assert {rid: logged.get(rid) for rid in acked} == acked  # every acknowledged row is there, once


def test_admission_deadlines_admin_port_and_honest_metrics(
    start_server: type[ServerProcess], model_env: ModelEnv, tmp_path: Path
) -> None:
    server = start_server(
        _args(model_env, tmp_path / "lake", "--max-inflight", "2", "--max-batch-size", "1"),
        env={"PARITY_TOKEN": "tok"},
    )
    server.wait_ready()
    admin = f"http://127.0.0.1:{server.port + 2}"
    auth = {"Authorization": "Bearer tok"}
    frame = make_frame(200, seed=7)
    client_latency: dict[str, list[float]] = {}
    probes: list[int] = []

    async def one(client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str]) -> None:
        t0 = time.perf_counter()
        r = await client.post("/v2/models/churn/infer", json=body, headers=headers)
        client_latency.setdefault(str(r.status_code), []).append(time.perf_counter() - t0)
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1" and "in flight" in r.json()["error"]

    async def run() -> None:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=30) as client,
            httpx.AsyncClient(base_url=admin, timeout=5) as probe_client,
        ):
            body = _body(frame)
            for _ in range(4):
                burst = [one(client, body, auth) for _ in range(24)]
                burst.append(one(client, body, {}))  # 401
                probe = probe_client.get("/v2/health/live")
                results = await asyncio.gather(*burst, probe)
                probes.append(results[-1].status_code)
                await one(client, _body(frame.iloc[:3], timeout=1), auth)  # a 1 us deadline: 504

    asyncio.run(run())
    assert probes == [200] * 4
    assert {"200", "401", "503", "504"} <= set(client_latency), client_latency.keys()
    text = _scrape(admin + "/metrics", sum(len(v) for v in client_latency.values()), protocol="v2")
    with httpx.Client(timeout=5) as c:
        ready = c.get(admin + "/v2/health/ready").json()
        assert c.post(server.url + "/v2/repository/models/churn/unload", headers=auth).status_code == 404  # off
    for code, seen in client_latency.items():
        assert _metric_sum(text, "parity_requests_total", code=code, protocol="v2") == len(seen), code
    served = _metric_sum(text, "parity_request_latency_seconds_sum", protocol="v2")
    observed = sum(sum(v) for v in client_latency.values())
    # The server's clock starts when the request arrives, the client's before it connects.
    assert 0 < served <= observed
    assert _metric_sum(text, "parity_request_latency_seconds_count", protocol="v2") == sum(
        len(v) for v in client_latency.values()
    )
    assert _metric_sum(text, "parity_request_compute_seconds_count") == len(client_latency["200"])
    assert "process_cpu_seconds_total" in text and "parity_build_info{" in text
    assert ready["ready"] is True and ready["lake"]["overflow"] == "block" and ready["checks"]["lake"] is True


def test_workers_metrics_are_summed_over_workers(
    start_server: type[ServerProcess], model_env: ModelEnv, tmp_path: Path
) -> None:
    server = start_server(_args(model_env, tmp_path / "lake", "--workers", "2"), env={"PARITY_TOKEN": "s3cr3t-9f2a"})
    server.wait_ready(timeout=60)
    auth = {"Authorization": "Bearer s3cr3t-9f2a"}
    body = _body(make_frame(100, seed=1).iloc[:3])
    pids: set[str] = set()
    with httpx.Client(base_url=server.url, timeout=10) as c:
        # New connections so both workers get requests (the kernel spreads connections, not requests).
        n = 0
        for _ in range(60):
            with httpx.Client(base_url=server.url, timeout=10) as fresh:
                assert fresh.post("/v2/models/churn/infer", json=body, headers=auth).status_code == 200
                n += 1
                scrape = fresh.get("/metrics", headers=auth).text
                pids.add(scrape.split('parity_lake_rows_queued{pid="')[1].split('"')[0])
        text = c.get("/metrics", headers=auth).text
    assert len(pids) == 2, "both workers answered"
    assert _metric_sum(text, "parity_requests_total", code="200") == n
    assert _metric_sum(text, "parity_request_latency_seconds_count", code="200") == n  # histograms sum too
    assert _metric_sum(text, "parity_rows_predicted_total") == 3 * n
    # The token reaches the workers through a file, never their environment or command line.
    children = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
    assert children
    for pid in children:
        assert b"s3cr3t-9f2a" not in Path(f"/proc/{pid}/environ").read_bytes().replace(b"PARITY_", b"")
        assert b"s3cr3t-9f2a" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert server.terminate() == 0
    assert read_lake(tmp_path / "lake").num_rows == 3 * n


def test_config_file_and_environment(start_server: type[ServerProcess], model_env: ModelEnv, tmp_path: Path) -> None:
    admin_port = free_port()
    config = tmp_path / "serve.toml"
    config.write_text(
        f'[serve]\nlake-overflow = "shed"\nadmin_port = {admin_port}\nmax-inflight = 7\nlake = "{tmp_path / "lake"}"\n'
    )
    server = start_server(
        ["churn@production", "--registry", str(model_env.registry_root), "--config", str(config)],
        env={"PARITY_LAKE_DURABILITY": "ack", "PARITY_LAKE_OVERFLOW": "drop"},  # the environment beats the file
    )
    server.wait_ready()
    with httpx.Client(timeout=5) as c:
        ready = c.get(f"http://127.0.0.1:{admin_port}/v2/health/ready").json()
        assert c.post(server.url + "/v2/models/churn/infer", json=_body(make_frame(100).iloc[:2])).status_code == 200
    assert ready["lake"]["durability"] == "ack" and ready["lake"]["overflow"] == "drop"
    assert server.terminate() == 0
    assert read_lake(tmp_path / "lake").num_rows == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('lake-overflw = "shed"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "parity.server", "churn", "--config", str(bad)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PARITY_HOME": str(model_env.registry_root), "COLUMNS": "400"},
    )  # fmt: skip
    assert proc.returncode != 0 and "unknown option 'lake-overflw' in the config file" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "parity.server", "churn", "--enable-repository-api", "--lake", "none"],
        capture_output=True, text=True, timeout=60,
        env={**{k: v for k, v in os.environ.items() if k != "PARITY_TOKEN"}, "COLUMNS": "400"},
    )  # fmt: skip
    assert proc.returncode != 0 and "needs a token" in proc.stderr


def test_errors_name_fields_not_values_unless_asked(
    start_server: type[ServerProcess], model_env: ModelEnv, tmp_path: Path
) -> None:
    quiet = start_server(_args(model_env, tmp_path / "quiet", "--log-requests"), grpc=True)
    loud = start_server(_args(model_env, tmp_path / "loud", "--log-values"))
    quiet.wait_ready()
    loud.wait_ready()
    body = _body(make_frame(100).iloc[:1])
    body["inputs"][0] = {"name": "age", "datatype": "FP64", "shape": [1], "data": ["secret-value-42"]}
    with httpx.Client(timeout=10) as c:
        hidden = c.post(quiet.url + "/v2/models/churn/infer", json=body)
        shown = c.post(loud.url + "/v2/models/churn/infer", json=body)
        ok = c.post(quiet.url + "/v2/models/churn/infer", json=_body(make_frame(100).iloc[:4]))
    grpc_client = tgrpc.InferenceServerClient(f"127.0.0.1:{quiet.grpc_port}")
    frame = make_frame(100).iloc[:3]
    inputs = []
    for name, datatype in (("age", "FP64"), ("income", "FP64"), ("plan", "BYTES")):
        t = tgrpc.InferInput(name, [len(frame)], datatype)
        t.set_data_from_numpy(frame[name].to_numpy(dtype=object if datatype == "BYTES" else np.float64))
        inputs.append(t)
    assert grpc_client.infer("churn", inputs).as_numpy("probability").shape == (3,)
    with pytest.raises(InferenceServerException):
        grpc_client.infer("churn", inputs[:1])  # missing inputs: INVALID_ARGUMENT, logged as such
    grpc_client.close()
    assert hidden.status_code == shown.status_code == 400
    assert "age" in hidden.json()["error"] and "str" in hidden.json()["error"]
    assert "secret-value-42" not in hidden.text and "secret-value-42" in shown.text
    assert ok.status_code == 200
    assert quiet.terminate() == 0
    log = quiet.log()
    assert "secret-value-42" not in log
    lines = [json.loads(line) for line in log.splitlines() if '"msg":"request"' in line]
    assert {(d["status"], d["protocol"], d["model"], d["rows"]) for d in lines} == {
        (400, "v2", "churn", None),
        (200, "v2", "churn", 4),
        ("OK", "grpc", "churn", 3),
        ("INVALID_ARGUMENT", "grpc", "churn", None),
    }
    assert all(d["latency_ms"] > 0 and d["request_id"] for d in lines)


def test_every_serve_option_is_in_the_documented_table() -> None:
    import click
    import typer

    from parity.cli._serve_cmds import serve

    app = typer.Typer()
    app.command()(serve)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text()
    command = typer.main.get_command(app)
    for param in command.params:
        if isinstance(param, click.Option) and "completion" not in param.name:
            long = next(o for o in param.opts if o.startswith("--"))
            assert f"| `{long}` | `{param.envvar}` |" in doc, long
