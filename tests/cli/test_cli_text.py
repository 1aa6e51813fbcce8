"""Text output of the real ``parity`` app where only JSON had tests: registry versions/show/alias/fsck, inspect of
a registered version, and predict's warnings (extra columns, unseen categories, a --keep-inputs name clash)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from parity.cli import app
from tests.cli.conftest import raw_frame
from tests.cli.test_cli import write_input

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def run(*args: str, registry: Path) -> Result:
    return runner.invoke(app, ["--registry", str(registry), *args], env=WIDE)


def text(result: Result) -> str:
    return " ".join(result.stdout.split())


@pytest.fixture
def reg(tmp_path: Path, artifact_dir: Path, knn_dir: Path) -> Path:
    root = tmp_path / "reg"
    assert run("registry", "push", str(artifact_dir), "--alias", "prod", registry=root).exit_code == 0
    assert run("registry", "push", str(knn_dir), registry=root).exit_code == 0
    return root


def test_versions_show_alias_and_inspect_as_text(reg: Path) -> None:
    versions = run("registry", "versions", "clitest", registry=reg)
    assert versions.exit_code == 0, versions.output
    assert "Versions of clitest" in versions.stdout and "prod" in versions.stdout

    moved = run("registry", "alias", "clitest", "staging", "1", "--json", registry=reg)
    assert moved.exit_code == 0, moved.output
    change = json.loads(moved.stdout)
    assert (change["name"], change["alias"], change["old_version"], change["new_version"]) == (
        "clitest",
        "staging",
        None,
        1,
    )

    shown = run("registry", "show", "knn:1", registry=reg)
    assert shown.exit_code == 0, shown.output
    assert "NOT PORTABLE blocked by KNeighborsClassifier" in text(shown)

    inspected = run("inspect", "clitest@prod", registry=reg)
    assert inspected.exit_code == 0, inspected.output
    assert "version 1 (aliases: prod, staging)" in text(inspected)


def test_fsck_reports_each_damage_then_repair_is_asked_for(reg: Path) -> None:
    assert "registry is consistent" in run("registry", "fsck", registry=reg).stdout
    models = reg / "registry" / "models"
    stored = models / "clitest" / "versions" / "1" / "profile.json"
    stored.chmod(0o644)
    stored.write_text("{}")  # a bad disk
    shutil.rmtree(models / "knn" / "versions" / "1")  # a version the index still lists
    (models / "broken").mkdir()
    (models / "broken" / "index.json").write_text("{torn")

    checked = run("registry", "fsck", registry=reg)
    assert checked.exit_code == 8, checked.output
    assert "Registry check" in checked.stdout
    report = text(checked)
    for model, kind in (("clitest", "corrupt_version"), ("knn", "missing_version"), ("broken", "no_index")):
        assert f"{model} │ {kind}" in report
    assert "3 registry problem(s) left; rerun with --repair" in checked.stderr
    problems = json.loads(run("registry", "fsck", "--json", registry=reg).stdout)
    assert sorted(p["kind"] for p in problems) == ["corrupt_version", "missing_version", "no_index"]
    # Without --verify the stored bytes are not read: the corrupt file goes unseen.
    quick = json.loads(run("registry", "fsck", "--no-verify", "--json", registry=reg).stdout)
    assert sorted(p["kind"] for p in quick) == ["missing_version", "no_index"]


def test_predict_warns_about_extra_columns_and_unseen_categories(artifact_dir: Path, tmp_path: Path) -> None:
    frame = raw_frame(30, seed=7).assign(note=np.arange(30))
    frame.loc[:4, "c"] = "never-seen"
    source = write_input(frame, tmp_path / "in.csv")
    done = runner.invoke(app, ["predict", str(artifact_dir), "-i", str(source), "-o", str(tmp_path / "o.csv")],
                         env=WIDE)  # fmt: skip
    assert done.exit_code == 0, done.output
    err = " ".join(done.stderr.split())
    assert "ignoring column(s) ['note'] of" in err and "the model does not take them" in err
    assert "5 row(s) had a value of 'c' not seen in training" in err
    assert "wrote 30 rows to" in err


def test_keep_inputs_refuses_an_input_named_like_an_output(artifact_dir: Path, tmp_path: Path) -> None:
    frame = raw_frame(10, seed=8).assign(probability=0.5)
    source = write_input(frame, tmp_path / "in.parquet")
    target = tmp_path / "o.parquet"
    bad = runner.invoke(app, ["predict", str(artifact_dir), "-i", str(source), "-o", str(target), "--keep-inputs"])
    assert bad.exit_code == 4, bad.output
    assert "--keep-inputs: input column(s) ['probability'] have the names of model outputs" in bad.stderr
    assert not target.exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "cannot read the config file: No such file or directory"),
        ("port = \n", "the config file is not valid TOML"),
        ('serve = "fast"\n', "the [serve] entry of the config file must be a table"),
        # refs as one string is split like $PARITY_REFS; the misspelled key after it is still refused.
        ('refs = "churn spend"\nlake-overflw = "shed"\n', "unknown option 'lake-overflw' in the config file"),
    ],
)
def test_serve_config_file_errors_are_usage_errors(tmp_path: Path, content: str | None, words: str) -> None:
    config = tmp_path / "serve.toml"
    if content is not None:
        config.write_text(content)
    bad = runner.invoke(app, ["serve", "--config", str(config)], env={"COLUMNS": "400"})
    assert bad.exit_code == 2, bad.output
    assert words in " ".join(bad.output.split())


def test_inspect_shows_uncountable_categories_booleans_and_skipped_cases(tmp_path: Path) -> None:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    import parity
    from parity.schema import MAX_CATEGORIES

    n = MAX_CATEGORIES + 200
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "customer": [f"c{i:05d}" for i in range(n)],  # more distinct values than a signature lists
        "plan": rng.choice(["basic", "pro"], n),
        "vip": rng.random(n) < 0.3,
    })  # fmt: skip
    pre = ColumnTransformer([
        ("id", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["customer"]),
        ("plan", OneHotEncoder(handle_unknown="error"), ["plan"]),  # an unseen plan raises in Python
        ("vip", "passthrough", ["vip"]),
    ])  # fmt: skip
    model = Pipeline([("pre", pre), ("model", LogisticRegression())]).fit(frame, frame["plan"] == "pro")
    art = parity.package(model, frame, name="wide")
    assert art.parity_report.skipped  # the unseen-category edge case could not run in Python
    shown = runner.invoke(app, ["inspect", str(art.save(tmp_path / "wide"))], env=WIDE)
    assert shown.exit_code == 0, shown.output
    lines = {line.split("│")[1].strip(): line for line in shown.stdout.splitlines() if line.count("│") > 2}
    assert "too many categories to list" in lines["customer"] and "2 categories" in lines["plan"]
    assert "BOOL" in lines["vip"] and "│ -" in lines["vip"]
    assert "skipped cases" in shown.stdout and "the Python model raised" in " ".join(shown.stdout.split())
