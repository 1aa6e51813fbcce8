"""`make demo`: the main job end to end on embedded defaults.

train -> package (with parity proof) -> verify -> register + alias -> predict with the CLI ->
the same rows through the Node.js client -> serve over REST (KServe V1 records, Open Inference
Protocol V2 JSON) and gRPC -> show the lake files the server wrote -> compare everything.
Everything lands under ``demo-out/`` (artifact, registry, lake, inputs, outputs); nothing is
downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from parity.schema import MISSING_STRING

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("PARITY_DEMO_OUT") or ROOT / "demo-out")  # the test suite runs it elsewhere
BIN = Path(sys.executable).parent


def step(title: str) -> None:
    """Print a step header."""
    print(f"\n==> {title}", flush=True)


def run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run a command, echo it, fail loudly."""
    print("$ " + " ".join(str(a) for a in args), flush=True)
    proc = subprocess.run([str(a) for a in args], text=True, capture_output=True, check=False, **kw)  # type: ignore[call-overload]
    if proc.stdout.strip():
        print(proc.stdout.rstrip())
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        raise SystemExit(f"demo step failed: {' '.join(str(a) for a in args)} (exit {proc.returncode})")
    return proc


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def drifted_batch(n: int = 400) -> pd.DataFrame:
    """Penguins as a broken upstream would send them: one shifted measurement, new islands, no body mass."""
    from train_penguins import CATEGORICAL, NUMERIC, load_data

    rows = load_data()[NUMERIC + CATEGORICAL].sample(n, replace=True, random_state=7).reset_index(drop=True)
    rows["bill_length_mm"] = rows["bill_length_mm"] + 9.0  # e.g. a unit or calibration change
    rng = np.random.default_rng(7)
    rows.loc[rng.random(n) < 0.3, "island"] = "Anvers"  # a colony the model never saw
    rows["body_mass_g"] = np.nan  # the scale feed broke
    return rows


def serve_and_query(env: dict[str, str], rows: pd.DataFrame) -> dict[str, Any]:
    """Start `parity serve` in the background, query it three ways, stop it; return the answers."""
    import httpx
    import tritonclient.grpc as grpcclient

    port, grpc_port = free_port(), free_port()
    lake = OUT / "lake"
    cmd = [str(BIN / "parity"), "serve", "penguins@production", "--port", str(port)]
    cmd += ["--grpc-port", str(grpc_port), "--lake", str(lake)]
    print("$ " + " ".join(cmd) + " &", flush=True)
    log = open(OUT / "server.log", "wb")  # noqa: SIM115 - closed below, after the server stops
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not become ready; see {OUT / 'server.log'}")
            time.sleep(0.2)
        records = json.loads(rows.to_json(orient="records"))
        v1 = httpx.post(f"{base}/v1/models/penguins:predict", json={"instances": records}, timeout=10)
        v1.raise_for_status()
        print(f"REST  V1 records  -> {len(v1.json()['predictions'])} predictions, e.g. {v1.json()['predictions'][0]}")

        # Tensor datatypes come from the model's metadata (an imputed int column is FP64: it accepts nulls).
        meta = httpx.get(f"{base}/v2/models/penguins", timeout=10).json()
        datatypes = {spec["name"]: spec["datatype"] for spec in meta["inputs"]}
        inputs = []
        for col in rows.columns:
            values = [None if pd.isna(v) else v for v in rows[col].tolist()]
            inputs.append({"name": col, "datatype": datatypes[col], "shape": [len(rows)], "data": values})
        v2 = httpx.post(f"{base}/v2/models/penguins/infer", json={"inputs": inputs}, timeout=10)
        v2.raise_for_status()
        v2_out = {o["name"]: o["data"] for o in v2.json()["outputs"]}
        print(f"REST  V2 tensors  -> outputs {sorted(v2_out)}")

        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        grpc_inputs = []
        for spec in inputs:
            values = rows[spec["name"]]
            if spec["datatype"] == "BYTES":
                arr = np.array([(MISSING_STRING if pd.isna(v) else v) for v in values], dtype=object)
            else:
                arr = values.to_numpy(dtype=np.float64 if spec["datatype"] == "FP64" else np.int64)
            tensor = grpcclient.InferInput(spec["name"], [len(rows)], spec["datatype"])
            tensor.set_data_from_numpy(arr)
            grpc_inputs.append(tensor)
        result = client.infer("penguins", grpc_inputs)
        grpc_labels = [v.decode() for v in result.as_numpy("label")]
        client.close()
        print(f"gRPC  ModelInfer  -> {len(grpc_labels)} labels, e.g. {grpc_labels[:3]}")
        drifted = drifted_batch()
        body = {"instances": json.loads(drifted.to_json(orient="records"))}
        sent = httpx.post(f"{base}/v1/models/penguins:predict", json=body, timeout=30)
        sent.raise_for_status()
        print(f"REST  V1 records  -> {len(drifted)} rows of a drifted batch (shifted bill length, new island, no mass)")
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        served = [line for line in metrics.splitlines() if line.startswith("parity_requests_total")]
        print("metrics: " + "; ".join(served[:3]))
    finally:
        server.send_signal(signal.SIGTERM)  # graceful: finishes requests and flushes the lake
        code = server.wait(timeout=30)
        log.close()
        print(f"server stopped with exit code {code}")
    files = sorted(lake.rglob("*.parquet"))
    import pyarrow.parquet as pq

    lake_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    for f in files:
        print(f"  lake file {f.relative_to(OUT)} ({pq.ParquetFile(f).metadata.num_rows} rows)")
    return {
        "v1": [p["label"] for p in v1.json()["predictions"]],
        "v2": v2_out["label"],
        "grpc": grpc_labels,
        "lake_rows": lake_rows,
        "v2_probabilities": v2_out,
    }


def main() -> None:
    """Run the demo."""
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    env = {**os.environ, "PARITY_HOME": str(OUT / "home")}
    parity_cli = BIN / "parity"

    step("train on the Palmer penguins and package (parity check included)")
    sys.path.insert(0, str(ROOT / "examples"))
    from train_penguins import CATEGORICAL, NUMERIC, load_data, train

    artifact = train(OUT / "penguins")
    report = artifact.parity_report
    worst = max(d.max_abs_diff for d in report.outputs.values())
    print(
        f"parity: passed={report.passed}, {report.rows_checked} rows in {len(report.cases)} cases, "
        f"max |diff| {worst:.1e}"
    )

    step("inspect and verify the artifact with the CLI")
    run([parity_cli, "inspect", OUT / "penguins"], env=env)
    run([parity_cli, "verify", OUT / "penguins"], env=env)

    step("register it and point the 'production' alias at it")
    run([parity_cli, "registry", "push", OUT / "penguins"], env=env)
    run([parity_cli, "registry", "alias", "penguins", "production", "1"], env=env)
    run([parity_cli, "registry", "list"], env=env)

    step("predict raw rows with the CLI (CSV in, CSV out)")
    rows = load_data()[NUMERIC + CATEGORICAL].sample(40, random_state=1).reset_index(drop=True)
    rows.to_csv(OUT / "rows.csv", index=False)
    run(
        [parity_cli, "predict", "penguins@production", "--input", OUT / "rows.csv", "--output", OUT / "pred.csv"],
        env=env,
    )
    cli_out = pd.read_csv(OUT / "pred.csv")
    print(cli_out.head(5).to_string(index=False))

    step("the same rows through the Node.js client (onnxruntime-node)")
    records = json.loads(rows.to_json(orient="records"))
    (OUT / "rows.json").write_text(json.dumps(records))
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed: the demo's Node step needs Node.js >= 18")
    run([node, ROOT / "clients/node/bin/parity-node.js", OUT / "penguins", OUT / "rows.json", OUT / "node.json"])
    node_out = pd.DataFrame(json.loads((OUT / "node.json").read_text()))

    step("serve the production alias: REST (V1 records, V2 tensors) and gRPC, logging to the lake")
    served = serve_and_query(env, rows)

    step("skew report: lake vs training reference (terminal table, JSON and HTML)")
    skew_cmd = [parity_cli, "skew", "penguins@production", "--data", OUT / "lake"]
    skew_cmd += ["--html", OUT / "skew.html", "--json", OUT / "skew.json"]
    # A wide virtual terminal: rich wraps tables to 80 columns when stdout is not a TTY.
    skew = subprocess.run(skew_cmd, env={**env, "COLUMNS": "160"}, text=True, capture_output=True, check=False)
    print(skew.stdout.rstrip())
    if skew.returncode != 0:
        print(skew.stderr, file=sys.stderr)
        raise SystemExit(f"parity skew failed (exit {skew.returncode})")
    skew_json = json.loads((OUT / "skew.json").read_text())
    flagged = sorted(f["name"] for f in skew_json["features"] if f["severity"] in ("warn", "alert"))
    print(f"flagged features: {flagged}; HTML report: {OUT / 'skew.html'}")

    step("business logic as its own service: a composition over two model servers, with a fallback")
    from compose_demo import run_compose_demo

    composed = run_compose_demo(OUT, env, free_port, rows)

    step("summary")
    py_out = artifact.predict(rows)
    prob_cols = [c for c in py_out.columns if c.startswith("probability")]
    node_diff = float(np.max(np.abs(node_out[prob_cols].to_numpy() - py_out[prob_cols].to_numpy())))
    cli_diff = float(np.max(np.abs(cli_out[prob_cols].to_numpy() - py_out[prob_cols].to_numpy())))
    labels_equal = (
        list(node_out["label"])
        == list(py_out["label"])
        == list(cli_out["label"])
        == served["v1"]
        == served["v2"]
        == served["grpc"]
    )
    server_diff = max(
        float(np.max(np.abs(np.asarray(served["v2_probabilities"][c]) - py_out[c].to_numpy()))) for c in prob_cols
    )
    print(f"rows predicted:                 {len(rows)}")
    print(f"holdout accuracy:               {artifact.manifest['metrics']['holdout_accuracy']:.3f}")
    print(f"parity (package time):          max |diff| {worst:.1e} over {report.rows_checked} rows")
    print(f"Python vs CLI  max |diff|:      {cli_diff:.1e}")
    print(f"Python vs Node max |diff|:      {node_diff:.1e}")
    print(f"Python vs server max |diff|:    {server_diff:.1e}")
    print(f"lake rows written by server:    {served['lake_rows']} (3 protocols x {len(rows)} rows + 400 drifted)")
    print(f"labels identical everywhere:    {labels_equal}")
    lake_ok = served["lake_rows"] == 3 * len(rows) + 400
    planted = {"bill_length_mm", "island", "body_mass_g"}
    print(f"skew found the planted drift:   {planted <= set(flagged)} ({sorted(planted)})")
    print(f"composition == rule in-process: {composed['same']}; fallback shown: {composed['fallback']}")
    print(f"composition skew features:      {len(composed['skew_features'])} (inputs, both models, decisions)")
    if not (
        labels_equal
        and node_diff <= 1e-5
        and cli_diff <= 1e-5
        and server_diff <= 1e-5
        and lake_ok
        and planted <= set(flagged)
        and composed["same"]
        and composed["fallback"]
    ):
        raise SystemExit("demo found a mismatch")
    print(f"\ndemo OK: artifact, registry and outputs are in {OUT}/")


if __name__ == "__main__":
    main()
