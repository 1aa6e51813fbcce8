"""Composition benchmark: fan-out latency, in-process overhead, throughput vs BentoML, MLServer interop.

    python benchmarks/compose.py [--duration 5] [--no-peers]

Two parity model servers (churn classifier and spend regressor, the models of tests/compose) and
``parity compose serve`` over both (REST downstreams, lake on everywhere, as users run it) run on
CPU 1 (``taskset``); ``wrk`` (one thread) runs on CPU 0. Measured in the same run:

1. 1-row requests at 1 connection: each model called directly vs the composition calling both in
   parallel: composition p50 / slowest direct p50 (goal <= 1.3) and p99 ratio (goal <= 1.5).
2. In-process: ``Composition.run`` with the two artifacts vs the two artifacts' own predict time.
3. 1-row requests at 32 connections: the composition vs a BentoML 1.4 service composing the same two
   fitted pipelines the documented way (``bentoml.depends`` on one service per model, called
   concurrently), from the peer harness's BentoML venv (``$BENCH_ROOT/venvs/bentoml``).
4. Interop: the spend model served by MLServer (mlserver-sklearn, V2 REST, the harness's venv) as
   the second downstream of a composition: ``check`` passes and decisions match the in-process run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_ROOT = Path(os.environ.get("BENCH_ROOT", "/tmp/bench"))
SERVER_CPU, LOAD_CPU = os.environ.get("SERVER_CPU", "1"), os.environ.get("WRK_CPU", "0")

BENTO_SERVICE = """
import asyncio
import os
from typing import Any

import bentoml
import joblib
import pandas as pd


@bentoml.service(workers=1)
class Churn:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["CHURN_JOBLIB"])

    @bentoml.api
    def predict(self, rows: list[dict[str, Any]]) -> list[float]:
        return self.model.predict_proba(pd.DataFrame(rows))[:, 1].tolist()


@bentoml.service(workers=1)
class Spend:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["SPEND_JOBLIB"])

    @bentoml.api
    def predict(self, rows: list[dict[str, Any]]) -> list[float]:
        return self.model.predict(pd.DataFrame(rows)[["age", "plan"]]).tolist()


@bentoml.service(workers=1)
class Retention:
    churn = bentoml.depends(Churn)
    spend = bentoml.depends(Spend)

    @bentoml.api
    async def decide(self, instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
        p, s = await asyncio.gather(self.churn.to_async.predict(instances), self.spend.to_async.predict(instances))
        out = []
        for pi, si in zip(p, s):
            decision = ("retain" if si > 50 else "call") if pi > 0.5 else "ignore"
            out.append({"decision": decision, "value": float(si * (1.0 - pi))})
        return out
"""

MLSERVER_RULES = """
import os
from parity.compose import Composition, Remote
from parity.schema import ColumnSpec, OutputSpec
from tests.compose.rules_app import INPUTS, OUTPUTS, decide

composition = Composition("retention_interop", inputs=INPUTS, outputs=OUTPUTS, deadline_s=20.0)
composition.model("churn", Remote(os.environ["TEST_CHURN_URL"], "churn"), reads=["probability"], timeout_s=10.0)
composition.model("spend", Remote(os.environ["TEST_SPEND_URL"], "spend", parameters={"content_type": "pd"}),
                  reads=["predict"], timeout_s=10.0)
composition.rule(per_row=True)(
    lambda row, out: decide(row, {"churn": out["churn"], "spend": {"prediction": out["spend"]["predict"]}}, 0.5)
)
"""


def free_port() -> int:
    """A TCP port free right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cmd: list[str]) -> list[str]:
    """``cmd`` on the server core (when taskset exists)."""
    return ["taskset", "-c", SERVER_CPU, *cmd] if shutil.which("taskset") else cmd


def wait_ready(url: str, proc: subprocess.Popen[bytes], path: str = "/v2/health/ready", timeout: float = 120) -> None:
    """Poll a readiness path until 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def wrk(url: str, body: bytes, connections: int, seconds: int) -> dict[str, float]:
    """req/s and p50/p99 ms of POSTing ``body`` to ``url`` (wrk, one thread, on the load core)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write(f"wrk.body = {json.dumps(body.decode())}\n")
        script = f.name
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency", "-s", script, url]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", LOAD_CPU, *cmd]
    subprocess.run([*cmd[:-4], "-d1s", *cmd[-3:]], capture_output=True, check=True)  # warm-up
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(script)

    def ms(label: str) -> float:
        m = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out)
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": float(rps.group(1)) if rps else float("nan"),
        "p50": ms("50%"),
        "p99": ms("99%"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def v2_body(columns: dict[str, Any], types: dict[str, str]) -> bytes:
    """An OIP V2 JSON body."""
    inputs = [{"name": k, "datatype": types[k], "shape": [len(v)], "data": v} for k, v in columns.items()]
    return json.dumps({"inputs": inputs}).encode()


def main() -> None:
    """Run every measurement and print the figures with their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--no-peers", action="store_true", help="skip BentoML and MLServer")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (apt-get install wrk)")
    import joblib
    from tests.compose.conftest import spend_pipeline
    from tests.compose.rules_app import build
    from tests.server.conftest import fit_pipeline, make_frame, package

    import parity
    from parity.compose import Local
    from parity.registry import Registry

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (figures from a shared, loaded machine)")
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        frame = make_frame(400, seed=3)
        churn_pipe = fit_pipeline(frame)
        churn_art = package(churn_pipe, frame)
        spend_pipe = spend_pipeline(frame)
        spend_art = parity.package(spend_pipe, frame[["age", "plan"]], name="spend")

        registry = Registry(tmp / "home")
        for art in (churn_art, spend_art):
            registry.push(art.save(tmp / art.name))
        churn_art, spend_art = registry.load("churn"), registry.load("spend")
        row = {"age": 41.0, "income": 62.0, "plan": "pro"}
        types = {"age": "FP64", "income": "FP64", "plan": "BYTES"}
        try:
            ports = {n: free_port() for n in ("churn", "spend", "compose")}
            for name in ("churn", "spend"):
                cmd = [str(Path(sys.executable).parent / "parity"), "serve", name, "--registry", str(tmp / "home")]
                cmd += ["--port", str(ports[name]), "--grpc-port", "0", "--lake", str(tmp / f"lake-{name}")]
                cmd += ["--log-level", "warning", "--reload-interval", "0"]
                procs.append(subprocess.Popen(pinned(cmd), env=env))
            for name, proc in zip(("churn", "spend"), procs, strict=True):
                wait_ready(f"http://127.0.0.1:{ports[name]}", proc)
            comp_env = {
                **env,
                "TEST_CHURN_URL": f"http://127.0.0.1:{ports['churn']}",
                "TEST_SPEND_URL": f"http://127.0.0.1:{ports['spend']}",
                "TEST_DEADLINE_S": "20",
                "PYTHONPATH": str(ROOT),
            }
            cmd = [str(Path(sys.executable).parent / "parity"), "compose", "serve"]
            cmd += [f"{ROOT / 'tests/compose/rules_app.py'}:composition", "--port", str(ports["compose"])]
            cmd += ["--grpc-port", "0", "--lake", str(tmp / "lake-compose"), "--log-level", "warning"]
            procs.append(subprocess.Popen(pinned(cmd), env=comp_env))
            wait_ready(f"http://127.0.0.1:{ports['compose']}", procs[-1])

            # ---------------------------------------------------------------- 1. fan-out latency
            body_churn = v2_body({k: [v] for k, v in row.items()}, types)
            body_spend = v2_body({"age": [row["age"]], "plan": [row["plan"]]}, types)
            d = args.duration
            churn = wrk(f"http://127.0.0.1:{ports['churn']}/v2/models/churn/infer", body_churn, 1, d)
            spend = wrk(f"http://127.0.0.1:{ports['spend']}/v2/models/spend/infer", body_spend, 1, d)
            comp = wrk(f"http://127.0.0.1:{ports['compose']}/v2/models/retention/infer", body_churn, 1, d)
            slow_p50, slow_p99 = max(churn["p50"], spend["p50"]), max(churn["p99"], spend["p99"])
            print("\n1-row requests, 1 connection (p50 / p99 ms)")
            print(f"  churn direct      {churn['p50']:7.3f} / {churn['p99']:7.3f}")
            print(f"  spend direct      {spend['p50']:7.3f} / {spend['p99']:7.3f}")
            print(f"  composition       {comp['p50']:7.3f} / {comp['p99']:7.3f}  (both models, in parallel)")
            print(f"  sum of directs    {churn['p50'] + spend['p50']:7.3f}   (what sequential calls would cost)")
            print(
                f"  ratio vs slowest  p50 {comp['p50'] / slow_p50:.2f}x (goal <= 1.3), "
                f"p99 {comp['p99'] / slow_p99:.2f}x (goal <= 1.5)"
            )

            # ---------------------------------------------------------------- 2. in-process
            inproc = build("http://unused:1", "http://unused:1")
            models = {"churn": Local(churn_art), "spend": Local(spend_art)}
            cols = {
                "age": np.array([row["age"]]),
                "income": np.array([row["income"]]),
                "plan": np.array([row["plan"]], dtype=object),
            }
            spend_cols = {"age": cols["age"], "plan": cols["plan"]}
            for _ in range(300):
                inproc.run(row, models=models)
            own, total = [], []
            for _ in range(3000):
                t0 = time.perf_counter()
                churn_art.predict_columns(cols)
                spend_art.predict_columns(spend_cols)
                t1 = time.perf_counter()
                inproc.run(row, models=models)
                t2 = time.perf_counter()
                own.append(t1 - t0)
                total.append(t2 - t1)
            own_ms, total_ms = np.array(own) * 1000, np.array(total) * 1000
            added = total_ms - own_ms
            print("\nin-process Composition.run, 1 row, both artifacts (ms)")
            print(f"  models' own time  p50 {np.percentile(own_ms, 50):.3f}  p99 {np.percentile(own_ms, 99):.3f}")
            print(f"  composition       p50 {np.percentile(total_ms, 50):.3f}  p99 {np.percentile(total_ms, 99):.3f}")
            print(
                f"  added             p50 {np.percentile(added, 50):.3f}  p99 {np.percentile(added, 99):.3f}"
                "  (goal: p99 < 1 ms)"
            )
            inproc.close()

            # ---------------------------------------------------------------- 3. throughput
            comp32 = wrk(f"http://127.0.0.1:{ports['compose']}/v2/models/retention/infer", body_churn, 32, d)
            print("\n1-row requests, 32 connections")
            print(
                f"  parity composition  {comp32['rps']:8.0f} req/s  p50 {comp32['p50']:.2f} ms"
                f"  p99 {comp32['p99']:.2f} ms  non-2xx {comp32['errors']:.0f}"
            )
            if not args.no_peers:
                bento_py = BENCH_ROOT / "venvs/bentoml/bin/python"
                if not bento_py.exists():
                    print(f"  BentoML: venv missing at {bento_py} (build it with the peer harness's run_peers.sh)")
                else:
                    joblib.dump(churn_pipe, tmp / "churn.joblib")
                    joblib.dump(spend_pipe, tmp / "spend.joblib")
                    (tmp / "bento_compose.py").write_text(BENTO_SERVICE)
                    port = free_port()
                    bento_env = {
                        **env,
                        "CHURN_JOBLIB": str(tmp / "churn.joblib"),
                        "SPEND_JOBLIB": str(tmp / "spend.joblib"),
                        "BENTOML_DO_NOT_TRACK": "true",
                    }
                    cmd = [str(bento_py.parent / "bentoml"), "serve", "bento_compose:Retention", "--port", str(port)]
                    bento = subprocess.Popen(
                        pinned(cmd), cwd=tmp, env=bento_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    )
                    procs.append(bento)
                    wait_ready(f"http://127.0.0.1:{port}", bento, "/readyz")
                    bento_body = json.dumps({"instances": [row]}).encode()
                    answer = httpx.post(
                        f"http://127.0.0.1:{port}/decide",
                        content=bento_body,
                        timeout=30,
                        headers={"content-type": "application/json"},
                    ).json()
                    ours = httpx.post(
                        f"http://127.0.0.1:{ports['compose']}/v1/models/retention:predict",
                        json={"instances": [row]},
                        timeout=10,
                    ).json()["predictions"]
                    print(
                        f"  same decision: {answer[0]['decision'] == ours[0]['decision']}, value diff "
                        f"{abs(answer[0]['value'] - ours[0]['value']):.1e} (BentoML {answer[0]}, parity {ours[0]})"
                    )
                    b32 = wrk(f"http://127.0.0.1:{port}/decide", bento_body, 32, d)
                    print(
                        f"  BentoML 1.4 service {b32['rps']:8.0f} req/s  p50 {b32['p50']:.2f} ms"
                        f"  p99 {b32['p99']:.2f} ms  non-2xx {b32['errors']:.0f}"
                    )
                    ratio = comp32["rps"] / b32["rps"] if b32["rps"] > 0 else float("inf")
                    print(f"  parity / BentoML    {ratio:.1f}x (goal >= 10x)")

                # ------------------------------------------------------------ 4. interop
                ml_bin = BENCH_ROOT / "venvs/mlserver/bin/mlserver"
                if not ml_bin.exists():
                    print(f"\nMLServer: venv missing at {ml_bin}")
                else:
                    interop(tmp, ml_bin, env, ports, spend_pipe, joblib, row, procs)
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def interop(
    tmp: Path,
    ml_bin: Path,
    env: dict[str, str],
    ports: dict[str, int],
    spend_pipe: Any,
    joblib: Any,
    row: dict[str, Any],
    procs: list[subprocess.Popen[bytes]],
) -> None:
    """The spend model on MLServer (V2 REST) as the composition's second downstream."""
    from parity.compose import load_composition

    model_dir = tmp / "mlserver" / "spend"
    model_dir.mkdir(parents=True)
    if not (tmp / "spend.joblib").exists():
        joblib.dump(spend_pipe, tmp / "spend.joblib")
    shutil.copy(tmp / "spend.joblib", model_dir / "model.joblib")
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "spend",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "1"},
                "inputs": [
                    {"name": "age", "datatype": "FP64", "shape": [-1]},
                    {"name": "plan", "datatype": "BYTES", "shape": [-1]},
                ],
                "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1]}],
            }
        )
    )
    http, grpc_port, metrics = free_port(), free_port(), free_port()
    (tmp / "mlserver" / "settings.json").write_text(
        json.dumps(
            {
                "parallel_workers": 0,
                "http_port": http,
                "grpc_port": grpc_port,
                "metrics_port": metrics,
                "host": "127.0.0.1",
            }
        )
    )
    ml = subprocess.Popen(
        pinned([str(ml_bin), "start", str(tmp / "mlserver")]),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(ml)
    wait_ready(f"http://127.0.0.1:{http}", ml)
    (tmp / "interop_rules.py").write_text(MLSERVER_RULES)
    os.environ["TEST_CHURN_URL"] = f"http://127.0.0.1:{ports['churn']}"
    os.environ["TEST_SPEND_URL"] = f"http://127.0.0.1:{http}"
    comp = load_composition(f"{tmp / 'interop_rules.py'}:composition")
    found = comp.check()
    rows = [row, {"age": None, "income": 30.0, "plan": "basic"}, {"age": 25.0, "income": 90.0, "plan": "max"}]
    decided = comp.run(rows)
    latencies = []
    for _ in range(200):
        t0 = time.perf_counter()
        comp.run(rows)
        latencies.append((time.perf_counter() - t0) * 1000)
    served = [{"age": r["age"], "plan": r["plan"]} for r in rows]
    direct = spend_pipe.predict(__import__("pandas").DataFrame(served))
    got = decided.calls["spend"].outputs["predict"]
    print(f"\ninterop: spend on MLServer {found['spend']['primary']}, churn on parity")
    print(f"  decisions {decided.rows()}")
    print(
        f"  MLServer's spend == sklearn predict: max |diff| {float(np.max(np.abs(got - direct))):.1e}; "
        f"3-row composition over parity + MLServer p50 {np.percentile(latencies, 50):.2f} ms, "
        f"p99 {np.percentile(latencies, 99):.2f} ms"
    )
    comp.close()


if __name__ == "__main__":
    main()
