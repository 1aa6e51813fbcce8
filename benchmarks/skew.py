"""Benchmark ``parity skew`` against a simple streaming floor (and optionally Evidently 0.7.23).

Data (generated once into ``--data-dir``, seeded; the same recipe as the shared skew benchmark): 20 columns,
12 numeric (normal, lognormal, exponential, gamma, beta, t, poisson, uniform, bimodal, pareto, zero-inflated,
large-scale; ~2% nulls) and 8 categorical (5..200 Zipf levels). Planted in "current": num_00 and num_03 mean
+0.3 sd, cat_02 10% of rows in 10 unseen categories, num_07 nulls 2% -> 30%. Reference 1M rows; current 1M and
10M rows (1M-row row groups).

Each measured run is a fresh child process (``--child``): wall time, rows/s and peak RSS of the child and of
its largest worker (``resource.getrusage``). Parity: reference profile from the in-memory 1M reference via
``ProfileSpec.from_reference`` + ``profile_frame``, then ``skew_report`` on the current file. Floor: one
pyarrow pass with 50 fixed bins, value counts and null counts (the rough lower bound of a Python profiler).
Evidently (``--with-evidently``): DataDriftPreset on the 1M case in a side virtualenv (pandas < 3).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/skew.py --sizes 1m,10m
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SEED = 20240601
CHUNK = 1_000_000
CAT_LEVELS = [5, 10, 20, 30, 50, 80, 120, 200]
ZIPF_S = [0.8, 1.0, 1.1, 1.2, 1.0, 1.3, 1.1, 1.5]
PLANTED = {
    "num_00": "psi|js_distance",
    "num_03": "psi|js_distance",
    "cat_02": "unseen_share",
    "num_07": "null_rate_change",
}
EVIDENTLY_VENV = Path("/tmp/parity-bench-evidently")
GOAL_SECONDS, GOAL_BYTES = 15.0, 1 << 30


def _numeric(rng: np.random.Generator, n: int) -> dict[str, tuple[np.ndarray, float]]:
    """The 12 numeric columns and their standard deviations."""
    comp, zi = rng.random(n) < 0.4, rng.random(n) < 0.6
    return {
        "num_00": (rng.normal(100.0, 15.0, n), 15.0),
        "num_01": (rng.lognormal(0.0, 0.75, n), float(np.sqrt((np.exp(0.5625) - 1) * np.exp(0.5625)))),
        "num_02": (rng.exponential(2.0, n), 2.0),
        "num_03": (rng.gamma(2.0, 3.0, n), float(np.sqrt(2.0) * 3.0)),
        "num_04": (rng.beta(2.0, 5.0, n), float(np.sqrt(10 / (49 * 8)))),
        "num_05": (rng.standard_t(5, n) * 2.0, float(2.0 * np.sqrt(5 / 3))),
        "num_06": (rng.poisson(7.0, n).astype(np.float64), float(np.sqrt(7.0))),
        "num_07": (rng.uniform(-10.0, 10.0, n), float(20 / np.sqrt(12))),
        "num_08": (np.where(comp, rng.normal(-3.0, 1.0, n), rng.normal(4.0, 1.5, n)), 3.6),
        "num_09": ((rng.pareto(3.0, n) + 1.0) * 10.0, 8.66),
        "num_10": (np.where(zi, 0.0, rng.gamma(1.5, 40.0, n)), 50.0),
        "num_11": (rng.normal(0.0, 1e6, n), 1e6),
    }


def _chunk(rng: np.random.Generator, n: int, current: bool) -> pa.Table:
    arrays, names = [], []
    for name, (values, sd) in _numeric(rng, n).items():
        if current and name in ("num_00", "num_03"):
            values = values + 0.3 * sd
        rate = 0.30 if current and name == "num_07" else 0.02
        arrays.append(pa.array(values, pa.float64(), mask=rng.random(n) < rate))
        names.append(name)
    for i, (k, s) in enumerate(zip(CAT_LEVELS, ZIPF_S, strict=True)):
        p = 1.0 / np.arange(1, k + 1) ** s
        codes = rng.choice(k, size=n, p=p / p.sum()).astype(np.int32)
        levels = [f"c{i:02d}_v{j:03d}" for j in range(k)]
        if current and i == 2:
            levels += [f"c{i:02d}_new{j:02d}" for j in range(10)]
            codes = np.where(rng.random(n) < 0.10, rng.integers(k, k + 10, n), codes).astype(np.int32)
        arrays.append(pc.cast(pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(levels)), pa.string()))
        names.append(f"cat_{i:02d}")
    return pa.Table.from_arrays(arrays, names=names)


def generate(path: Path, rows: int, current: bool, key: int) -> None:
    """Write ``rows`` seeded rows in 1M-row row groups (skipped when the file exists)."""
    if path.exists():
        return
    t0 = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    writer = None
    for i, seq in enumerate(np.random.SeedSequence([SEED, key]).spawn((rows + CHUNK - 1) // CHUNK)):
        table = _chunk(np.random.default_rng(seq), min(CHUNK, rows - i * CHUNK), current)
        writer = writer or pq.ParquetWriter(tmp, table.schema, compression="snappy")
        writer.write_table(table, row_group_size=CHUNK)
    assert writer is not None
    writer.close()
    tmp.rename(path)
    print(f"generated {path} ({rows:,} rows, {time.perf_counter() - t0:.1f} s)", file=sys.stderr)


def _rss_kb(pid: int) -> int:
    """Resident set size of one process in KiB (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


def _children(pid: int) -> list[int]:
    """Direct and indirect child processes (Linux /proc)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids = [int(k) for k in fh.read().split()]
        except OSError:
            continue
        for k in kids:
            out += [k, *_children(k)]
    return out


class TreeSampler:
    """Sample the summed RSS of this process and its workers every 20 ms: the true simultaneous peak."""

    def __init__(self) -> None:
        import threading

        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.02):
            self.peak_kb = max(self.peak_kb, sum(_rss_kb(p) for p in [me, *_children(me)]))

    def stop(self) -> float:
        """Stop sampling; return the peak in MB."""
        self._stop.set()
        self._thread.join()
        return round(self.peak_kb / 1024, 1)


def _usage(sampler: TreeSampler) -> dict[str, float]:
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "peak_rss_mb": round(self_mb, 1),
        "peak_worker_rss_mb": round(kids_mb, 1),
        "peak_tree_rss_mb": sampler.stop(),
    }


def child_parity(ref: str, cur: str, processes: int | None) -> dict[str, Any]:
    """Reference profile from the in-memory 1M frame, then skew_report on the current file."""
    from parity.profile import ProfileSpec, profile_frame
    from parity.skew import Reference, skew_report

    sampler = TreeSampler()
    t0 = time.perf_counter()
    cats = [f"cat_{i:02d}" for i in range(8)]
    table = pq.read_table(ref, read_dictionary=cats)
    kinds: dict[str, Any] = {n: ("categorical" if n in cats else "numeric") for n in table.column_names}
    spec = ProfileSpec.from_reference(table, kinds)
    reference = Reference(profile_frame(table, spec), name="bench")
    del table
    pa.default_memory_pool().release_unused()  # hand the reference frame's memory back before profiling
    t1 = time.perf_counter()
    report = skew_report(reference, cur, processes=processes)
    t2 = time.perf_counter()
    found = {
        f.name: {m.name: round(m.adjusted or 0.0, 4) for m in f.metrics if m.severity != "ok"}
        | {"severity": f.severity}
        for f in report.features
        if f.severity != "ok"
    }
    return {
        "tool": "parity",
        "rows": report.data.rows,
        "processes": report.data.processes,
        "reference_s": round(t1 - t0, 2),
        "current_s": round(t2 - t1, 2),
        "seconds": round(t2 - t0, 2),
        "found": found,
        **_usage(sampler),
    }


def _floor_part(args: tuple[str, list[str], list[str], dict[str, np.ndarray], list[int]]) -> dict[str, Any]:
    """One worker of the floor: histograms, null counts and value counts over some row groups."""
    path, num, cat, edges, groups = args
    pf = pq.ParquetFile(path, read_dictionary=cat, pre_buffer=False)
    hist = {c: np.zeros(50, np.int64) for c in num}
    nulls = dict.fromkeys(num, 0)
    counts: dict[str, dict[str, int]] = {c: {} for c in cat}
    rows = 0
    for batch in pf.iter_batches(batch_size=65_536, row_groups=groups, columns=num + cat):
        rows += batch.num_rows
        for c in num:
            arr = batch.column(c)
            nulls[c] += arr.null_count
            v = pc.drop_null(arr).to_numpy() if arr.null_count else arr.to_numpy()
            hist[c] += np.bincount(np.searchsorted(edges[c], v, side="right"), minlength=50)
        for c in cat:
            vc = pc.value_counts(batch.column(c))
            d = counts[c]
            for k, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
                d[k] = d.get(k, 0) + n
    return {"rows": rows, "hist": hist, "nulls": nulls, "counts": counts}


def child_floor(ref: str, cur: str, processes: int) -> dict[str, Any]:
    """The floor: reference quantile edges, then one streaming pass over the current file."""
    from multiprocessing import get_context

    sampler = TreeSampler()
    t0 = time.perf_counter()
    cat = [f"cat_{i:02d}" for i in range(8)]
    table = pq.read_table(ref, read_dictionary=cat)
    num = [n for n in table.column_names if n not in cat]
    edges = {c: np.quantile(pc.drop_null(table[c]).to_numpy(), np.arange(1, 50) / 50) for c in num}
    del table
    t1 = time.perf_counter()
    groups = list(range(pq.ParquetFile(cur).num_row_groups))
    parts = [groups[i::processes] for i in range(processes) if groups[i::processes]]
    tasks = [(cur, num, cat, edges, p) for p in parts]
    if len(tasks) == 1:
        results = [_floor_part(tasks[0])]
    else:
        with get_context("fork").Pool(len(tasks)) as pool:
            results = pool.map(_floor_part, tasks)
    t2 = time.perf_counter()
    return {
        "tool": "floor",
        "rows": sum(r["rows"] for r in results),
        "processes": len(tasks),
        "reference_s": round(t1 - t0, 2),
        "current_s": round(t2 - t1, 2),
        "seconds": round(t2 - t0, 2),
        **_usage(sampler),
    }


EVIDENTLY_SCRIPT = """
import json, resource, sys, time
t0 = time.perf_counter()
import pyarrow.parquet as pq
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
ref = pq.read_table(sys.argv[1]).to_pandas(); cur = pq.ParquetFile(sys.argv[2]).read_row_group(0).to_pandas()
num = [c for c in ref.columns if c.startswith("num_")]; cat = [c for c in ref.columns if c.startswith("cat_")]
dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
cur_ds = Dataset.from_pandas(cur, data_definition=dd)
snap = Report([DataDriftPreset()]).run(cur_ds, Dataset.from_pandas(ref, data_definition=dd))
drifted = []
for m in snap.dict()["metrics"]:
    cfg = m.get("config", {})
    if cfg.get("type", "").endswith("ValueDrift"):
        thr, val = float(cfg["threshold"]), float(m["value"])
        if (val < thr) if "p_value" in cfg["method"] else (val >= thr):
            drifted.append(cfg["column"])
peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
seconds = round(time.perf_counter() - t0, 2)
out = {"tool": "evidently", "rows": len(cur), "seconds": seconds, "found": sorted(drifted), "peak_rss_mb": peak}
print(json.dumps(out))
"""


def run_evidently(ref: Path, cur: Path) -> dict[str, Any]:
    """Run Evidently 0.7.23 in its side virtualenv (created on first use)."""
    py = EVIDENTLY_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        pkgs = ["evidently==0.7.23", "pandas<3", "pyarrow"]
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", *pkgs], check=True, capture_output=True)
    done = subprocess.run([str(py), "-c", EVIDENTLY_SCRIPT, str(ref), str(cur)], capture_output=True, text=True)
    if done.returncode:
        return {"tool": "evidently", "error": done.stderr[-800:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run_child(*args: str) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; add its wall time including imports."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"child {args} failed:\n{done.stderr[-3000:]}")
    out = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    out["process_s"] = round(time.perf_counter() - t0, 2)
    return out


def verdict(result: dict[str, Any]) -> str:
    """Compare what parity flagged with the four planted changes."""
    found = result["found"]
    missed = [c for c, metrics in PLANTED.items() if not set(metrics.split("|")) & set(found.get(c, {}))]
    false = sorted(set(found) - set(PLANTED))
    return f"planted found {4 - len(missed)}/4{' (missed ' + ', '.join(missed) + ')' if missed else ''}; " + (
        f"false alarms: {false}" if false else "no false alarms"
    )


def main() -> None:
    """Generate data, run parity and the floor per size, print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/parity-bench-skew"))
    ap.add_argument("--sizes", default="1m,10m", help="comma list of current sizes: 1m, 10m")
    ap.add_argument("--processes", type=int, default=None, help="parity processes (default: automatic)")
    ap.add_argument("--floor-processes", type=int, default=2)
    ap.add_argument("--with-evidently", action="store_true", help="also run Evidently 0.7.23 on the 1M case")
    ap.add_argument("--json", type=Path, help="write every result here")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        tool, ref, cur, procs = a.child
        fn = child_parity if tool == "parity" else child_floor
        p = None if procs == "auto" else int(procs)
        print(json.dumps(fn(ref, cur, p if tool == "parity" else int(procs))))  # type: ignore[arg-type]
        return
    a.data_dir.mkdir(parents=True, exist_ok=True)
    ref = a.data_dir / "reference_1m.parquet"
    generate(ref, 1_000_000, False, 0)
    results: list[dict[str, Any]] = []
    for size in a.sizes.split(","):
        rows = {"1m": 1_000_000, "10m": 10_000_000}[size]
        cur = a.data_dir / f"current_{size}.parquet"
        generate(cur, rows, True, 1)
        procs = "auto" if a.processes is None else str(a.processes)
        par = run_child("parity", str(ref), str(cur), procs)
        flo = run_child("floor", str(ref), str(cur), str(a.floor_processes))
        results += [par | {"size": size}, flo | {"size": size}]
        ok_time = par["seconds"] < GOAL_SECONDS
        total_mb = par["peak_tree_rss_mb"]
        print(f"\n== reference 1M + current {size} ==")
        for r in (par, flo):
            print(
                f"{r['tool']:>9}: {r['seconds']:6.2f} s in-process ({r['process_s']:.2f} s with imports), "
                f"reference {r['reference_s']:.2f} s + current {r['current_s']:.2f} s = "
                f"{r['rows'] / max(r['current_s'], 1e-9):,.0f} rows/s, {r['processes']} process(es), "
                f"peak RSS {r['peak_tree_rss_mb']:.0f} MB summed over main + workers (main alone "
                f"{r['peak_rss_mb']:.0f} MB, largest worker {r['peak_worker_rss_mb']:.0f} MB)"
            )
        print(f"   ratio parity/floor: {par['seconds'] / flo['seconds']:.2f}x time")
        print(f"   parity found: {json.dumps(par['found'])}")
        print(f"   {verdict(par)}")
        print(
            f"   goals: < {GOAL_SECONDS:.0f} s {'met' if ok_time else 'MISSED'}; "
            f"< 1 GiB {'met' if total_mb * 2**20 < GOAL_BYTES else 'MISSED'} "
            f"(peak of main + workers together: {total_mb:.0f} MB)"
        )
        if a.with_evidently and size == "1m":
            ev = run_evidently(ref, cur)
            results.append(ev | {"size": size})
            if "error" in ev:
                print(f"   evidently failed: {ev['error']}")
            else:
                print(
                    f"evidently: {ev['seconds']:.2f} s, peak RSS {ev['peak_rss_mb']:.0f} MB, drifted {ev['found']}\n"
                    f"   ratio evidently/parity: {ev['seconds'] / par['seconds']:.1f}x time, "
                    f"{ev['peak_rss_mb'] / par['peak_rss_mb']:.1f}x memory"
                )
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
