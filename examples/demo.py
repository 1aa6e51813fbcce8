"""`make demo`: the main job end to end on embedded defaults.

train -> package (with parity proof) -> verify -> register + alias -> predict with the CLI ->
the same rows through the Node.js client -> compare. Everything lands under ``demo-out/``
(artifact, registry, inputs, outputs); nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
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

    step("summary")
    py_out = artifact.predict(rows)
    prob_cols = [c for c in py_out.columns if c.startswith("probability")]
    node_diff = float(np.max(np.abs(node_out[prob_cols].to_numpy() - py_out[prob_cols].to_numpy())))
    cli_diff = float(np.max(np.abs(cli_out[prob_cols].to_numpy() - py_out[prob_cols].to_numpy())))
    labels_equal = list(node_out["label"]) == list(py_out["label"]) == list(cli_out["label"])
    print(f"rows predicted:                 {len(rows)}")
    print(f"holdout accuracy:               {artifact.manifest['metrics']['holdout_accuracy']:.3f}")
    print(f"parity (package time):          max |diff| {worst:.1e} over {report.rows_checked} rows")
    print(f"Python vs CLI  max |diff|:      {cli_diff:.1e}")
    print(f"Python vs Node max |diff|:      {node_diff:.1e}")
    print(f"labels identical everywhere:    {labels_equal}")
    if not (labels_equal and node_diff <= 1e-5 and cli_diff <= 1e-5):
        raise SystemExit("demo found a mismatch")
    print("\ndemo OK: artifact, registry and outputs are in demo-out/")


if __name__ == "__main__":
    main()
