"""Backends: Dask (local schedulers) and the partition / mapInPandas adapters equal the pyarrow path exactly."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from parity.profile import ProfileSpec, profile_frame, profile_parquet
from parity.skew import (
    SPARK_SCHEMA,
    Reference,
    merge_profile_rows,
    profile_parquet_dask,
    profile_partitions,
    skew_report,
    spark_profile_udf,
)
from tests.skew.helpers import frame

KINDS = {"x": "numeric", "amount": "numeric", "plan": "categorical", "region": "categorical", "active": "boolean"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProfileSpec, list[Path]]:
    root = tmp_path_factory.mktemp("parts")
    spec = ProfileSpec.from_reference(frame(5000, 0), KINDS)
    paths = []
    for i in range(3):
        df = frame(2500, 50 + i)
        df.loc[df.index[:7], "plan"] = f"new-{i}"  # unseen examples must merge identically too
        paths.append(root / f"part-{i}.parquet")
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), paths[-1], row_group_size=1000)
    return spec, paths


@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_dask_equals_pyarrow_exactly(files: tuple[ProfileSpec, list[Path]], scheduler: str) -> None:
    pytest.importorskip("dask")
    spec, paths = files
    expected = profile_parquet([str(p) for p in paths], spec, batch_size=400)
    got = profile_parquet_dask([str(p) for p in paths], spec, batch_size=400, scheduler=scheduler)
    assert got == expected  # Profile equality compares the whole JSON form: floats bit for bit


def test_partitions_and_map_in_pandas_adapter(files: tuple[ProfileSpec, list[Path]]) -> None:
    spec, paths = files
    expected = profile_parquet([str(p) for p in paths], spec)
    groups = [pq.ParquetFile(p).read_row_group(g) for p in paths for g in range(3)]
    assert profile_partitions(groups, spec) == expected
    # mapInPandas: one function call per Spark partition, each given an iterator of pandas frames.
    udf = spark_profile_udf(spec)
    rows = [row for g in groups for out in udf(iter([g.to_pandas()])) for row in out["profile"]]
    assert SPARK_SCHEMA == "profile string"
    assert merge_profile_rows(rows) == expected


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
