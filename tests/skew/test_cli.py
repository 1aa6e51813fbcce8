"""``parity skew`` through typer's CliRunner: reports, exit codes, and clear one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

import parity
from parity.cli import app
from parity.skew import validate_report
from tests.skew.helpers import frame, write_lake

runner = CliRunner()  # over the real ``parity`` app, so a command group dropped from it fails here


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, churn: parity.Artifact) -> Path:
    root = tmp_path_factory.mktemp("lake")
    df = frame(1200, 11)
    df.loc[:300, "plan"] = "enterprise"  # 25% unseen category
    write_lake(root, churn, df, version=0, step_s=30.0)
    return root


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def one_error(result: Result, code: int, needle: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_report_files_and_fail_on(art_dir: Path, lake: Path, tmp_path: Path) -> None:
    js, html = tmp_path / "r.json", tmp_path / "r.html"
    res = run("skew", str(art_dir), "--data", str(lake), "--by", "hour", "--json", str(js), "--html", str(html))
    assert res.exit_code == 0, res.output
    assert "plan" in res.stdout and "alert" in res.stdout
    doc = json.loads(js.read_text())
    validate_report(doc)
    assert doc["severity"] == "alert" and doc["features"][0]["name"] == "plan" and doc["windows"]
    assert "<svg" in html.read_text()
    assert run("skew", str(art_dir), "--data", str(lake), "--fail-on", "alert").exit_code == 11
    assert run("skew", str(art_dir), "--data", str(lake), "--fail-on", "warn").exit_code == 11


def test_json_to_stdout_and_thresholds(art_dir: Path, lake: Path, tmp_path: Path) -> None:
    toml = tmp_path / "t.toml"
    toml.write_text("[features.plan]\nignore = true\n")
    res = run("skew", str(art_dir), "--data", str(lake), "--json", "-", "--thresholds", str(toml), "--fail-on", "warn")
    doc = json.loads(res.stdout)
    assert res.exit_code == 0 and doc["severity"] == "ok", res.stdout[-500:]


def test_empty_window_exit_code(art_dir: Path, lake: Path) -> None:
    args = ["skew", str(art_dir), "--data", str(lake), "--since", "2031-01-01", "--until", "2031-02-01"]
    res = run(*args)
    assert res.exit_code == 0 and "no data" in res.stdout
    assert run(*args, "--fail-on", "alert").exit_code == 12


def test_wrong_type_column_is_an_alert(art_dir: Path, tmp_path: Path) -> None:
    df = frame(300, 2)
    table = pa.Table.from_pandas(df.assign(x=df["x"].round(2).astype(str)), preserve_index=False)
    pq.write_table(table, tmp_path / "d.parquet")
    res = run("skew", str(art_dir), "--data", str(tmp_path / "d.parquet"), "--json", "-", "--fail-on", "alert")
    assert res.exit_code == 11
    x = next(f for f in json.loads(res.stdout)["features"] if f["name"] == "x")
    assert x["schema"][0]["kind"] == "type_change" and "received large_string" in x["schema"][0]["message"]


def test_replay_flag(art_dir: Path, lake: Path) -> None:
    res = run("skew", str(art_dir), "--data", str(lake), "--replay", "--json", "-")
    assert res.exit_code == 0
    replay = json.loads(res.stdout)["replay"]
    assert replay["mismatched"] == 0 and replay["errors"] == 0
    assert replay["rows"] == 1200 and replay["replayed"] == 1200  # every logged row of the lake fixture


@pytest.mark.parametrize("case", ["unreadable", "missing", "bad_toml", "bad_since", "join_alone", "no_artifact"])
def test_bad_input_is_one_clear_error(art_dir: Path, tmp_path: Path, case: str) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    args = ["skew", str(art_dir), "--data", str(bad)]
    if case == "unreadable":
        one_error(run(*args), 8, "cannot read Parquet file")
    elif case == "missing":
        one_error(run("skew", str(art_dir), "--data", str(tmp_path / "nope")), 8, "does not exist")
    elif case == "bad_toml":
        (tmp_path / "t.toml").write_text("[metrics]\npsi = 3\n")
        one_error(run(*args, "--thresholds", str(tmp_path / "t.toml")), 8, "must be a table")
    elif case == "bad_since":
        one_error(run(*args, "--since", "soon"), 8, "not an ISO time")
    elif case == "join_alone":
        one_error(run(*args, "--join", "id"), 8, "go together")
    else:
        one_error(run("skew", str(tmp_path / "ghost"), "--data", str(bad)), 5, "does not exist")


def test_profile_json_reference(tmp_path: Path) -> None:
    from parity.profile import profile_frame

    profile_frame(frame(3000, 1)).save(tmp_path / "ref.json")
    df = frame(500, 2).assign(x=lambda d: d["x"] + np.float64(30))
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "d.parquet")
    res = run("skew", str(tmp_path / "ref.json"), "--data", str(tmp_path / "d.parquet"), "--fail-on", "alert")
    assert res.exit_code == 11 and "x" in res.stdout
