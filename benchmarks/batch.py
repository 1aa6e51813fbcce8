"""Batch scoring throughput: `parity batch` local / dask / spark vs a plain pandas + scikit-learn loop.

    python benchmarks/batch.py --rows 5000000        # the issue's size (default 1,000,000)

Data: the peers' churn pipeline (12 raw columns, /work/shared/bench/peers/make_model.py's generator,
GradientBoosting), written to one Parquet file. Each contender runs in its own process over the same
file, so its peak RSS is its own; the baseline reads the same row groups with pyarrow and calls
``pipeline.predict_proba`` per batch. Prints rows/s, ratios vs the baseline, CPU seconds per million
rows (utime + stime of the contender's process tree: threads, and Spark's JVM and Python workers;
much steadier than rows/s on a busy machine) and peak RSS.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

PEERS = Path(os.environ.get("PEERS_MODEL", "/work/shared/bench/peers/make_model.py"))

CHILD = r"""
import json, os, pickle, sys, time
engine, model_dir, pipe, data, out = sys.argv[1:6]

def tree_cpu():
    # utime + stime of this process, its threads and its live descendants (Spark's JVM and Python workers).
    parents, cpu = {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(pid)], cpu[int(pid)] = int(fields[1]), int(fields[11]) + int(fields[12])
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0)
        todo += [c for c, p in parents.items() if p == pid]
    return total / os.sysconf("SC_CLK_TCK")

t, c = time.perf_counter(), tree_cpu()
if engine == "sklearn":
    import pyarrow.parquet as pq
    model = pickle.load(open(pipe, "rb"))
    rows = 0
    for batch in pq.ParquetFile(data).iter_batches(batch_size=65536):
        model.predict_proba(batch.to_pandas())
        rows += batch.num_rows
else:
    from parity.batch import score
    kw = {}
    if engine == "spark":
        from parity._spark import spark_session
        kw["spark"] = spark_session("local[2]", {"spark.ui.showConsoleProgress": "false", **json.loads(sys.argv[6])})
        kw["spark"].sparkContext.setLogLevel("ERROR")
        t, c = time.perf_counter(), tree_cpu()  # JVM start excluded
    rows = score(model_dir, data, out, engine=engine, keys=["customer_id"], **kw).rows
seconds, cpu = time.perf_counter() - t, tree_cpu() - c
# VmHWM, not ru_maxrss: exec keeps the parent's high-water mark in ru_maxrss (the data generator's).
peak = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024
print(json.dumps({"rows": rows, "seconds": seconds, "cpu_s": cpu, "peak_mib": peak}))
"""


def make(rows: int, root: Path) -> tuple[Path, Path, Path]:
    """Fit the peers' churn pipeline, package it, and write ``rows`` raw rows to Parquet."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    import parity

    spec = importlib.util.spec_from_file_location("peers_make_model", PEERS)
    assert spec is not None and spec.loader is not None
    peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers)
    df, y = peers.make_data()
    pipe = peers.make_pipeline()
    pipe.fit(df, y)
    model_dir = parity.package(pipe, df, name="churn").save(root / "churn")
    pipe_file = root / "pipe.pkl"
    pipe_file.write_bytes(pickle.dumps(pipe))
    data = root / "rows.parquet"
    writer = None
    done, seed = 0, 1
    while done < rows:
        chunk, _ = peers.make_data(seed=seed, n=min(500_000, rows - done))
        chunk.insert(0, "customer_id", np.arange(done, done + len(chunk), dtype=np.int64))
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        writer = writer or pq.ParquetWriter(data, table.schema)
        writer.write_table(table, row_group_size=131_072)
        done, seed = done + len(chunk), seed + 1
    assert writer is not None
    writer.close()
    return model_dir, pipe_file, data


def run(engine: str, model_dir: Path, pipe: Path, data: Path, root: Path, conf: dict[str, str]) -> dict[str, float]:
    out = root / f"out-{engine}" if engine != "local" else root / "out-local.parquet"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, engine, str(model_dir), str(pipe), str(data), str(out), json.dumps(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default="sklearn,local,dask,spark")
    parser.add_argument("--spark-conf", action="append", default=[], help="KEY=VALUE for the SparkSession")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()}  cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir, pipe, data = make(args.rows, root)
        results = {}
        for engine in args.engines.split(","):
            results[engine] = run(engine, model_dir, pipe, data, root, dict(kv.split("=", 1) for kv in args.spark_conf))
            print(engine, results[engine], flush=True)
    base = results.get("sklearn")
    for engine, r in results.items():
        rate = r["rows"] / r["seconds"]
        ratio = f"  {rate / (base['rows'] / base['seconds']):.2f}x sklearn" if base else ""
        print(f"{engine:8s} {r['rows']:>10,} rows  {r['seconds']:7.2f} s  {rate:>12,.0f} rows/s{ratio}  "
              f"{r['cpu_s'] / r['rows'] * 1e6:5.2f} CPU-s/M rows  peak RSS {r['peak_mib']:.0f} MiB")  # fmt: skip
    if "local" in results and "spark" in results:
        local = results["local"]["rows"] / results["local"]["seconds"]
        print(f"spark local[2] / local: {results['spark']['rows'] / results['spark']['seconds'] / local:.2f}x")


if __name__ == "__main__":
    main()
