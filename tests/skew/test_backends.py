"""Backends: Dask (local schedulers), real Spark and the partition adapters equal the pyarrow path exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from parity.profile import Profile, ProfileSpec, profile_frame, profile_parquet
from parity.skew import (
    Reference,
    profile_parquet_dask,
    profile_parquet_spark,
    profile_partitions,
    skew_report,
)
from tests.skew.helpers import frame

KINDS = {"x": "numeric", "amount": "numeric", "plan": "categorical", "region": "categorical", "active": "boolean"}
ROWS, GROUP, BATCH = 24_000, 10_000, 3_000  # per file: row groups of 10k, 10k and 4k rows, read in 3k batches
T0 = datetime(2024, 6, 1, tzinfo=UTC)
SINCE = T0 + timedelta(seconds=ROWS * 2 // 5)  # keeps ~60% of the rows, scattered through every batch
# The lake's own window filter (what `parity skew --since` applies): it cuts every batch, so an engine that
# filtered a whole row group and then sliced it would sum other groups of values (a different last bit).
WINDOW = pc.field("ts").cast(pa.timestamp("us", tz="UTC")) >= pa.scalar(SINCE, pa.timestamp("us", tz="UTC"))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProfileSpec, list[Path]]:
    """Three files, nine row groups: NaN and None values, an all-null batch, infinities, unseen categories."""
    root = tmp_path_factory.mktemp("parts")
    spec = ProfileSpec.from_reference(frame(5000, 0), KINDS)
    paths = []
    for i in range(3):
        df = frame(ROWS, 50 + i)
        df.loc[df.index[:7], "plan"] = f"new-{i}"  # unseen examples must merge identically too
        df.loc[df.index[100:103], "x"] = [np.inf, -np.inf, np.nan]
        if i == 0:
            df.loc[df.index[: BATCH + 500], "amount"] = np.nan  # a whole batch without a finite value
        order = (np.arange(ROWS) * 7919) % ROWS  # a permutation: the window keeps rows all over every batch
        df["ts"] = pd.to_datetime(T0) + pd.to_timedelta(order, unit="s")
        paths.append(root / f"part-{i}.parquet")
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), paths[-1], row_group_size=GROUP)
    return spec, paths


def _expected(spec: ProfileSpec, paths: list[Path], window: bool) -> tuple[Profile, dict[str, Any]]:
    """The pyarrow path's profile (optionally of the window), with a check that the data is what we think."""
    options: dict[str, Any] = {"filter": WINDOW, "filter_columns": ["ts"]} if window else {}
    expected = profile_parquet([str(p) for p in paths], spec, batch_size=BATCH, **options)
    assert sum(pq.ParquetFile(p).metadata.num_row_groups for p in paths) == 9
    assert (0.5 * 3 * ROWS < expected.rows < 0.7 * 3 * ROWS) if window else expected.rows == 3 * ROWS
    x, amount = expected.to_dict()["columns"]["x"], expected.to_dict()["columns"]["amount"]
    if not window:
        assert (x["pos_inf"], x["neg_inf"], x["nulls"]) == (3, 3, 3)
    assert amount["nulls"] > BATCH // 2 and amount["mean"] > 0.0
    return expected, options


@pytest.mark.parametrize("window", [False, True])
@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_dask_equals_pyarrow_exactly(files: tuple[ProfileSpec, list[Path]], scheduler: str, window: bool) -> None:
    pytest.importorskip("dask")
    spec, paths = files
    expected, options = _expected(spec, paths, window)
    got = profile_parquet_dask([str(p) for p in paths], spec, batch_size=BATCH, scheduler=scheduler, **options)
    assert got == expected  # Profile equality compares the whole JSON form: floats bit for bit


def test_partitions_equal_pyarrow(files: tuple[ProfileSpec, list[Path]]) -> None:
    spec, paths = files
    expected = profile_parquet([str(p) for p in paths], spec)
    groups = [pq.ParquetFile(p).read_row_group(g) for p in paths for g in range(pq.ParquetFile(p).num_row_groups)]
    assert profile_partitions(groups, spec) == expected


def test_spark_equals_pyarrow_exactly(files: tuple[ProfileSpec, list[Path]], spark: Any) -> None:
    """A real SparkSession (local[2]) profiles the row groups in mapInPandas tasks: the identical profile.

    Every field is compared with ``==``, the streaming mean and M2 included, with and without a window filter.
    Nine row groups over eight Spark partitions: the driver must merge them in row-group order whatever
    order the executors answer in (Chan's merge of mean/M2 is not associative to the last bit).
    """
    spec, paths = files
    for window in (False, True):
        expected, options = _expected(spec, paths, window)
        got = profile_parquet_spark([str(p) for p in paths], spec, batch_size=BATCH, spark=spark, **options)
        assert got.to_dict() == expected.to_dict(), f"window={window}"


def test_skew_cli_engine_spark_equals_pyarrow(
    files: tuple[ProfileSpec, list[Path]], spark: Any, tmp_path: Path
) -> None:
    """`parity skew --engine spark --since T` writes the same report as the default engine (whole data: above)."""
    from typer.testing import CliRunner

    from parity.cli import app

    spec, paths = files
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(profile_frame(frame(5000, 0), spec).to_dict()))
    reports = {}
    for engine in ("pyarrow", "spark"):
        out = tmp_path / f"{engine}.json"
        result = CliRunner().invoke(app, ["skew", str(ref), "--data", str(paths[0].parent), "--engine", engine,
                                          "--since", SINCE.isoformat(), "--json", str(out)])  # fmt: skip
        assert result.exit_code in (0, 10, 11), result.output
        reports[engine] = json.loads(out.read_text())
        for key in ("created", "seconds"):
            reports[engine].pop(key)
    assert reports["spark"] == reports["pyarrow"]
    assert 0.5 * 3 * ROWS < reports["spark"]["data"]["rows"] < 0.7 * 3 * ROWS  # the window did cut rows


def test_skew_report_backends_agree(files: tuple[ProfileSpec, list[Path]]) -> None:
    pytest.importorskip("dask")
    spec, paths = files
    ref = Reference(profile_frame(frame(5000, 0), spec))
    a = skew_report(ref, paths[0].parent).to_dict()
    b = skew_report(ref, paths[0].parent, backend="dask").to_dict()
    for d in (a, b):
        d.pop("created"), d.pop("seconds")
    assert a == b
    # A merged profile from any engine can be compared directly.
    c = skew_report(ref, profile_parquet(paths[0].parent, spec)).to_dict()
    assert [f["metrics"] for f in c["features"]] == [f["metrics"] for f in a["features"]]
