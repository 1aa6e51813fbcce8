"""Tests of the ``parity`` command line: every command through CliRunner, plus real subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

import parity
import parity.cli
from parity._io import canonical_json, sha256_bytes
from parity.cli import app
from parity.cli._errors import EXIT_CODES, exit_code_for, with_flags
from parity.deploy import InvalidOptionError
from parity.errors import (
    ArtifactError,
    IntegrityError,
    MissingDependencyError,
    NotFoundError,
    ParityMismatchError,
    SchemaError,
    UntrustedArtifactError,
)
from tests.cli.conftest import raw_frame

runner = CliRunner()


def run(*args: str, registry: Path | None = None, **kwargs: Any) -> Result:
    prefix = ["--registry", str(registry)] if registry is not None else []
    return runner.invoke(app, [*prefix, *args], **kwargs)


def assert_error(result: Result, code: int, *needles: str) -> str:
    """The command failed with ``code`` and printed exactly one ``error:`` line on stderr, no traceback."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def copy_artifact(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    for child in dest.iterdir():
        child.chmod(0o644)
    return dest


def write_input(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        # json.dumps keeps every float digit (pandas' to_json rounds to 10).
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read_output(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()])


# --------------------------------------------------------------------------- help and exit codes


def test_help_documents_every_exit_code() -> None:
    result = run("--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for name in ("inspect", "verify", "predict", "registry"):
        assert name in text
    doc = parity.cli.__doc__ or ""
    for row in EXIT_CODES:
        assert f"{row.code} {row.meaning}" in text
        assert f"\n    {row.code}  " in doc


def test_exit_code_table_picks_most_specific_class() -> None:
    assert exit_code_for(ParityMismatchError("x")) == 3
    assert exit_code_for(SchemaError("x")) == 4  # also a ParityError (8) and a ValueError (4)
    assert exit_code_for(ValueError("x")) == 4
    assert exit_code_for(NotFoundError("x")) == 5
    assert exit_code_for(FileNotFoundError("x")) == 5
    assert exit_code_for(IntegrityError("x")) == 6
    assert exit_code_for(UntrustedArtifactError("x")) == 7
    assert exit_code_for(ArtifactError("x")) == 8
    assert exit_code_for(MissingDependencyError("x")) == 8
    assert exit_code_for(KeyError("x")) == 1


def test_with_flags_adds_the_flag_of_the_parameter_an_error_names() -> None:
    assert with_flags(SchemaError("keys=['id']: not in x", param="keys")) == "keys=['id']: not in x (CLI: --key)"
    assert with_flags(UntrustedArtifactError("not portable")) == "not portable (CLI: --trusted)"  # class default
    assert with_flags(ParityMismatchError("x", param="allow_failed_parity")) == "x (CLI: --allow-failed-parity)"
    assert with_flags(InvalidOptionError("bad", param="min_replicas")) == "bad (CLI: --min-replicas)"
    # The text is never searched: an error that names no parameter gets no hint, whatever it says.
    assert with_flags(SchemaError("use engine='local' or trusted=True")) == "use engine='local' or trusted=True"
    assert with_flags(ValueError("keys=")) == "keys="
    assert with_flags(SchemaError("")) == "SchemaError"


def test_unexpected_error_is_one_line_exit_1(monkeypatch: pytest.MonkeyPatch, artifact_dir: Path) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("parity.cli._artifact_cmds.resolve_verified", boom)
    assert_error(run("inspect", str(artifact_dir)), 1, "unexpected RuntimeError: boom", "--debug")


def test_debug_shows_traceback_and_keeps_exit_code(tmp_path: Path) -> None:
    result = run("--debug", "inspect", "nope", registry=tmp_path)
    assert result.exit_code == 5
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


# --------------------------------------------------------------------------- inspect / verify


def test_inspect_text(artifact_dir: Path) -> None:
    result = run("inspect", str(artifact_dir), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for needle in ("clitest", "binary", "onnx", "LogisticRegression", "float64", "passed", "3 categories"):
        assert needle in result.stdout
    for needle in ("model.onnx", "profile.json", "scikit-learn==", "probability", "Training data"):
        assert needle in result.stdout
    assert "NOT PORTABLE" not in result.stdout


def test_inspect_json(artifact_dir: Path) -> None:
    result = run("inspect", str(artifact_dir), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["version"] is None
    assert data["manifest"]["name"] == "clitest"
    assert data["manifest"]["parity"]["passed"] is True
    assert [c["name"] for c in data["manifest"]["signature"]["inputs"]] == ["a", "b", "c"]


def test_verify_passes(artifact_dir: Path) -> None:
    result = run("verify", str(artifact_dir))
    assert result.exit_code == 0, result.output
    assert "passed" in result.stdout
    data = json.loads(run("verify", str(artifact_dir), "--json").stdout)
    assert data["passed"] is True
    assert data["report"]["rows_checked"] > 0


def test_verify_parity_failure_exits_3(artifact_dir: Path, tmp_path: Path) -> None:
    broken = copy_artifact(artifact_dir, tmp_path / "broken")
    # Shift the stored reference outputs and re-record the file's hash: the files verify, parity does not.
    sample = pq.read_table(broken / "parity_sample.parquet").to_pandas()
    sample["expected.probability"] += 0.01
    pq.write_table(pa.Table.from_pandas(sample, preserve_index=False), broken / "parity_sample.parquet")
    data = (broken / "parity_sample.parquet").read_bytes()
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["files"]["parity_sample.parquet"] = {"sha256": sha256_bytes(data), "size": len(data)}
    (broken / "manifest.json").write_bytes(canonical_json(manifest))

    result = run("verify", str(broken))
    assert "FAILED" in result.stdout
    assert_error(result, 3, "parity check failed", "probability")
    as_json = run("verify", str(broken), "--json")
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["passed"] is False


def test_tampered_artifact_exits_6(artifact_dir: Path, tmp_path: Path) -> None:
    tampered = copy_artifact(artifact_dir, tmp_path / "tampered")
    (tampered / "model.onnx").write_bytes((tampered / "model.onnx").read_bytes() + b"\0")
    assert_error(run("inspect", str(tampered)), 6, "model.onnx")
    assert_error(run("verify", str(tampered)), 6, "model.onnx")
    assert_error(run("predict", str(tampered), "-i", "x.csv", "-o", "y.csv"), 6)


def test_nonexistent_ref_exits_5(tmp_path: Path) -> None:
    assert_error(run("inspect", "nope", registry=tmp_path), 5, "'nope'")
    assert_error(run("verify", "nope:2", registry=tmp_path), 5, "'nope'")
    assert_error(run("inspect", str(tmp_path / "missing")), 5, "does not exist")


def test_non_portable_artifact_needs_trusted(knn_dir: Path) -> None:
    shown = run("inspect", str(knn_dir), env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "NOT PORTABLE" in shown.stdout
    assert "KNeighborsClassifier" in shown.stdout
    assert_error(run("verify", str(knn_dir)), 7, "--trusted")
    trusted = run("verify", str(knn_dir), "--trusted")
    assert trusted.exit_code == 0, trusted.output


# --------------------------------------------------------------------------- predict


@pytest.mark.parametrize(
    ("src", "dst"),
    [("csv", "csv"), ("csv", "parquet"), ("parquet", "jsonl"), ("jsonl", "csv"), ("jsonl", "parquet")],
)
def test_predict_matches_python_api(
    artifact_dir: Path, artifact: parity.Artifact, tmp_path: Path, src: str, dst: str
) -> None:
    frame = raw_frame(257, seed=1)
    source = write_input(frame, tmp_path / f"in.{src}")
    target = tmp_path / f"out.{dst}"
    result = run("predict", str(artifact_dir), "-i", str(source), "-o", str(target), "--batch-size", "64")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # progress and summary go to stderr
    got = read_output(target)
    expected = artifact.predict(frame)
    assert list(got.columns) == ["label", "probability"]
    np.testing.assert_array_equal(got["label"].to_numpy(), expected["label"].to_numpy())
    np.testing.assert_allclose(got["probability"].to_numpy(), expected["probability"].to_numpy(), rtol=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, target.name])  # no temp file left


def test_predict_keep_inputs(artifact_dir: Path, artifact: parity.Artifact, tmp_path: Path) -> None:
    frame = raw_frame(50, seed=2).assign(id=np.arange(50))
    source = write_input(frame, tmp_path / "in.csv")
    target = tmp_path / "out.parquet"
    result = run("-q", "predict", str(artifact_dir), "-i", str(source), "-o", str(target), "--keep-inputs")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    got = pd.read_parquet(target)
    assert list(got.columns) == ["a", "b", "c", "id", "label", "probability"]
    assert got["c"].tolist() == frame["c"].tolist()  # "1" read back as text, not 1
    np.testing.assert_allclose(got["probability"], artifact.predict(frame)["probability"], rtol=1e-12)


def test_predict_missing_column_exits_4(artifact_dir: Path, tmp_path: Path) -> None:
    frame = raw_frame(20, seed=4)
    for suffix in ("csv", "parquet", "jsonl"):
        source = write_input(frame.drop(columns=["b"]), tmp_path / f"in.{suffix}")
        target = tmp_path / f"out.{suffix}"
        assert_error(run("predict", str(artifact_dir), "-i", str(source), "-o", str(target)), 4, "'b'")
        assert not target.exists()


def test_predict_empty_csv_text_field_is_null(artifact_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("a,b,c\n1.0,2.0,x\n,3.0,\n")
    # "c" had no missing values in training, so the null is refused, naming the column and the row.
    assert_error(
        run("predict", str(artifact_dir), "-i", str(source), "-o", str(tmp_path / "o.csv")), 4, "'c'", "at data row 2"
    )


def test_predict_bad_batch_leaves_no_output(artifact_dir: Path, tmp_path: Path) -> None:
    frame = raw_frame(100, seed=5)
    source = write_input(frame, tmp_path / "in.jsonl")
    lines = source.read_text().splitlines()
    lines[44] = json.dumps({**json.loads(lines[44]), "c": 5})  # a number in a text column, in the 5th batch
    source.write_text("\n".join(lines) + "\n")
    target = tmp_path / "out.parquet"
    result = run("predict", str(artifact_dir), "-i", str(source), "-o", str(target), "--batch-size", "10")
    assert_error(result, 4, "'c'", "at data row 45")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_predict_bad_files(artifact_dir: Path, tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"a": 1.0, "b": 2.0, "c": "x"}\n{"a": \n')
    assert_error(run("predict", str(artifact_dir), "-i", str(bad_json), "-o", str(tmp_path / "o.csv")), 4, "line 2")
    missing = tmp_path / "missing.csv"
    assert_error(run("predict", str(artifact_dir), "-i", str(missing), "-o", str(tmp_path / "o.csv")), 5, "missing.csv")
    usage = run("predict", str(artifact_dir), "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o.csv"))
    assert usage.exit_code == 2


# --------------------------------------------------------------------------- registry


def test_registry_flow(artifact_dir: Path, tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    pushed = run("registry", "push", str(artifact_dir), "--alias", "prod", "--json", registry=reg)
    assert pushed.exit_code == 0, pushed.output
    assert json.loads(pushed.stdout) | {"digest": "", "created": "", "path": ""} == {
        "name": "clitest",
        "version": 1,
        "aliases": ["prod"],
        "new": True,
        "digest": "",
        "created": "",
        "path": "",
    }
    again = run("registry", "push", str(artifact_dir), registry=reg)
    assert again.exit_code == 0
    assert "already registered as clitest:1" in again.stdout

    listed = json.loads(run("registry", "list", "--json", registry=reg).stdout)
    assert [(m["name"], m["latest"], m["aliases"]) for m in listed] == [("clitest", 1, {"prod": 1})]
    assert "clitest" in run("registry", "list", registry=reg).stdout

    moved = run("registry", "alias", "clitest", "staging", "1", registry=reg)
    assert moved.exit_code == 0, moved.output
    assert "clitest@staging" in moved.stdout
    history = json.loads(run("registry", "history", "clitest", "--json", registry=reg).stdout)
    assert [(h["alias"], h["old_version"], h["new_version"]) for h in history] == [
        ("prod", None, 1),
        ("staging", None, 1),
    ]
    assert "staging" in run("registry", "history", "clitest", registry=reg).stdout

    versions = json.loads(run("registry", "versions", "clitest", "--json", registry=reg).stdout)
    assert [(v["version"], v["aliases"]) for v in versions] == [(1, ["prod", "staging"])]

    shown = json.loads(run("registry", "show", "clitest@prod", "--json", registry=reg).stdout)
    assert shown["version"] == 1
    assert shown["manifest"]["inputs"] == ["a", "b", "c"]
    assert shown["manifest"]["parity_passed"] is True
    assert "clitest:1" in run("registry", "show", "clitest@prod", registry=reg).stdout

    inspected = json.loads(run("inspect", "clitest@prod", "--json", registry=reg).stdout)
    assert (inspected["version"], inspected["aliases"]) == (1, ["prod", "staging"])
    assert run("verify", "clitest@staging", registry=reg).exit_code == 0
    # $PARITY_HOME picks the same registry as --registry.
    via_env = runner.invoke(app, ["registry", "list", "--json"], env={"PARITY_HOME": str(reg)})
    assert json.loads(via_env.stdout)[0]["name"] == "clitest"

    assert_error(run("registry", "show", "clitest:9", registry=reg), 5, "no version 9")
    assert_error(run("registry", "alias", "clitest", "prod", "9", registry=reg), 5, "no version 9")
    assert_error(run("registry", "history", "nope", registry=reg), 5, "'nope'")
    assert_error(run("registry", "alias", "clitest", "12", "1", registry=reg), 8, "invalid alias")
    assert_error(run("registry", "push", str(tmp_path / "missing"), registry=reg), 5, "does not exist")


def test_registry_tampered_version_exits_6(artifact_dir: Path, tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    assert run("registry", "push", str(artifact_dir), registry=reg).exit_code == 0
    version_dir = reg / "registry" / "models" / "clitest" / "versions" / "1"
    stored = version_dir / "profile.json"
    stored.chmod(0o644)
    stored.write_text("{}")
    assert_error(run("inspect", "clitest", registry=reg), 6, "profile.json")
    # A manifest edited to match the new bytes passes the per-file check but not the registry's digest.
    manifest_path = version_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["profile.json"] = {"sha256": sha256_bytes(b"{}"), "size": 2}
    manifest_path.chmod(0o644)
    manifest_path.write_bytes(canonical_json(manifest))
    for command in ("inspect", "verify"):
        assert_error(run(command, "clitest", registry=reg), 6, "manifest.json")


# --------------------------------------------------------------------------- real processes

# Every command group of the real app, and the subcommands of each group.
COMMANDS = {"inspect", "verify", "predict", "registry", "serve", "skew"}
REGISTRY_COMMANDS = {"push", "list", "show", "versions", "alias", "history"}


def _parity_command() -> list[str]:
    script = Path(sys.executable).parent / "parity"
    assert script.exists(), f"the console script is not installed next to {sys.executable}: pip install -e ."
    return [str(script)]


def _listed_commands(help_text: str) -> set[str]:
    """Command names in a typer help page's "Commands" panel."""
    names, inside = set(), False
    for line in help_text.splitlines():
        if "Commands" in line and line.lstrip().startswith(("╭", "+", "Commands")):
            inside = True
            continue
        if inside and line.lstrip().startswith(("╰", "+")):
            inside = False
        if inside:
            word = line.strip("│| ").split(" ", 1)[0]
            if word:
                names.add(word)
    return names


def test_installed_command_exposes_every_command_group() -> None:
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
    top = subprocess.run([*_parity_command(), "--help"], capture_output=True, text=True, timeout=120, env=env)
    assert top.returncode == 0, top.stderr
    assert _listed_commands(top.stdout) >= COMMANDS, top.stdout
    for command in sorted(COMMANDS):
        sub = subprocess.run([*_parity_command(), command, "--help"], capture_output=True, text=True, env=env)
        assert sub.returncode == 0 and "Usage: parity " + command in sub.stdout, (command, sub.stdout, sub.stderr)
    reg = subprocess.run([*_parity_command(), "registry", "--help"], capture_output=True, text=True, env=env)
    assert _listed_commands(reg.stdout) >= REGISTRY_COMMANDS, reg.stdout


def test_real_app_object_registers_every_group() -> None:
    import typer.main

    group = typer.main.get_command(app)
    assert set(group.commands) >= COMMANDS  # type: ignore[attr-defined]
    assert set(group.commands["registry"].commands) >= REGISTRY_COMMANDS  # type: ignore[attr-defined]


def test_console_script_and_module(artifact_dir: Path, tmp_path: Path) -> None:
    command = _parity_command()
    ok = subprocess.run([*command, "inspect", str(artifact_dir), "--json"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["manifest"]["name"] == "clitest"

    missing = subprocess.run(
        [sys.executable, "-m", "parity.cli", "--registry", str(tmp_path), "verify", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 5
    assert missing.stdout == ""
    assert [line.split(":")[0] for line in missing.stderr.strip().splitlines()] == ["error"]
