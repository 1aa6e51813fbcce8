"""Benchmark Artifact.predict against the raw scikit-learn pipeline and raw onnxruntime.

Same model as the serving benchmark's peers: a ColumnTransformer + GradientBoosting pipeline on
12 raw columns (8 numeric with NaN, 4 string categoricals). Prints per-call latency and rows/s
for 1 row and 10,000 rows, and the ratios the artifact issue sets as goals:
1-row Artifact.predict >= 5x faster than sklearn and within 3x of raw onnxruntime;
10,000 rows >= 2x faster than sklearn.

Also times ``Artifact.predict_columns`` on one row given as a dict of columns (plain Python lists,
as decoded from JSON; no pandas), with its ratio to raw onnxruntime (goal <= 1.5x). With
``--baseline-src DIR`` (e.g. a checkout of main's ``src``) the same model is packaged by that code
in a subprocess and its 1-row ``Artifact.predict`` is timed in this run too, so a change to the
exported graph shows as a ratio (goal: not slower than 1.05x).

Run: ``python benchmarks/predict.py [--repeat-seconds 2] [--baseline-src ../main/src]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import parity
from parity.codec import encode_frame


def make_data(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Synthetic churn data: 8 numeric columns (~5% NaN) and 4 categoricals with 3/5/7/20 levels."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"num{i}": rng.normal(i, 1 + i, n) for i in range(8)})
    for i, levels in enumerate([3, 5, 7, 20]):
        frame[f"cat{i}"] = rng.choice([f"c{i}_{k}" for k in range(levels)], n)
    for i in range(8):
        frame.loc[rng.random(n) < 0.05, f"num{i}"] = np.nan
    score = frame["num0"].fillna(0) - 0.3 * frame["num3"].fillna(3) + (frame["cat1"] == "c1_2") * 1.5
    y = (score + rng.normal(0, 1, n) > 0).astype(int).to_numpy()
    return frame, y


def build(frame: pd.DataFrame, y: np.ndarray) -> Pipeline:
    """ColumnTransformer(impute+scale, impute+one-hot) + GradientBoosting(100, depth 3)."""
    numeric = [c for c in frame.columns if c.startswith("num")]
    categorical = [c for c in frame.columns if c.startswith("cat")]
    features = ColumnTransformer(
        [
            ("num", Pipeline([("imp", SimpleImputer(strategy="median")), ("sc", StandardScaler())]), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0)
    return Pipeline([("features", features), ("model", model)]).fit(frame, y)


def timeit(fn: Callable[[], Any], seconds: float) -> list[float]:
    """Call ``fn`` repeatedly for about ``seconds``; return per-call times in seconds."""
    for _ in range(5):
        fn()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 20:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat-seconds", type=float, default=2.0)
    parser.add_argument("--baseline-src", help="package the same model with this parity source tree too")
    parser.add_argument("--save-to", help=argparse.SUPPRESS)  # used by the baseline subprocess
    args = parser.parse_args()

    frame, y = make_data(20_000)
    pipe = build(frame, y)
    art = parity.package(pipe, frame, name="bench")
    if args.save_to:
        art.save(args.save_to)
        return
    baseline = _baseline_artifact(args.baseline_src) if args.baseline_src else None
    sess = art.runtime.session  # type: ignore[attr-defined]
    outputs = art.signature.output_names

    results: dict[tuple[str, int], float] = {}
    print(f"{'case':<28}{'rows':>7}{'p50 ms':>10}{'p99 ms':>10}{'rows/s':>14}")
    for rows in (1, 10_000):
        batch = frame.iloc[:rows].reset_index(drop=True)
        feeds = encode_frame(art.signature, batch)
        # A dict of columns as JSON decodes them (lists, None for missing): the server's input, no pandas.
        lists = {c: [None if pd.isna(v) else v for v in batch[c].tolist()] for c in art.signature.input_names}
        cases: dict[str, Callable[[], Any]] = {
            "sklearn predict_proba": lambda b=batch: pipe.predict_proba(b),
            "Artifact.predict": lambda b=batch: art.predict(b),
            "Artifact.predict_columns": lambda c=lists: art.predict_columns(c),
            "onnxruntime run (raw)": lambda f=feeds: sess.run(outputs, f),
        }
        if rows == 1:
            columns = {name: batch[name].tolist() for name in batch.columns}  # as decoded from JSON
            cases["predict_columns (dict)"] = lambda c=columns: art.predict_columns(c)
            if baseline is not None:
                cases["Artifact.predict (baseline)"] = lambda b=batch: baseline.predict(b)
        for name, fn in cases.items():
            times = timeit(fn, args.repeat_seconds)
            p50 = statistics.median(times)
            p99 = float(np.quantile(times, 0.99))
            results[(name, rows)] = p50
            print(f"{name:<28}{rows:>7}{p50 * 1e3:>10.3f}{p99 * 1e3:>10.3f}{rows / p50:>14,.0f}")

    sk1, art1, ort1 = (results[(n, 1)] for n in ("sklearn predict_proba", "Artifact.predict", "onnxruntime run (raw)"))
    sk10k, art10k = results[("sklearn predict_proba", 10_000)], results[("Artifact.predict", 10_000)]
    print()
    print(f"1 row:      Artifact.predict is {sk1 / art1:.1f}x faster than sklearn (goal >= 5x)")
    print(f"1 row:      Artifact.predict is {art1 / ort1:.2f}x raw onnxruntime (goal <= 3x)")
    cols1 = results[("Artifact.predict_columns", 1)]
    print(f"1 row:      Artifact.predict_columns is {cols1 / ort1:.2f}x raw onnxruntime (goal <= 1.5x)")
    print(f"10000 rows: Artifact.predict is {sk10k / art10k:.1f}x faster than sklearn (goal >= 2x)")
    cols1 = results[("predict_columns (dict)", 1)]
    print(f"1 row:      predict_columns is {cols1 / ort1:.2f}x raw onnxruntime (goal <= 1.5x)")
    if baseline is not None:
        base1 = results[("Artifact.predict (baseline)", 1)]
        print(f"1 row:      Artifact.predict is {art1 / base1:.3f}x the baseline source's (goal <= 1.05x)")


def _baseline_artifact(src: str) -> Any:
    """Package the benchmark model with another parity source tree (subprocess) and load it here."""
    out = os.path.join(tempfile.mkdtemp(prefix="parity-bench-"), "baseline")
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    subprocess.run([sys.executable, __file__, "--save-to", out], check=True, env=env)
    return parity.load(out)


if __name__ == "__main__":
    main()
