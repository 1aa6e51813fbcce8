"""parity in the peer serving benchmark: same model, same method, same run as MLServer, MLflow, BentoML.

Drives the shared peer harness (``/work/shared/bench/peers``: README.md there explains the method)
and adds parity to its table with ``run_peers.sh --extra``:

1. copies the (read-only) harness to ``$BENCH_ROOT/harness`` (it writes its results beside
   itself) and, if anything is missing, lets ``run_peers.sh`` build the side venvs, the model
   (``$BENCH_ROOT/models/churn.joblib``: ColumnTransformer + GradientBoosting, 12 raw columns)
   and the request bodies;
2. packages that same fitted pipeline with parity (the raw training frame is regenerated with the
   harness's ``make_model.make_data`` and the same split) into ``$BENCH_ROOT/parity/churn``;
3. writes parity's V2 REST bodies (one tensor per column, FP64/BYTES, shape [n], JSON null for a
   missing value) and an ``--extra`` spec with ``parity`` and ``parity-workers2``;
4. runs ``run_peers.sh --extra spec --runs N`` with every peer (server on CPU 1, wrk on CPU 0);
5. runs the harness again with ``SERVER_CPU=0,1`` and only the two parity entries: the harness
   has no per-server CPU setting, so this second run is how ``--workers 2`` gets both cores
   (wrk still on CPU 0, so it competes with one worker);
6. measures gRPC against REST on one parity process (``--grpc-port`` on, pinned to CPU 1) with a
   fixed-duration closed-loop client on CPU 0: raw keep-alive HTTP/1.1 sockets for REST,
   ``grpc.aio`` with pre-serialised ``ModelInferRequest`` bytes for gRPC, 1 and 32 in flight;
7. measures the prediction lake under load (:func:`lake_scenarios`, parity alone on CPU 1, client
   on CPU 0): lake rows written / rows predicted at 100-row c8 and 500-row c8 (default ``block``
   mode, counted after SIGTERM), lake-on vs lake-off throughput, the cost of
   ``--lake-durability ack``, and an overload run (5x the admission limit in closed-loop clients:
   goodput vs capacity, rejection latency p99, admin-port liveness latency, recovery time);
8. prints parity vs the floor, MLServer and MLflow with the issue's goals, and writes everything
   to ``$BENCH_ROOT/parity/serve_peers.json``.

parity runs with the lake ON everywhere (as users run it), each server with its own lake
directory under ``$BENCH_ROOT/parity/lakes``.

    python benchmarks/serve_peers.py                 # everything (~20 min once the venvs exist)
    python benchmarks/serve_peers.py --runs 1 --only floor,parity   # quicker, no side venvs used
    python benchmarks/serve_peers.py --report-only   # re-print the last results
    python benchmarks/serve_peers.py --lake-only --seconds 10   # only the lake / overload scenarios

The first run also builds the side venvs (several minutes, needs the package registry).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

PEERS_SRC = Path(os.environ.get("PEERS_DIR", "/work/shared/bench/peers"))
BENCH_ROOT = Path(os.environ.get("BENCH_ROOT") or Path(os.environ.get("TMPDIR", "/tmp")) / "bench")
BUILTIN_PEERS = ("floor", "mlflow", "mlserver", "bentoml")
FLOOR = "floor-starlette"
SCENARIOS = ("1row_c1", "1row_c32", "100row_c8")
MODEL_NAME = "churn"
# Same knobs the harness gives every server (bench.py COMMON_ENV).
SERVER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

# Goals from the model-service issue.
GOAL_C32_VS_FLOOR = 0.40  # 1 row, 32 connections: req/s >= 40 % of the floor's
GOAL_P99_SLACK_MS = 1.0  # 1 row, 1 connection: p99 <= floor p99 + 1 ms
GOAL_ROWS_VS_FLOOR = 0.30  # 100 rows, 8 connections: rows/s >= 30 % of the floor's
GOAL_WORKERS2_SCALING = 1.3  # --workers 2 vs 1 worker, both unpinned (wrk takes part of CPU 0)


def log(msg: str) -> None:
    print(f"[serve_peers] {msg}", file=sys.stderr, flush=True)


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


# ------------------------------------------------------------------------------------ harness set-up


@dataclass
class Paths:
    """Where everything lives under $BENCH_ROOT."""

    root: Path

    @property
    def harness(self) -> Path:
        return self.root / "harness"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def payloads(self) -> Path:
        return self.root / "payloads"

    @property
    def venvs(self) -> Path:
        return self.root / "venvs"

    @property
    def out(self) -> Path:
        return self.root / "parity"

    @property
    def artifact(self) -> Path:
        return self.out / MODEL_NAME

    @property
    def spec(self) -> Path:
        return self.out / "extra.json"

    @property
    def peers_json(self) -> Path:
        return self.harness / "results.json"

    @property
    def unpinned_json(self) -> Path:
        return self.out / "unpinned" / "results.json"

    @property
    def summary_json(self) -> Path:
        return self.out / "serve_peers.json"


def copy_harness(src: Path, dst: Path) -> None:
    """Copy the read-only harness to a writable place (its own results are not copied)."""
    if not (src / "run_peers.sh").is_file():
        raise SystemExit(f"peer harness not found at {src} (set $PEERS_DIR)")
    shutil.copytree(
        src,
        dst,
        dirs_exist_ok=True,
        copy_function=shutil.copyfile,  # no read-only mode bits; scripts are run with bash
        ignore=shutil.ignore_patterns("results.json", "RESULTS.md", "__pycache__"),
    )


def run_harness(
    paths: Paths, args: Sequence[str], *, env: dict[str, str] | None = None, stdout: Path | None = None
) -> None:
    """``bash run_peers.sh ARGS`` in the harness copy; its progress goes to our stderr."""
    full_env = {**os.environ, "BENCH_ROOT": str(paths.root), **(env or {})}
    cmd = ["bash", str(paths.harness / "run_peers.sh"), *args]
    log("$ " + " ".join(f"{k}={v}" for k, v in (env or {}).items()) + " " + " ".join(cmd))
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(stdout.open("w")) if stdout else subprocess.DEVNULL
        subprocess.run(cmd, env=full_env, stdout=out, check=True)


def built_venvs(paths: Paths) -> list[str]:
    return [v for v in ("core", *BUILTIN_PEERS) if (paths.venvs / v / ".peers_ok").is_file()]


def ensure_built(paths: Paths) -> None:
    """Venvs, model and bodies: let the harness build whatever is missing (a short floor-only run)."""
    needed = [paths.models / f for f in ("churn.joblib", "expected.json", "rows_1.json", "rows_100.json")]
    needed += [paths.payloads / f"floor_{n}.json" for n in (1, 100)]
    if all(p.is_file() for p in needed) and len(built_venvs(paths)) == 1 + len(BUILTIN_PEERS):
        return
    log("building the harness venvs / model / bodies (first run: several minutes)")
    prep = paths.root / "run" / "prepare"
    prep.mkdir(parents=True, exist_ok=True)
    run_harness(
        paths, ["--only", "floor", "--runs", "1", "--seconds", "1", "--no-inproc", "--out", str(prep / "results.json")]
    )
    missing = sorted(set(("core", *BUILTIN_PEERS)) - set(built_venvs(paths)))
    if missing:
        log(f"venvs that failed to build (skipped in the table): {missing}; see {paths.root}/logs/pip_*.log")


def ensure_model_only(paths: Paths) -> None:
    """For ``--lake-only``: the harness's core venv, model and bodies, without the peers' venvs."""
    needed = [paths.models / f for f in ("churn.joblib", "expected.json", "rows_1.json", "rows_100.json")]
    if all(p.is_file() for p in needed):
        return
    core = paths.venvs / "core"
    if not (core / ".peers_ok").is_file():
        log(f"building the harness core venv {core} (first --lake-only run)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(core)], check=True)
        req = paths.harness / "requirements"
        pip = [str(core / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(req / "core.txt"), "-c", str(req / "core.lock.txt")], check=True)
        (core / ".peers_ok").touch()
    env = {**os.environ, "BENCH_ROOT": str(paths.root)}
    for script in ("make_model.py", "make_payloads.py"):
        subprocess.run([str(core / "bin" / "python"), str(paths.harness / script)], env=env, check=True)


def import_make_model(paths: Paths) -> ModuleType:
    """The harness copy's make_model.py (for make_data, SEED and the column lists)."""
    spec = importlib.util.spec_from_file_location("peers_make_model", paths.harness / "make_model.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("cannot import make_model.py from the harness copy")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------ parity artifact


def package_parity(paths: Paths, rebuild: bool) -> Path:
    """Package the harness's fitted pipeline with its raw training frame (reused when up to date)."""
    import joblib
    from sklearn.model_selection import train_test_split

    import parity

    target = paths.artifact
    joblib_path = paths.models / "churn.joblib"
    fresh = target.is_dir() and any(target.iterdir()) and target.stat().st_mtime >= joblib_path.stat().st_mtime
    if fresh and not rebuild:
        log(f"reusing parity artifact {target}")
        return target
    shutil.rmtree(target, ignore_errors=True)
    mm = import_make_model(paths)
    pipe = joblib.load(joblib_path)  # our own benchmark file
    frame, y = mm.make_data()
    x_train, x_test, _, _ = train_test_split(frame, y, test_size=0.2, random_state=mm.SEED, stratify=y)
    expected = json.loads((paths.models / "expected.json").read_text())
    check = pipe.predict_proba(x_test.iloc[:100])[:, 1]
    drift = float(np.max(np.abs(check - np.asarray(expected["p1_rows_100"]))))
    if drift > 1e-12:
        raise RuntimeError(f"regenerated test rows do not reproduce expected.json (max diff {drift:.2e})")
    log(f"packaging the pipeline with parity ({len(x_train)} raw training rows)")
    t0 = time.perf_counter()
    art = parity.package(pipe, x_train, name=MODEL_NAME)
    art.save(target)
    log(f"saved {target} in {time.perf_counter() - t0:.1f} s: outputs {art.signature.output_names}")
    return target


def probability_output(artifact: Path) -> str:
    import parity

    names = parity.load(artifact).signature.output_names
    return next(n for n in names if "proba" in n)


def rows_columns(paths: Paths, n: int) -> tuple[list[str], list[list[Any]]]:
    rows = json.loads((paths.models / f"rows_{n}.json").read_text())
    return list(rows["columns"]), list(rows["data"])


def write_rest_bodies(paths: Paths, output: str) -> dict[int, Path]:
    """parity's V2 JSON bodies: one tensor per column, FP64/BYTES, shape [n], null for missing.

    Like the harness's MLServer body, they ask for the probability output only.
    """
    numeric = set(json.loads((paths.models / "expected.json").read_text())["num_cols"])
    out: dict[int, Path] = {}
    for n in (1, 100):
        cols, data = rows_columns(paths, n)
        body = {
            "inputs": [
                {
                    "name": c,
                    "datatype": "FP64" if c in numeric else "BYTES",
                    "shape": [len(data)],
                    "data": [r[i] for r in data],
                }
                for i, c in enumerate(cols)
            ],
            "outputs": [{"name": output}],
        }
        out[n] = paths.payloads / f"parity_{n}.json"
        out[n].write_text(json.dumps(body, separators=(",", ":")))
    return out


def server_cmd(
    artifact: Path, port: str, grpc_port: str = "0", workers: int = 1, lake: Path | None = None, *extra: str
) -> list[str]:
    """parity's server command: the lake on (as users run it) unless ``lake`` is None, gRPC off unless
    a port is given, the admin port off (the harness picks ports), ``extra`` options, else default."""
    cmd = [sys.executable, "-m", "parity.server", str(artifact), "--port", port, "--grpc-port", grpc_port]
    cmd += ["--lake", str(lake) if lake is not None else "", "--admin-port", "0"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    return [*cmd, *extra]


def write_spec(paths: Paths, artifact: Path, bodies: dict[int, Path]) -> Path:
    """The harness ``--extra`` spec: ``parity`` and ``parity-workers2``."""
    import onnxruntime

    import parity

    version = f"parity {parity.__version__} (onnxruntime {onnxruntime.__version__})"
    common = {
        "ready_url": "/v2/health/ready",
        "infer_path": f"/v2/models/{MODEL_NAME}/infer",
        "body_1": str(bodies[1]),
        "body_100": str(bodies[100]),
        "ready_timeout_s": 120,
    }
    specs = [
        {
            "name": "parity",
            "version": version + ", lake on",
            "port": 18090,
            "cmd": server_cmd(artifact, "{port}", lake=paths.out / "lakes" / "peers"),
            **common,
        },
        {
            "name": "parity-workers2",
            "version": version + ", --workers 2, lake on",
            "port": 18091,
            "cmd": server_cmd(artifact, "{port}", workers=2, lake=paths.out / "lakes" / "peers-workers2"),
            **common,
        },
    ]
    paths.spec.write_text(json.dumps(specs, indent=1))
    return paths.spec


# ------------------------------------------------------------------------------------ gRPC vs REST


@dataclass
class LoadResult:
    """One closed-loop measurement."""

    protocol: str
    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    client_cpu: float
    server_cpu: float

    @property
    def server_us(self) -> float:
        """Server CPU microseconds per request: robust to other load on the machine, unlike req/s."""
        return self.server_cpu / self.rps * 1e6 if self.rps else math.nan


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (uvicorn's single process has none)."""
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    for p in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def self_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@contextlib.contextmanager
def pinned(cpus: set[int]) -> Iterator[None]:
    """Pin every thread of this process (and threads started meanwhile) to ``cpus``; restore after."""
    before = os.sched_getaffinity(0)

    def pin_all(mask: set[int]) -> None:
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), mask)

    pin_all(cpus)
    try:
        yield
    finally:
        pin_all(before)


def http_request(payload: bytes) -> bytes:
    return (
        f"POST /v2/models/{MODEL_NAME}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def rest_call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bytes:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if not head.startswith(b"HTTP/1.1 200") or match is None:
        raise RuntimeError(f"unexpected REST response: {head[:200]!r}")
    return await reader.readexactly(int(match.group(1)))


async def closed_loop(
    concurrency: int, seconds: float, warmup: float, make_worker: Callable[[], Coroutine[Any, Any, Any]]
) -> tuple[list[float], float]:
    """Run ``concurrency`` workers (each: ``await make_worker()`` -> an async ``call()``) for a fixed time."""
    calls = [await make_worker() for _ in range(concurrency)]
    latencies: list[float] = []

    async def loop(call: Callable[[], Coroutine[Any, Any, Any]], stop_at: float, record: bool) -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            await call()
            if record:
                latencies.append(time.perf_counter() - t0)

    stop = time.perf_counter() + warmup
    await asyncio.gather(*(loop(c, stop, False) for c in calls))
    t0 = time.perf_counter()
    await asyncio.gather(*(loop(c, t0 + seconds, True) for c in calls))
    return latencies, time.perf_counter() - t0


def grpc_request_bytes(paths: Paths, n: int, output: str) -> bytes:
    """A typed ``ModelInferRequest`` (FP64 NaN / BYTES per column), serialised once."""
    from parity.server.proto import open_inference_grpc_pb2 as pb

    numeric = set(json.loads((paths.models / "expected.json").read_text())["num_cols"])
    cols, data = rows_columns(paths, n)
    req = pb.ModelInferRequest(model_name=MODEL_NAME)
    for i, c in enumerate(cols):
        values = [r[i] for r in data]
        tensor = req.inputs.add(name=c, datatype="FP64" if c in numeric else "BYTES", shape=[len(values)])
        if c in numeric:
            tensor.contents.fp64_contents.extend(math.nan if v is None else float(v) for v in values)
        else:
            tensor.contents.bytes_contents.extend(str(v).encode() for v in values)
    req.outputs.add(name=output)
    return bytes(req.SerializeToString())


def grpc_probabilities(raw: bytes, output: str) -> list[float]:
    from parity.server.proto import open_inference_grpc_pb2 as pb

    resp = pb.ModelInferResponse.FromString(raw)
    tensor = next(o for o in resp.outputs if o.name == output)
    return list(tensor.contents.fp64_contents or tensor.contents.fp32_contents)


async def measure_protocol(
    protocol: str, port: int, payload: bytes, concurrency: int, seconds: float, warmup: float, server_pid: int
) -> LoadResult:
    """One fixed-duration closed-loop run against REST or gRPC on ``port``.

    ``protocol`` is ``rest`` / ``grpc`` (inference with ``payload``) or ``rest-live`` / ``grpc-live``
    (the liveness probe: what the transport alone costs in the same server).
    """
    import grpc

    closers: list[Callable[[], Coroutine[Any, Any, Any]]] = []
    if protocol.startswith("rest"):
        live = b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        request = live if protocol == "rest-live" else http_request(payload)

        async def make_worker() -> Callable[[], Coroutine[Any, Any, Any]]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)

            async def close() -> None:
                writer.close()

            closers.append(close)
            return lambda: rest_call(reader, writer, request)
    else:
        # One channel (one HTTP/2 connection) multiplexing every in-flight call, as gRPC clients do.
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        rpc = "ServerLive" if protocol == "grpc-live" else "ModelInfer"
        method = channel.unary_unary(f"/inference.GRPCInferenceService/{rpc}")
        payload = b"" if protocol == "grpc-live" else payload  # an empty ServerLiveRequest
        closers.append(channel.close)

        async def make_worker() -> Callable[[], Coroutine[Any, Any, Any]]:
            return lambda: method(payload)

    s0, c0 = proc_cpu_seconds(server_pid), self_cpu_seconds()
    latencies, elapsed = await closed_loop(concurrency, seconds, warmup, make_worker)
    s1, c1 = proc_cpu_seconds(server_pid), self_cpu_seconds()
    for close in closers:
        await close()
    arr = np.asarray(latencies) * 1000
    total = elapsed + warmup  # CPU counters include the warm-up
    return LoadResult(
        protocol,
        concurrency,
        len(arr),
        round(elapsed, 3),
        len(arr) / elapsed,
        float(np.percentile(arr, 50)),
        float(np.percentile(arr, 99)),
        round((c1 - c0) / total, 3),
        round((s1 - s0) / total, 3),
    )


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"parity server exited with {proc.returncode} during start-up")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("parity server not ready")


def grpc_vs_rest(
    paths: Paths, artifact: Path, output: str, seconds: float, warmup: float, repeats: int, lake_off: bool = False
) -> dict[str, Any]:
    """REST and gRPC single-row on one parity process (CPU 1, lake on), closed-loop client on CPU 0."""
    import grpc
    import httpx

    expected = json.loads((paths.models / "expected.json").read_text())["p1_rows_1"]
    rest_port, grpc_port = free_port(), free_port()
    lake_dir = None if lake_off else paths.out / "lake-grpc-vs-rest"
    cmd = ["taskset", "-c", "1", *server_cmd(artifact, str(rest_port), str(grpc_port), lake=lake_dir)]
    log_path = paths.out / "grpc_vs_rest_server.log"
    rest_body = (paths.payloads / "parity_1.json").read_bytes()
    grpc_body = grpc_request_bytes(paths, 1, output)
    results: list[LoadResult] = []
    with log_path.open("w") as logf:
        proc = subprocess.Popen(cmd, env={**os.environ, **SERVER_ENV}, stdout=logf, stderr=subprocess.STDOUT)
        try:
            wait_ready(rest_port, proc)
            # Same answer over both protocols, and the same as sklearn's predict_proba.
            rest = httpx.post(f"http://127.0.0.1:{rest_port}/v2/models/{MODEL_NAME}/infer", content=rest_body)
            p_rest = next(o for o in rest.json()["outputs"] if o["name"] == output)["data"]
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                raw = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(grpc_body, timeout=10)
            p_grpc = grpc_probabilities(raw, output)
            diff = max(abs(a - b) for a, b in zip([*p_rest, *p_grpc], expected * 2, strict=True))
            if diff >= 1e-6:
                raise RuntimeError(f"parity answers differ from sklearn by {diff:.2e}")
            log(f"gRPC vs REST: server pid {proc.pid} on CPU 1, client on CPU 0; max |dp| vs sklearn {diff:.1e}")
            with pinned({0}):
                for k in range(repeats):
                    cases = [("rest", 1), ("grpc", 1), ("rest", 32), ("grpc", 32), ("rest-live", 32), ("grpc-live", 32)]
                    for protocol, conc in cases if k % 2 == 0 else cases[::-1]:
                        is_rest = protocol.startswith("rest")
                        port, body = (rest_port, rest_body) if is_rest else (grpc_port, grpc_body)
                        r = asyncio.run(measure_protocol(protocol, port, body, conc, seconds, warmup, proc.pid))
                        results.append(r)
                        log(
                            f"  {protocol:9} c{conc:<2} {r.rps:8.0f} req/s  p50 {r.p50_ms:6.2f} ms  "
                            f"p99 {r.p99_ms:6.2f} ms  client cpu {r.client_cpu:.2f}  server cpu {r.server_cpu:.2f}  "
                            f"server {r.server_us:4.0f} us/req"
                        )
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    summary: dict[str, dict[str, float]] = {}
    for protocol in ("rest", "grpc", "rest-live", "grpc-live"):
        for conc in (1, 32):
            rs = [r for r in results if r.protocol == protocol and r.concurrency == conc]
            if not rs:
                continue
            summary[f"{protocol}_c{conc}"] = {
                "rps": statistics.median(r.rps for r in rs),
                "p50_ms": statistics.median(r.p50_ms for r in rs),
                "p99_ms": statistics.median(r.p99_ms for r in rs),
                "client_cpu": statistics.median(r.client_cpu for r in rs),
                "server_cpu": statistics.median(r.server_cpu for r in rs),
                "server_us_per_req": statistics.median(r.server_us for r in rs),
            }
    return {"runs": [asdict(r) for r in results], "summary": summary, "max_abs_diff_vs_sklearn": diff}


# ------------------------------------------------------------------------------------ lake and overload


def write_body_n(paths: Paths, n: int, output: str) -> Path:
    """A parity V2 body of ``n`` rows (the harness's 100 benchmark rows, repeated)."""
    base = json.loads((paths.payloads / "parity_100.json").read_text())
    reps = -(-n // 100)
    for tensor in base["inputs"]:
        tensor["data"] = (tensor["data"] * reps)[:n]
        tensor["shape"] = [n]
    base["outputs"] = [{"name": output}]
    path = paths.payloads / f"parity_{n}.json"
    path.write_text(json.dumps(base, separators=(",", ":")))
    return path


@contextlib.contextmanager
def parity_server(
    paths: Paths, artifact: Path, name: str, lake: Path | None, *extra: str
) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """One parity process on CPU 1 (admin port on), stopped with SIGTERM; yields (proc, port, admin port)."""
    port, admin = free_port(), free_port()
    if lake is not None:
        shutil.rmtree(lake, ignore_errors=True)
    cmd = ["taskset", "-c", "1", *server_cmd(artifact, str(port), lake=lake), "--drain", "0.5", *extra]
    cmd[cmd.index("--admin-port") + 1] = str(admin)
    with (paths.out / f"lake_{name}.log").open("w") as logf:
        proc = subprocess.Popen(cmd, env={**os.environ, **SERVER_ENV}, stdout=logf, stderr=subprocess.STDOUT)
        try:
            wait_ready(port, proc)
            yield proc, port, admin
        finally:
            proc.send_signal(15)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def rest_status_call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One keep-alive request; returns the HTTP status (body read and discarded)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    await reader.readexactly(int(match.group(1)) if match else 0)
    return int(head[9:12])


async def status_loop(
    port: int, request: bytes, concurrency: int, seconds: float, backoff_s: float = 0.0
) -> tuple[dict[int, list[float]], float]:
    """Closed loop of ``concurrency`` connections for ``seconds``: latencies (s) by status, elapsed.

    ``backoff_s``: a connection answered 503 waits that long before its next request (a client that
    honours ``Retry-After``)."""
    by_status: dict[int, list[float]] = {}
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]
    t0 = time.perf_counter()
    stop = t0 + seconds

    async def loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            try:
                status = await rest_status_call(reader, writer, request)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            by_status.setdefault(status, []).append(time.perf_counter() - start)
            if status == 503 and backoff_s:
                await asyncio.sleep(min(backoff_s, max(0.0, stop - time.perf_counter())))
        writer.close()

    await asyncio.gather(*(loop(r, w) for r, w in conns))
    return by_status, time.perf_counter() - t0


def scrape(port: int) -> dict[str, float]:
    """Sums of every metric of ``/metrics`` by name (lake rows by outcome as ``..._written`` etc.; series
    with a ``code`` label also as ``..._503`` etc.)."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = line.split("{")[0].split(" ")[0]
        if 'outcome="' in line:
            name += "_" + line.split('outcome="')[1].split('"')[0]
        names = [name]
        if 'code="' in line:
            names.append(name + "_" + line.split('code="')[1].split('"')[0])
        with contextlib.suppress(ValueError):
            value = float(line.rsplit(" ", 1)[1])
            for key in names:
                out[key] = out.get(key, 0.0) + value
    return out


def lake_rows(lake: Path) -> int:
    """Rows in the lake's published files (footers only)."""
    import pyarrow.parquet as pq

    from parity.lake import partitions

    return sum(pq.read_metadata(f).num_rows for p in partitions(lake) for f in p.files)


SETTLE_S = 2.5  # > the lake's 2 s flush interval: idle time around a measured window


def lake_scenarios(paths: Paths, artifact: Path, output: str, seconds: float) -> dict[str, Any]:
    """Lake rows written / predicted, lake on vs off, ack cost, overload; parity on CPU 1, client on CPU 0."""
    bodies = {1: paths.payloads / "parity_1.json", 100: paths.payloads / "parity_100.json"}
    bodies[500] = write_body_n(paths, 500, output)
    lakes = paths.out / "lakes"
    res: dict[str, Any] = {"loadavg_start": loadavg()}

    def run(name: str, n: int, conc: int, lake: Path | None, *extra: str) -> dict[str, Any]:
        request = http_request(bodies[n].read_bytes())
        with parity_server(paths, artifact, name, lake, *extra) as (proc, port, _admin):
            with pinned({0}):
                asyncio.run(status_loop(port, request, conc, min(2.0, seconds / 3)))  # warm-up
                time.sleep(SETTLE_S)
                cpu0 = proc_cpu_seconds(proc.pid)
                by_status, elapsed = asyncio.run(status_loop(port, request, conc, seconds))
                time.sleep(SETTLE_S)  # the lake's flush of these rows is part of their cost
                cpu = proc_cpu_seconds(proc.pid) - cpu0
            metrics = scrape(port)
        acked = (len(by_status.get(200, [])) + 0) * n
        ok = len(by_status.get(200, []))
        out: dict[str, Any] = {
            "rows": n, "conns": conc, "ok": ok, "errors": {k: len(v) for k, v in by_status.items() if k != 200},
            "rps": ok / elapsed, "rows_per_s": ok * n / elapsed,
            "p99_ms": float(np.percentile(np.asarray(by_status.get(200, [0.0])) * 1000, 99)),
            "predicted": metrics.get("parity_rows_predicted_total", 0.0),
            "blocked": metrics.get("parity_lake_rows_total_blocked", 0.0), "acked_measured": acked,
            "server_cpu_us_per_req": cpu * 1e6 / max(1, ok),
        }  # fmt: skip
        if lake is not None:
            out["lake_rows"] = lake_rows(lake)  # after SIGTERM: everything acknowledged is written
            out["written_over_predicted"] = out["lake_rows"] / max(1.0, out["predicted"])
        extra_txt = f"  lake/predicted {out['written_over_predicted']:.4f}" if lake is not None else ""
        log(
            f"  {name:18} {out['rows_per_s']:10.0f} rows/s {out['rps']:7.0f} req/s "
            f"p99 {out['p99_ms']:7.2f} ms  server {out['server_cpu_us_per_req']:6.0f} CPU-us/req{extra_txt}"
        )
        return out

    log("lake scenarios (parity on CPU 1, closed-loop client on CPU 0)")
    for n, conc in ((100, 8), (500, 8), (1, 32)):
        res[f"on_{n}row_c{conc}"] = run(f"on_{n}row_c{conc}", n, conc, lakes / f"on_{n}")
        res[f"off_{n}row_c{conc}"] = run(f"off_{n}row_c{conc}", n, conc, None)
        ack_lake = lakes / f"ack_{n}"
        res[f"ack_{n}row_c{conc}"] = run(f"ack_{n}row_c{conc}", n, conc, ack_lake, "--lake-durability", "ack")
    res["overload"] = overload(paths, artifact, bodies, seconds, "open")
    res["overload_closed"] = overload(paths, artifact, bodies, seconds, "closed")
    res["overload_retry_after"] = overload(paths, artifact, bodies, seconds, "retry-after")
    res["loadavg_end"] = loadavg()
    return res


def overload_scenarios(paths: Paths, artifact: Path, seconds: float) -> dict[str, Any]:
    """Only the overload runs (``--overload-only``): open loop, then closed loop."""
    bodies = {1: paths.payloads / "parity_1.json", 100: paths.payloads / "parity_100.json"}
    res: dict[str, Any] = {"loadavg_start": loadavg()}
    res["overload"] = overload(paths, artifact, bodies, seconds, "open")
    res["overload_closed"] = overload(paths, artifact, bodies, seconds, "closed")
    res["overload_retry_after"] = overload(paths, artifact, bodies, seconds, "retry-after")
    res["loadavg_end"] = loadavg()
    return res


PROBER = r"""
import http.client, json, select, sys, time
port, probes = int(sys.argv[1]), []
while not select.select([sys.stdin], [], [], 0.1)[0]:  # every 100 ms until told to stop
    t0 = time.perf_counter()
    try:  # a new connection and a 1 s timeout per probe, as the kubelet's HTTP probe
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/v2/health/live")
        ok = conn.getresponse().status == 200
        conn.close()
    except OSError:
        ok = False
    probes.append(time.perf_counter() - t0 if ok else None)
print(json.dumps(probes))
"""


async def open_loop(
    port: int, request: bytes, rate: float, seconds: float, conns: int
) -> tuple[dict[int, list[float]], float, int]:
    """``rate`` requests/s sent on schedule whatever the answers (open loop), over up to ``conns`` keep-alive
    connections: latencies (s) by status, elapsed, and requests not sent because every connection was busy."""
    pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = [
        await asyncio.open_connection("127.0.0.1", port) for _ in range(conns)
    ]
    by_status: dict[int, list[float]] = {}
    unsent = 0
    running: set[asyncio.Task[None]] = set()

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        start = time.perf_counter()
        try:
            status = await rest_status_call(reader, writer, request)
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            by_status.setdefault(0, []).append(time.perf_counter() - start)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        else:
            by_status.setdefault(status, []).append(time.perf_counter() - start)
        pool.append((reader, writer))

    t0 = time.perf_counter()
    sent = 0
    while (now := time.perf_counter()) - t0 < seconds:
        for _ in range(int((now - t0) * rate) - sent):  # every request due by now
            sent += 1
            if not pool:
                unsent += 1
                continue
            task = asyncio.create_task(one(*pool.pop()))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.sleep(0.0005)
    await asyncio.gather(*running)
    elapsed = time.perf_counter() - t0
    for _, writer in pool:
        writer.close()
    return by_status, elapsed, unsent


# How an operator bounds overload (docs/serving.md, "Overload and deadlines"): at most 8 requests per
# model in the process (about 8 ms of queueing at this model's ~1 ms per 100-row request) and a 1 s
# deadline; past the limit, 503 + Retry-After at once.
OVERLOAD_OPTIONS = ("--max-inflight", "8", "--request-timeout", "1")
OVERLOAD_FACTOR = 5


def overload(paths: Paths, artifact: Path, bodies: dict[int, Path], seconds: float, mode: str) -> dict[str, Any]:
    """Capacity, then overload with OVERLOAD_OPTIONS (liveness probed on the admin port), then the time to recover.

    Capacity: 100-row requests on 8 closed-loop connections (never more than the limit) for half of
    ``seconds``, on the same server just before the overload: rows/s and server CPU per request.
    ``open``: 100-row requests at OVERLOAD_FACTOR x that rate on a schedule whatever the answers
    (clients that do not wait for each other), over up to 256 connections.
    ``closed``: 40 closed-loop connections (5x the limit) that resend at once after a 503 (a retry storm).
    ``retry-after``: the same 40 connections, each waiting the 1 s of ``Retry-After`` after a 503.
    """
    import httpx

    limit = int(OVERLOAD_OPTIONS[OVERLOAD_OPTIONS.index("--max-inflight") + 1])
    deadline_s = float(OVERLOAD_OPTIONS[OVERLOAD_OPTIONS.index("--request-timeout") + 1])
    conc = 256 if mode == "open" else OVERLOAD_FACTOR * limit
    lake = paths.out / "lakes" / f"overload_{mode}"
    with parity_server(paths, artifact, f"overload_{mode}", lake, *OVERLOAD_OPTIONS) as (proc, port, admin):
        request = http_request(bodies[100].read_bytes())
        with pinned({0}):
            asyncio.run(status_loop(port, request, 8, 1.0))  # warm-up
            cpu0 = proc_cpu_seconds(proc.pid)
            base, base_elapsed = asyncio.run(status_loop(port, request, 8, seconds / 2))
            base_cpu = proc_cpu_seconds(proc.pid) - cpu0
        base_ok = len(base.get(200, []))
        capacity = base_ok * 100 / base_elapsed
        cpu_per_ok = base_cpu / max(1, base_ok)
        rate = OVERLOAD_FACTOR * capacity / 100
        # The prober is a process of its own, like the kubelet: in this process it would wait for
        # the load generator's GIL and measure the client, not the server.
        prober = subprocess.Popen(
            [sys.executable, "-c", PROBER, str(admin)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        cpu0 = proc_cpu_seconds(proc.pid)
        unsent = 0
        with pinned({0}):
            if mode == "open":
                by_status, elapsed, unsent = asyncio.run(open_loop(port, request, rate, seconds, conc))
            else:  # "retry-after" waits the 1 s the 503 asks for
                backoff = 1.0 if mode == "retry-after" else 0.0
                by_status, elapsed = asyncio.run(status_loop(port, request, conc, seconds, backoff))
        cpu = proc_cpu_seconds(proc.pid) - cpu0
        stopped = time.perf_counter()
        recovery = None  # until a 1-row request is answered 200 within 50 ms again
        with httpx.Client(timeout=5) as c:
            while time.perf_counter() - stopped < 30:
                t0 = time.perf_counter()
                r = c.post(f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer", content=bodies[1].read_bytes())
                if r.status_code == 200 and time.perf_counter() - t0 < 0.05:
                    recovery = time.perf_counter() - stopped
                    break
                time.sleep(0.01)
        probed, _ = prober.communicate("stop\n", timeout=30)
        metrics = scrape(admin)
    probes = json.loads(probed)
    failures = [1 for seconds in probes if seconds is None]
    probes = [seconds for seconds in probes if seconds is not None]
    ok_lat = np.asarray(by_status.get(200, [0.0]))
    good = len(by_status.get(200, [])) * 100 / elapsed
    rejected = np.asarray(by_status.get(503, [0.0])) * 1000
    answered = sum(len(v) for v in by_status.values())
    out = {
        "mode": mode, "options": " ".join(OVERLOAD_OPTIONS), "limit": limit, "conns": conc,
        "offered_rps": rate if mode == "open" else None, "unsent": unsent, "elapsed_s": elapsed,
        "capacity_rows_per_s": capacity, "goodput_rows_per_s": good,
        "goodput_vs_capacity": good / capacity if capacity else None,
        "ok": len(by_status.get(200, [])), "rejected": len(by_status.get(503, [])),
        "other": {k: len(v) for k, v in by_status.items() if k not in (200, 503)},
        "rejection_p50_ms": float(np.percentile(rejected, 50)), "rejection_p99_ms": float(np.percentile(rejected, 99)),
        "accepted_p50_ms": float(np.percentile(ok_lat * 1000, 50)),
        "accepted_p99_ms": float(np.percentile(ok_lat * 1000, 99)),
        "accepted_within_deadline": float(np.mean(ok_lat <= deadline_s)) if by_status.get(200) else None,
        "deadline_s": deadline_s,
        "capacity_cpu_ms_per_ok": 1000 * cpu_per_ok,
        "capacity_other": {k: len(v) for k, v in base.items() if k != 200},
        # The share of the server's CPU that went into answers 200 (at capacity's CPU cost each): what
        # goodput / capacity would be on a core of its own, whatever else ran on this machine.
        "goodput_cpu_share": min(1.0, len(by_status.get(200, [])) * cpu_per_ok / cpu) if cpu else None,
        "server_cpu_s": cpu, "server_cpu_ms_per_answer": 1000 * cpu / max(1, answered),
        "server_cpu_ms_per_ok": 1000 * cpu / max(1, len(by_status.get(200, []))),
        "server_503_mean_ms": 1000 * metrics.get("parity_request_latency_seconds_sum_503", 0.0)
        / max(1.0, metrics.get("parity_request_latency_seconds_count_503", 0.0)),
        "liveness_probes": len(probes), "liveness_failures": len(failures),
        "liveness_p99_ms": float(np.percentile(np.asarray(probes or [0.0]) * 1000, 99)),
        "liveness_max_ms": float(max(probes or [0.0]) * 1000),
        "recovery_s": recovery, "lake_rows": lake_rows(lake), "loadavg": loadavg(),
    }  # fmt: skip
    log(
        f"  overload {mode} ({fmt(out['offered_rps'])} req/s offered, c{conc}) vs limit {limit}: goodput {good:.0f} "
        f"rows/s ({fmt(out['goodput_vs_capacity'], '.2f')} of capacity {capacity:.0f}; CPU share of 200s "
        f"{fmt(out['goodput_cpu_share'], '.2f')}), {out['rejected']} x 503 p50/p99 "
        f"{out['rejection_p50_ms']:.2f}/{out['rejection_p99_ms']:.2f} ms, accepted p99 {out['accepted_p99_ms']:.1f} "
        f"ms, liveness p99 {out['liveness_p99_ms']:.2f} ms ({len(failures)} failed), recovery {fmt(recovery, '.3f')} s"
    )
    return out


def report_lake(lake: dict[str, Any]) -> None:
    """Print the lake / overload figures."""
    print("\n== prediction lake under load (parity on CPU 1, client on CPU 0; lake on = default block mode) ==")
    head = f"  {'case':18}{'rows/s':>10}{'req/s':>9}{'p99 ms':>9}{'CPU-us/req':>12}{'lake/predicted':>16}"
    print(head + f"{'blocked rows':>14}")
    for key, v in lake.items():
        if not isinstance(v, dict) or "rows_per_s" not in v:
            continue
        ratio_txt = fmt(v.get("written_over_predicted"), ".4f")
        cpu_txt = fmt(v.get("server_cpu_us_per_req"), ".0f")
        cells = f"{v['rows_per_s']:>10.0f}{v['rps']:>9.0f}{v['p99_ms']:>9.2f}{cpu_txt:>12}{ratio_txt:>16}"
        print(f"  {key:18}{cells}{v['blocked']:>14.0f}")
    for n, c in ((100, 8), (500, 8), (1, 32)):
        on, off, ack = (lake.get(f"{m}_{n}row_c{c}") for m in ("on", "off", "ack"))
        if on and off and ack:
            cpu_ratio = ratio(off.get("server_cpu_us_per_req"), on.get("server_cpu_us_per_req"))
            print(
                f"  {n}-row c{c}: lake on / lake off = {on['rows_per_s'] / off['rows_per_s']:.3f} "
                f"(by server CPU per request, robust to other load: {fmt(cpu_ratio, '.3f')}); "
                f"ack / buffered = {ack['rows_per_s'] / on['rows_per_s']:.3f}"
            )
    for key in ("overload", "overload_closed", "overload_retry_after"):
        ov = lake.get(key)
        if not ov:
            continue
        load = {
            "open": f"{fmt(ov.get('offered_rps'))} req/s offered on a schedule (open loop)",
            "retry-after": f"{ov['conns']} closed-loop connections waiting the 1 s of Retry-After after a 503",
        }.get(ov.get("mode", ""), f"{ov['conns']} closed-loop connections resending at once after a 503")
        print(
            f"  {key} ({ov.get('options', '--max-inflight ' + str(ov['limit']))}; {load}; 100-row bodies): goodput "
            f"{ov['goodput_rows_per_s']:.0f} rows/s = {fmt(ov['goodput_vs_capacity'], '.2f')} x capacity "
            f"({ov['capacity_rows_per_s']:.0f}; server CPU share of the 200s "
            f"{fmt(ov.get('goodput_cpu_share'), '.2f')}); "
            f"{ov['rejected']} rejected, 503 p50/p99 "
            f"{ov['rejection_p50_ms']:.2f}/{ov['rejection_p99_ms']:.2f} ms; accepted p50/p99 "
            f"{ov.get('accepted_p50_ms', float('nan')):.1f}/{ov['accepted_p99_ms']:.1f} ms, "
            f"{fmt(ov.get('accepted_within_deadline'), '.4f')} within the {ov.get('deadline_s', '-')} s deadline; "
            f"other {ov['other']}, not sent (client out of connections) {ov.get('unsent', 0)}"
        )
        if "server_cpu_ms_per_ok" in ov:
            print(
                f"    server CPU {ov['server_cpu_ms_per_answer']:.3f} ms per answer, "
                f"{ov['server_cpu_ms_per_ok']:.3f} ms per 200; server-side 503 mean {ov['server_503_mean_ms']:.2f} ms; "
                f"loadavg {ov.get('loadavg')}"
            )
        print(
            f"    admin liveness: p99 {ov['liveness_p99_ms']:.2f} ms, max {ov['liveness_max_ms']:.2f} ms, "
            f"{ov['liveness_failures']}/{ov['liveness_probes']} failed; recovery {fmt(ov['recovery_s'], '.3f')} s"
        )
    print(f"  loadavg: {lake.get('loadavg_start')} -> {lake.get('loadavg_end')} (a shared, loaded machine)")


# ------------------------------------------------------------------------------------ report


def summary_of(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text()).get("summary", {}))


def fmt(x: float | None, spec: str = ".0f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def report(paths: Paths, protocols: dict[str, Any] | None) -> dict[str, Any]:
    """Print the parity-vs-peers table, the goals, gRPC vs REST and workers scaling; return the goals."""
    full = json.loads(paths.peers_json.read_text()) if paths.peers_json.is_file() else {}
    summ = full.get("summary", {})
    unpinned = summary_of(paths.unpinned_json)

    def get(s: dict[str, Any], server: str, scenario: str, key: str) -> float | None:
        v = s.get(server, {}).get(scenario, {}).get(key)
        return None if v is None else float(v)

    runs = full.get("runs", [])
    print(f"\n== peer table ({len(runs)} run(s), medians; server on CPU 1, wrk on CPU 0) ==")
    print("loadavg per run: " + "; ".join(f"run {r['run']}: {r['loadavg']}" for r in runs))
    servers = ["parity", "parity-workers2", FLOOR, "mlserver", "mlflow", "bentoml"]
    present = [s for s in servers if s in summ]
    missing = [s for s in servers if s not in summ]
    if missing:
        print(f"not in this run / failed: {missing}")
    for sc in SCENARIOS:
        print(f"\n{sc}")
        head = f"  {'server':18}{'req/s':>9}{'rows/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs floor':>10}{'parity/x':>10}"
        print(head)
        p_rps = get(summ, "parity", sc, "rps_median")
        for s in present:
            rps = get(summ, s, sc, "rps_median")
            label = s + (" *" if s == "parity-workers2" else "")
            print(
                f"  {label:18}{fmt(rps):>9}{fmt(get(summ, s, sc, 'rows_per_s_median')):>10}"
                f"{fmt(get(summ, s, sc, 'p50_ms_median'), '.2f'):>9}{fmt(get(summ, s, sc, 'p99_ms_median'), '.2f'):>9}"
                f"{fmt(get(summ, s, sc, 'rps_vs_floor'), '.3f'):>10}{fmt(ratio(p_rps, rps), '.2f'):>10}"
            )
    if "parity-workers2" in summ:
        print("  * parity-workers2 here: 2 workers sharing CPU 1 (the harness pins every server to one core)")
    if "_inproc" in summ:
        ceiling = "; ".join(f"{k} {v['calls_per_s_median']:.0f} calls/s" for k, v in summ["_inproc"].items())
        print(f"\nin-process ceiling (CPU 1): {ceiling}")

    goals: dict[str, Any] = {}

    def goal(key: str, text: str, value: float | None, ok: bool | None) -> None:
        goals[key] = {"value": value, "met": ok}
        state = "n/a " if ok is None else ("MET " if ok else "MISS")
        print(f"  [{state}] {text}")

    def at_least(value: float | None, bound: float) -> bool | None:
        return None if value is None else value >= bound

    print("\n== goals ==")
    r32 = get(summ, "parity", "1row_c32", "rps_vs_floor")
    text = f"1 row, 32 conns: parity/floor req/s = {fmt(r32, '.3f')} (goal >= {GOAL_C32_VS_FLOOR})"
    goal("c32_vs_floor", text, r32, at_least(r32, GOAL_C32_VS_FLOOR))
    pp, fp = get(summ, "parity", "1row_c1", "p99_ms_median"), get(summ, FLOOR, "1row_c1", "p99_ms_median")
    slack = None if pp is None or fp is None else pp - fp
    text = f"1 row, 1 conn: parity p99 {fmt(pp, '.2f')} ms vs floor {fmt(fp, '.2f')} ms "
    text += f"(difference {fmt(slack, '+.2f')} ms; goal <= +{GOAL_P99_SLACK_MS} ms)"
    goal("p99_c1", text, slack, None if slack is None else slack <= GOAL_P99_SLACK_MS)
    p_rows = get(summ, "parity", "100row_c8", "rows_per_s_median")
    rows = ratio(p_rows, get(summ, FLOOR, "100row_c8", "rows_per_s_median"))
    text = f"100 rows, 8 conns: parity/floor rows/s = {fmt(rows, '.3f')} (goal >= {GOAL_ROWS_VS_FLOOR})"
    goal("rows100_vs_floor", text, rows, at_least(rows, GOAL_ROWS_VS_FLOOR))
    for r in runs:

        def scen(server: str, sc: str, rec: dict[str, Any] = r) -> dict[str, Any]:
            return dict(rec["servers"].get(server, {}).get("scenarios", {}).get(sc, {}))

        p32, f32 = scen("parity", "1row_c32"), scen(FLOOR, "1row_c32")
        p1, f1 = scen("parity", "1row_c1"), scen(FLOOR, "1row_c1")
        p100, f100 = scen("parity", "100row_c8"), scen(FLOOR, "100row_c8")
        if not (p32 and f32 and p1 and f1 and p100 and f100):
            continue
        diff = (p1["lat_us"]["p99"] - f1["lat_us"]["p99"]) / 1000
        print(
            f"      run {r['run']} (parity server CPU in brackets): 1row_c32 {p32['rps'] / f32['rps']:.3f} "
            f"[{p32['server_cpu_util']:.2f}]; 1row_c1 p99 {diff:+.2f} ms [{p1['server_cpu_util']:.2f}]; "
            f"100row_c8 {p100['rows_per_s'] / f100['rows_per_s']:.3f} [{p100['server_cpu_util']:.2f}]"
        )
    if protocols:
        ps = protocols["summary"]
        for conc in (1, 32):
            g, r = ps[f"grpc_c{conc}"]["rps"], ps[f"rest_c{conc}"]["rps"]
            text = f"gRPC vs REST single-row, {conc} in flight: {g:.0f} vs {r:.0f} req/s (x{g / r:.2f}; goal >= 1)"
            gu, ru = ps[f"grpc_c{conc}"].get("server_us_per_req"), ps[f"rest_c{conc}"].get("server_us_per_req")
            if gu and ru:  # the per-core view, which other load on the machine distorts less
                text += f"; server CPU {gu:.0f} vs {ru:.0f} us/request (REST/gRPC x{ru / gu:.2f})"
            goal(f"grpc_c{conc}", text, g / r, g >= r)
    for sc in ("1row_c32", "100row_c8"):
        # Same conditions for both: the unpinned run (a pinned single worker is also in the table below).
        w2 = ratio(get(unpinned, "parity-workers2", sc, "rps_median"), get(unpinned, "parity", sc, "rps_median"))
        text = f"{sc}: --workers 2 / --workers 1, both unpinned (wrk on CPU 0) = {fmt(w2, '.2f')}"
        goal(f"workers2_{sc}", text + f" (goal >= {GOAL_WORKERS2_SCALING})", w2, at_least(w2, GOAL_WORKERS2_SCALING))

    if protocols:
        print("\n== gRPC vs REST (parity, 1 row; server on CPU 1, closed-loop client on CPU 0; medians) ==")
        head = f"  {'case':14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'client cpu':>12}{'server cpu':>12}"
        print(head + f"{'server us/req':>15}")
        for key, v in protocols["summary"].items():
            cells = f"{v['rps']:>9.0f}{v['p50_ms']:>9.2f}{v['p99_ms']:>9.2f}"
            us = v.get("server_us_per_req", math.nan)
            print(f"  {key:14}{cells}{v['client_cpu']:>12.2f}{v['server_cpu']:>12.2f}{us:>15.0f}")
        print("  *-live: the liveness probe (no model, no codec): what each transport alone costs in this server")
    if unpinned:
        print("\n== separate run: parity servers UNPINNED (both cores), wrk on CPU 0 (competes with the server) ==")
        up = json.loads(paths.unpinned_json.read_text())
        head = f"  {'server':18}{'scenario':11}{'req/s':>9}{'rows/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        print(head + f"{'server cpu':>12}{'vs pinned 1w':>14}{'vs 1w':>7}")
        for s in ("parity", "parity-workers2"):
            for sc in SCENARIOS:
                rps = get(unpinned, s, sc, "rps_median")
                cpus = [
                    r["servers"].get(s, {}).get("scenarios", {}).get(sc, {}).get("server_cpu_util") for r in up["runs"]
                ]
                cpu = statistics.median(c for c in cpus if c is not None) if any(c is not None for c in cpus) else None
                print(
                    f"  {s:18}{sc:11}{fmt(rps):>9}{fmt(get(unpinned, s, sc, 'rows_per_s_median')):>10}"
                    f"{fmt(get(unpinned, s, sc, 'p50_ms_median'), '.2f'):>9}"
                    f"{fmt(get(unpinned, s, sc, 'p99_ms_median'), '.2f'):>9}{fmt(cpu, '.2f'):>12}"
                    f"{fmt(ratio(rps, get(summ, 'parity', sc, 'rps_median')), '.2f'):>14}"
                    f"{fmt(ratio(rps, get(unpinned, 'parity', sc, 'rps_median')), '.2f'):>7}"
                )
        print("  loadavg: " + "; ".join(r["loadavg"] for r in up.get("runs", [])))
    return goals


# ------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="harness runs (whole table) and gRPC/REST repeats")
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per scenario")
    parser.add_argument("--only", default="floor,mlflow,mlserver,bentoml,parity", help="servers in the peer table")
    parser.add_argument("--no-unpinned", action="store_true", help="skip the --workers 2 run on both cores")
    parser.add_argument("--no-grpc", action="store_true", help="skip gRPC vs REST")
    parser.add_argument("--rebuild", action="store_true", help="re-package the parity artifact")
    parser.add_argument("--report-only", action="store_true", help="print the last results again")
    parser.add_argument("--no-lake", action="store_true", help="skip the lake / overload scenarios")
    parser.add_argument("--lake-only", action="store_true", help="run only the lake / overload scenarios")
    parser.add_argument("--overload-only", action="store_true", help="run only the overload scenarios (~1 min)")
    parser.add_argument(
        "--grpc-only", action="store_true", help="only gRPC vs REST on one process (needs only the core venv)"
    )
    parser.add_argument("--lake-off", action="store_true", help="gRPC vs REST with the lake off (default: on)")
    args = parser.parse_args()
    paths = Paths(BENCH_ROOT)
    paths.out.mkdir(parents=True, exist_ok=True)

    if args.report_only:
        saved = json.loads(paths.summary_json.read_text()) if paths.summary_json.is_file() else {}
        saved["goals"] = report(paths, saved.get("grpc_vs_rest"))
        if saved.get("lake"):
            report_lake(saved["lake"])
        if saved.get("grpc_vs_rest") is not None:
            paths.summary_json.write_text(json.dumps(saved, indent=1))
        return

    load: dict[str, str] = {"start": loadavg()}
    log(f"BENCH_ROOT={paths.root}; loadavg {load['start']}")
    copy_harness(PEERS_SRC, paths.harness)
    if args.grpc_only or args.lake_only or args.overload_only:
        ensure_model_only(paths)
    if args.grpc_only:
        artifact = package_parity(paths, args.rebuild)
        output = probability_output(artifact)
        write_rest_bodies(paths, output)
        protocols = grpc_vs_rest(paths, artifact, output, args.seconds, 3.0, max(1, args.runs), args.lake_off)
        print(json.dumps({"loadavg": [load["start"], loadavg()], **protocols["summary"]}, indent=1))
        return
    if not (args.lake_only or args.overload_only):
        ensure_built(paths)
    artifact = package_parity(paths, args.rebuild)
    output = probability_output(artifact)
    spec = write_spec(paths, artifact, write_rest_bodies(paths, output))
    shutil.rmtree(paths.out / "lakes", ignore_errors=True)
    if args.lake_only or args.overload_only:
        if args.lake_only:
            lake = lake_scenarios(paths, artifact, output, args.seconds)
        else:
            lake = overload_scenarios(paths, artifact, args.seconds)
        report_lake(lake)
        saved = json.loads(paths.summary_json.read_text()) if paths.summary_json.is_file() else {}
        merged = lake if args.lake_only else {**saved.get("lake", {}), **lake}  # overload-only keeps the rest
        paths.summary_json.write_text(json.dumps({**saved, "lake": merged}, indent=1))
        return
    common = ["--extra", str(spec), "--runs", str(args.runs), "--seconds", str(args.seconds)]

    load["peers_start"] = loadavg()
    run_harness(paths, [*common, "--only", args.only], stdout=paths.out / "peers_RESULTS.md")
    load["peers_end"] = loadavg()
    if not args.no_unpinned:
        paths.unpinned_json.parent.mkdir(parents=True, exist_ok=True)
        # Both parity entries again, with the harness's server pinning widened to both cores.
        unpinned = [*common, "--only", "parity", "--no-inproc", "--out", str(paths.unpinned_json)]
        out = paths.unpinned_json.with_name("stdout.md")
        run_harness(paths, unpinned, env={"SERVER_CPU": "0,1"}, stdout=out)
        load["unpinned_end"] = loadavg()
    protocols = None
    if not args.no_grpc:
        protocols = grpc_vs_rest(paths, artifact, output, args.seconds, 3.0, max(1, args.runs), args.lake_off)
        load["grpc_end"] = loadavg()
    lake = None if args.no_lake else lake_scenarios(paths, artifact, output, args.seconds)
    goals = report(paths, protocols)
    if lake is not None:
        report_lake(lake)
    load["end"] = loadavg()
    print("\nloadavg (1/5/15 min) at phases: " + "; ".join(f"{k}: {' '.join(v.split()[:3])}" for k, v in load.items()))
    paths.summary_json.write_text(
        json.dumps(
            {
                "loadavg": load,
                "goals": goals,
                "grpc_vs_rest": protocols,
                "lake": lake,
                "peers_results": str(paths.peers_json),
                "unpinned_results": str(paths.unpinned_json),
            },
            indent=1,
        )
    )
    print(f"full results: {paths.peers_json}, {paths.unpinned_json}, {paths.summary_json}")


if __name__ == "__main__":
    main()
