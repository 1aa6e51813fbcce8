"""`parity batch`: local, Dask and Spark engines give identical outputs on data larger than one batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from typer.testing import CliRunner

import parity
from parity.cli import app
from tests.fixtures import pipeline, raw_frame, targets

runner = CliRunner()
ROWS = 12_000
BATCH = 2_500  # several batches per file, a partial one at the end


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A portable tree model with string labels in unsorted order."""
    df = raw_frame(600, seed=11)
    labels = np.where(targets(df, "binary") == 1, "stay", "churn")
    fitted = pipeline(GradientBoostingClassifier(n_estimators=20, max_depth=3)).fit(df, labels)
    return parity.package(fitted, df, name="churn").save(tmp_path_factory.mktemp("m") / "churn")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """Three Parquet files as data arrives: object text with None, a category column, a nullable Int64 column."""
    root = tmp_path_factory.mktemp("in") / "customers"
    root.mkdir()
    frames = []
    for i in range(3):
        df = raw_frame(ROWS // 3, seed=100 + i)
        df.insert(0, "customer_id", np.arange(i * ROWS // 3, (i + 1) * ROWS // 3, dtype=np.int64))
        df["plan"] = df["plan"].astype("category")
        df["age"] = df["age"].astype("Int64")
        df.loc[df.index[:5], "region"] = "atlantis"  # unseen in training
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), root / f"part-{i}.parquet", row_group_size=1800)
        frames.append(df)
    return root, pd.concat(frames, ignore_index=True)


def run(*args: str) -> Any:
    return runner.invoke(app, ["--quiet", "batch", *args])


def read(path: Path) -> pd.DataFrame:
    return ds.dataset(path).to_table().to_pandas().sort_values("customer_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def expected(model_dir: Path, data: tuple[Path, pd.DataFrame]) -> pd.DataFrame:
    """What Artifact.predict answers in small (one-thread) batches: every engine must give exactly this."""
    _, frame = data
    model = parity.load(model_dir)
    inputs = frame.drop(columns="customer_id")
    out = pd.concat([model.predict(inputs.iloc[i : i + 1000]) for i in range(0, len(inputs), 1000)])
    return pd.concat([frame[["customer_id"]], out], axis=1)


def test_local_engine_streams_and_matches_predict(
    model_dir: Path, data: tuple[Path, pd.DataFrame], expected: pd.DataFrame, tmp_path: Path
) -> None:
    root, _ = data
    out = tmp_path / "scores.parquet"
    result = run(str(model_dir), "-i", str(root), "-o", str(out), "--key", "customer_id", "--batch-size", str(BATCH),
                 "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == ROWS
    assert out.is_file() and pq.ParquetFile(out).metadata.num_row_groups > 1  # streamed, not one table
    got = read(out)
    assert list(got.columns) == ["customer_id", "label", "probability"]
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_dtype=False)


def test_dask_and_spark_equal_local(
    model_dir: Path, data: tuple[Path, pd.DataFrame], expected: pd.DataFrame, tmp_path: Path, spark: Any
) -> None:
    root, _ = data
    outputs = {}
    for engine in ("local", "dask", "spark"):
        out = tmp_path / engine
        result = run(str(model_dir), "-i", str(root), "-o", str(out), "--engine", engine, "--key", "customer_id",
                     "--batch-size", str(BATCH))  # fmt: skip
        assert result.exit_code == 0, (engine, result.output)
        outputs[engine] = read(out)
    for engine, got in outputs.items():
        pd.testing.assert_frame_equal(got, outputs["local"], check_exact=True, obj=engine)
    pd.testing.assert_frame_equal(outputs["spark"], expected, check_exact=True, check_dtype=False)
    # The job's larger Arrow batches were the engine's own setting: the session is as it was.
    assert spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", None) is None


def test_spark_executor_refuses_a_tampered_artifact(model_dir: Path, spark: Any) -> None:
    from parity.batch._spark import executor_artifact
    from parity.errors import IntegrityError

    # The digest the driver sends must match what the executor loaded; a different digest is refused.
    spark.sparkContext.addFile(str(model_dir), recursive=True)
    with pytest.raises(IntegrityError, match="digest"):
        executor_artifact(model_dir.name, "0" * 64, False)


def test_csv_input_local(
    model_dir: Path, data: tuple[Path, pd.DataFrame], expected: pd.DataFrame, tmp_path: Path
) -> None:
    _, frame = data
    csv = tmp_path / "in.csv"
    frame.to_csv(csv, index=False)  # missing text is an empty field, as CSV files arrive
    result = run(str(model_dir), "-i", str(csv), "-o", str(tmp_path / "out"), "--key", "customer_id")
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(read(tmp_path / "out"), expected, check_exact=True, check_dtype=False)


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--key", "nope"], 4, "keys=['nope']: column(s) not in"),
        (["--key", "label"], 4, "keys=['label']: column(s) not in"),
        (["--engine", "ray"], 2, "must be one of local, spark, dask"),
    ],
)
def test_bad_requests_write_nothing(
    model_dir: Path, data: tuple[Path, pd.DataFrame], tmp_path: Path, extra: list[str], code: int, message: str
) -> None:
    root, _ = data
    result = run(str(model_dir), "-i", str(root), "-o", str(tmp_path / "out.parquet"), *extra)
    assert result.exit_code == code, result.output
    assert message in result.output
    if code == 4:  # the library names the parameter; the CLI adds the flag that sets it
        assert "(CLI: --key)" in result.output
    assert list(tmp_path.iterdir()) == []


def test_key_named_like_an_output_is_refused(model_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    frame = raw_frame(20).assign(label="x")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), src)
    result = run(str(model_dir), "-i", str(src), "-o", str(tmp_path / "out.parquet"), "--key", "label")
    assert result.exit_code == 4, result.output
    assert "keys=['label']: column(s) named like model outputs" in result.output
    assert "(CLI: --key)" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_dask_refuses_csv_naming_the_engine(model_dir: Path, tmp_path: Path) -> None:
    from parity.batch import score
    from parity.errors import SchemaError

    csv = tmp_path / "in.csv"
    raw_frame(20).to_csv(csv, index=False)
    with pytest.raises(SchemaError, match=r"engine='dask' reads Parquet; .* use engine='local'$"):
        score(model_dir, csv, tmp_path / "lib.parquet", engine="dask")
    result = run(str(model_dir), "-i", str(csv), "-o", str(tmp_path / "cli.parquet"), "--engine", "dask")
    assert result.exit_code == 4, result.output
    assert "use engine='local' (CLI: --engine)" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_missing_input_column_and_existing_output(model_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(raw_frame(50).drop(columns="plan"), preserve_index=False), src)
    result = run(str(model_dir), "-i", str(src), "-o", str(tmp_path / "o.parquet"))
    assert result.exit_code == 4 and "missing input column(s) ['plan']" in result.output
    good = tmp_path / "good.parquet"
    pq.write_table(pa.Table.from_pandas(raw_frame(50), preserve_index=False), good)
    (tmp_path / "taken.parquet").write_bytes(b"keep")
    again = run(str(model_dir), "-i", str(good), "-o", str(tmp_path / "taken.parquet"))
    assert again.exit_code != 0 and "already exists" in again.output
    assert (tmp_path / "taken.parquet").read_bytes() == b"keep"
