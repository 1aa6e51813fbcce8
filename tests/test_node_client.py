"""The Node.js client (clients/node) returns the same outputs as Python for the same artifact.

Each test packages a small pipeline, replays the artifact's stored parity sample (training rows
and edge cases: nulls, unseen and empty categories, extreme values) through
``node clients/node/bin/parity-node.js`` as JSON records, and compares with the Python model's
outputs within the manifest tolerance (labels exactly). Without ``node`` on PATH these tests are
skipped locally and fail under CI=true (tests/conftest.py); a missing ``clients/node/node_modules``
is installed here with ``npm ci``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import parity

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "clients" / "node"
CLI = NODE_DIR / "bin" / "parity-node.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not on PATH")


@pytest.fixture(scope="module", autouse=True)
def node_modules() -> Path:
    """clients/node/node_modules, installed with `npm ci` when absent (as `make test` does)."""
    modules = NODE_DIR / "node_modules"
    if not (modules / "onnxruntime-node").is_dir():
        npm = shutil.which("npm")
        assert npm, "node is installed but npm is not: cannot install clients/node dependencies"
        env = {**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"}
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            env=env,
            check=True,
            timeout=900,
        )
    assert (modules / "onnxruntime-node").is_dir(), "npm ci did not install onnxruntime-node"
    return modules


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON-ready records; NaN, None and pd.NA become null."""
    columns = {str(c): [_json_value(v) for v in frame[c].to_numpy(dtype=object)] for c in frame.columns}
    return [{c: columns[c][i] for c in columns} for i in range(len(frame))]


def _run_node(artifact_dir: Path, records: list[dict[str, Any]], work: Path) -> subprocess.CompletedProcess[str]:
    work.mkdir(parents=True, exist_ok=True)
    source = work / "input.json"
    source.write_text(json.dumps(records, allow_nan=False))
    return subprocess.run(
        [str(NODE), str(CLI), str(artifact_dir), str(source), str(work / "output.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _node_outputs(artifact_dir: Path, records: list[dict[str, Any]], work: Path) -> list[dict[str, Any]]:
    proc = _run_node(artifact_dir, records, work)
    assert proc.returncode == 0, f"parity-node failed ({proc.returncode}):\n{proc.stderr}"
    outputs = json.loads((work / "output.json").read_text())
    assert isinstance(outputs, list)
    return outputs


def _assert_same(art: parity.Artifact, node: list[dict[str, Any]], expected: dict[str, np.ndarray]) -> float:
    """Assert Node's outputs equal Python's (floats within the manifest tolerance); return the max abs diff."""
    tolerance = float(art.manifest["parity"]["tolerance"])
    names = art.signature.output_names
    assert len(node) == len(next(iter(expected.values())))
    assert all(list(rec) == names for rec in node), f"output keys differ from {names}: {node[0]}"
    worst = 0.0
    for spec in art.signature.outputs:
        exp = np.asarray(expected[spec.name])
        got = [rec[spec.name] for rec in node]
        if spec.datatype in ("FP64", "FP32"):
            e = exp.astype(np.float64)
            a = np.array([np.nan if v is None else v for v in got], dtype=np.float64)
            diff = np.where(np.isnan(e) & np.isnan(a), 0.0, np.abs(e - a))
            diff = np.where(np.isnan(diff), np.inf, diff)
            rel = diff / np.maximum(1.0, np.abs(e))
            bad = np.flatnonzero(rel > tolerance)
            assert not bad.size, f"{spec.name}: {bad.size} rows differ, e.g. row {bad[0]}: {got[bad[0]]} vs {e[bad[0]]}"
            worst = max(worst, float(diff.max(initial=0.0)))
        else:
            want = [_json_value(v) for v in exp.tolist()]
            assert got == want, f"{spec.name}: Node labels differ from Python's"
            assert {type(v) for v in got} == {type(v) for v in want}, spec.name
    return worst


def _check_parity(art: parity.Artifact, tmp_path: Path) -> tuple[list[dict[str, Any]], float]:
    art.save(tmp_path / "artifact")
    frame, expected = art.parity_sample()
    records = _records(frame)
    node = _node_outputs(tmp_path / "artifact", records, tmp_path / "run")
    worst = _assert_same(art, node, expected)
    print(f"{art.name}: {len(records)} rows, max |node - python| = {worst:.3g}")
    return records, worst


def _churn_frame(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.normal(40, 12, n),
            "income": rng.lognormal(3.5, 0.6, n),
            "city": rng.choice(["paris", "lyon", "nice"], n).astype(object),
        }
    )
    df.loc[rng.random(n) < 0.1, "age"] = np.nan
    df.loc[rng.random(n) < 0.1, "income"] = np.nan
    df.loc[rng.random(n) < 0.1, "city"] = None
    score = 0.05 * (df["age"].fillna(40) - 40) - 0.02 * (df["income"].fillna(30) - 30) + (df["city"] == "nice") * 1.0
    y = (score + rng.normal(0, 0.7, n) > 0.2).astype(int).to_numpy()
    return df, y


def _churn_pipeline() -> Pipeline:
    features = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["age", "income"]),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                ["city"],
            ),
        ]
    )
    return Pipeline([("features", features), ("model", LogisticRegression(max_iter=500))])


@pytest.fixture(scope="module")
def binary_artifact() -> parity.Artifact:
    df, y = _churn_frame()
    pipe = _churn_pipeline().fit(df, y)
    return parity.package(pipe, df, name="nodetest", postprocess=parity.Threshold(0.6, labels=("no", "yes")))


def test_binary_pipeline_matches_python(binary_artifact: parity.Artifact, tmp_path: Path) -> None:
    records, worst = _check_parity(binary_artifact, tmp_path)
    # the sample exercises missing numbers, missing strings and unseen categories
    assert any(r["age"] is None for r in records)
    assert any(r["city"] is None for r in records)
    assert any(r["city"] not in (None, "paris", "lyon", "nice") for r in records)
    assert worst <= float(binary_artifact.manifest["parity"]["tolerance"])


def test_null_text_means_the_csv_marker_in_node(tmp_path: Path) -> None:
    """Frames read with pd.read_csv mark missing text as NaN; Node's null must mean the same (issue 7)."""
    df, y = _churn_frame()
    df.to_csv(tmp_path / "train.csv", index=False)
    data = pd.read_csv(tmp_path / "train.csv", dtype={"city": object})
    assert all(v != v for v in data["city"][data["city"].isna()])  # NaN, not None
    art = parity.package(_churn_pipeline().fit(data, y), data, name="nodecsv")
    assert art.signature.input("city").missing == "NaN"
    records, worst = _check_parity(art, tmp_path)
    assert any(r["city"] is None for r in records)
    assert worst <= float(art.manifest["parity"]["tolerance"])


def _typed_frame(n: int = 300, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "n_items": rng.integers(0, 20, n),
            "member": rng.random(n) < 0.5,
            "score": rng.normal(0, 1, n).astype(np.float32),
            "plan": rng.choice(["basic", "pro", "team"], n).astype(object),
        }
    )


def _typed_features() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", StandardScaler(), ["n_items", "score"]),
            ("flag", "passthrough", ["member"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )


def test_multiclass_with_typed_columns_matches_python(tmp_path: Path) -> None:
    """INT64, BOOL, FP32 and BYTES inputs; an INT64 label output (JS numbers) and three probabilities."""
    df = _typed_frame()
    rng = np.random.default_rng(2)
    y = np.digitize(df["n_items"] + 5 * df["member"] + rng.normal(0, 3, len(df)), [8, 14])
    pipe = Pipeline([("features", _typed_features()), ("model", LogisticRegression(max_iter=500))]).fit(df, y)
    art = parity.package(pipe, df, name="nodemulti")
    assert {c.datatype for c in art.signature.inputs} == {"INT64", "BOOL", "FP32", "BYTES"}
    assert art.task == "multiclass"
    _check_parity(art, tmp_path)


def test_tree_regression_matches_python(tmp_path: Path) -> None:
    """A tree ensemble: the parity sample includes raw values next to every split threshold."""
    df, _ = _churn_frame(seed=3)
    target = df["age"].fillna(30).to_numpy() * 2.0 + (df["city"] == "lyon").to_numpy() * 10.0
    features = _churn_pipeline().named_steps["features"]
    pipe = Pipeline(
        [("features", features), ("model", GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0))]
    ).fit(df, target)
    art = parity.package(pipe, df, name="nodereg")
    assert art.task == "regression" and art.portable
    _check_parity(art, tmp_path)


def test_cli_reports_bad_input_and_tampered_artifacts(binary_artifact: parity.Artifact, tmp_path: Path) -> None:
    good = tmp_path / "good"
    binary_artifact.save(good)
    row = {"age": 41.0, "income": 30.0, "city": "lyon", "unused": "extra keys are ignored"}

    ok = _node_outputs(good, [row, {**row, "age": None, "city": None}], tmp_path / "ok")
    python = binary_artifact.predict(pd.DataFrame([{k: v for k, v in row.items() if k != "unused"}]))
    assert ok[0]["label"] == python["label"].iloc[0]
    assert ok[0]["probability"] == pytest.approx(float(python["probability"].iloc[0]), rel=1e-12)

    wrong_type = _run_node(good, [row, {**row, "income": "high"}], tmp_path / "wrong_type")
    assert wrong_type.returncode == 2
    assert '"income"' in wrong_type.stderr and "row 1" in wrong_type.stderr and 'string "high"' in wrong_type.stderr

    missing = _run_node(good, [{"age": 1.0, "income": 2.0}], tmp_path / "missing")
    assert missing.returncode == 2 and '"city"' in missing.stderr

    tampered = tmp_path / "tampered"
    shutil.copytree(good, tampered)
    with (tampered / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    proc = _run_node(tampered, [row], tmp_path / "tampered_run")
    assert proc.returncode == 1 and "IntegrityError" in proc.stderr and "sha256" in proc.stderr

    blocked = tmp_path / "blocked"
    shutil.copytree(good, blocked)
    manifest = json.loads((blocked / "manifest.json").read_text())
    manifest["portable"] = False
    manifest["blocked_by"] = {"step": "MyCustomTransformer", "reason": "no ONNX converter"}
    (blocked / "manifest.json").write_text(json.dumps(manifest))
    proc = _run_node(blocked, [row], tmp_path / "blocked_run")
    assert proc.returncode == 1 and "MyCustomTransformer" in proc.stderr and "Python runtime" in proc.stderr


def test_node_test_suite(binary_artifact: parity.Artifact, tmp_path: Path) -> None:
    """clients/node's own `node --test` suite, with the real artifact for its model tests."""
    binary_artifact.save(tmp_path / "artifact")
    proc = subprocess.run(
        [str(NODE), "--test", "test/client.test.js"],
        cwd=NODE_DIR,
        env={**os.environ, "PARITY_TEST_ARTIFACT": str(tmp_path / "artifact")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# SKIP" not in proc.stdout, "the model tests were skipped"
    assert "# fail 0" in proc.stdout and "# pass 0" not in proc.stdout


def test_node_test_suite_fails_without_an_artifact() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PARITY_TEST_ARTIFACT"}
    proc = subprocess.run(
        [str(NODE), "--test", "test/client.test.js"], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0
    assert "set PARITY_TEST_ARTIFACT" in proc.stdout and "# fail 1" in proc.stdout
