"""Backends: Dask (local schedulers) and the partition / mapInPandas adapters equal the pyarrow path exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from parity.profile import ProfileSpec, profile_frame, profile_parquet
from parity.skew import (
    Reference,
    profile_parquet_dask,
    profile_parquet_spark,
    profile_partitions,
    skew_report,
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


def test_partitions_equal_pyarrow(files: tuple[ProfileSpec, list[Path]]) -> None:
    spec, paths = files
    expected = profile_parquet([str(p) for p in paths], spec)
    groups = [pq.ParquetFile(p).read_row_group(g) for p in paths for g in range(3)]
    assert profile_partitions(groups, spec) == expected


def test_spark_equals_pyarrow_exactly(files: tuple[ProfileSpec, list[Path]], spark: Any) -> None:
    """A real SparkSession (local[2]) profiles the files in mapInPandas tasks: the same profile.

    Counts, bins, categories and extremes are identical; the streaming mean / M2 can differ in the last
    bit (measured: 1 ulp), because executor processes run numpy's reductions on differently aligned buffers.
    """
    spec, paths = files
    expected = profile_parquet([str(p) for p in paths], spec, batch_size=400)
    got = profile_parquet_spark([str(p) for p in paths], spec, batch_size=400, spark=spark)
    assert got.rows == expected.rows == 7500
    assert _rounded(got.to_dict()) == _rounded(expected.to_dict())


def _rounded(obj: Any) -> Any:
    """Floats to 13 significant digits (1 ulp of a mean is far below), everything else exact."""
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return float(f"{obj:.13g}") if isinstance(obj, float) else obj


def test_skew_cli_engine_spark_equals_pyarrow(
    files: tuple[ProfileSpec, list[Path]], spark: Any, tmp_path: Path
) -> None:
    """`parity skew --engine spark` writes the same report as the default engine."""
    from typer.testing import CliRunner

    from parity.cli import app

    spec, paths = files
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(profile_frame(frame(5000, 0), spec).to_dict()))
    reports = {}
    for engine in ("pyarrow", "spark"):
        out = tmp_path / f"{engine}.json"
        result = CliRunner().invoke(app, ["skew", str(ref), "--data", str(paths[0].parent), "--engine", engine,
                                          "--json", str(out)])  # fmt: skip
        assert result.exit_code in (0, 10, 11), result.output
        reports[engine] = json.loads(out.read_text())
        for key in ("created", "seconds"):
            reports[engine].pop(key)
    assert _rounded(reports["spark"]) == _rounded(reports["pyarrow"])


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
