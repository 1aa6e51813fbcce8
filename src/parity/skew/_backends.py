"""Backend-neutral partition profiling, Dask and Spark backends for Parquet, and a ``mapInPandas`` adapter.

Floating-point sums depend on how values are grouped, so no engine aggregates on its own terms: the Parquet
backends run one task per row group that calls ``profile_row_groups`` -- the very function ``profile_parquet``
runs, reading, slicing, filtering and summing the same way -- and merge the row-group profiles in file and
row-group order with ``Profile.merge``. Their result therefore equals ``profile_parquet`` bit for bit, mean
and M2 included (the tests compare with ``==``). The DataFrame adapters (:func:`profile_dask`,
:func:`spark_profile_udf`) profile whatever partitions they are given, in ``batch_size`` slices.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from parity.errors import MissingDependencyError
from parity.profile import Profile, ProfileSpec, profile_row_groups

__all__ = [
    "SPARK_SCHEMA",
    "merge_profile_rows",
    "profile_dask",
    "profile_parquet_dask",
    "profile_parquet_spark",
    "profile_partition",
    "profile_partitions",
    "spark_profile_udf",
]

SPARK_SCHEMA = "profile string"
"""Output schema to give ``mapInPandas`` together with :func:`spark_profile_udf`."""
Frame: TypeAlias = pd.DataFrame | pa.RecordBatch | pa.Table


def profile_partition(frame: Frame, spec: ProfileSpec, batch_size: int = 65_536) -> Profile:
    """Profile one partition in ``batch_size`` slices (as profile_parquet does within a row group)."""
    prof = Profile.empty(spec)
    n = len(frame) if isinstance(frame, pd.DataFrame) else frame.num_rows
    for start in range(0, n, batch_size):
        part = (
            frame.iloc[start : start + batch_size]
            if isinstance(frame, pd.DataFrame)
            else frame.slice(start, batch_size)
        )
        prof.update(part)
    return prof


def profile_partitions(frames: Iterable[Frame], spec: ProfileSpec, batch_size: int = 65_536) -> Profile:
    """Profile partitions one by one and merge them in order; memory holds one partition at a time."""
    total = Profile.empty(spec)
    for frame in frames:
        total = total.merge(profile_partition(frame, spec, batch_size))
    return total


def merge_profile_rows(rows: Iterable[str | Mapping[str, Any]]) -> Profile:
    """Merge partition profiles given as JSON text or dicts (e.g. collected from Spark or Dask)."""
    total: Profile | None = None
    for row in rows:
        prof = Profile.from_dict(json.loads(row) if isinstance(row, str) else row)
        total = prof if total is None else total.merge(prof)
    if total is None:
        raise ValueError("no partition profiles to merge")
    return total


def spark_profile_udf(
    spec: ProfileSpec, batch_size: int = 65_536
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """Return a ``mapInPandas`` function yielding one JSON profile row per Spark partition.

    ``rows = df.mapInPandas(spark_profile_udf(spec), schema=SPARK_SCHEMA).collect()``, then
    ``merge_profile_rows(r.profile for r in rows)``.
    """

    def profile_batches(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        prof = profile_partitions(frames, spec, batch_size)
        yield pd.DataFrame({"profile": [json.dumps(prof.to_dict())]})

    return profile_batches


def _dask(module: str = "dask.dataframe") -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            "the Dask backend needs dask: pip install 'dask[dataframe]' (or use the default pyarrow backend)"
        ) from e


def profile_dask(ddf: Any, spec: ProfileSpec, batch_size: int = 65_536) -> Profile:
    """Profile a Dask DataFrame: ``map_partitions`` builds one profile per partition, merged in order."""
    _dask()

    def one(df: pd.DataFrame) -> pd.DataFrame:
        text = json.dumps(profile_partition(df, spec, batch_size).to_dict())
        return pd.DataFrame({"profile": pd.Series([text], dtype=object)})

    meta = pd.DataFrame({"profile": pd.Series([], dtype=object)})
    parts = ddf.map_partitions(one, meta=meta).compute()
    return merge_profile_rows(parts["profile"].tolist()) if len(parts) else Profile.empty(spec)


def _row_groups(files: Sequence[str]) -> list[tuple[str, int]]:
    """Every (file, row group) in file order: the tasks of the Parquet backends."""
    tasks = []
    for f in files:
        with pq.ParquetFile(f) as pf:
            tasks += [(str(f), g) for g in range(pf.metadata.num_row_groups)]
    return tasks


def _merge_in_order(parts: Iterable[Profile], spec: ProfileSpec) -> Profile:
    """Merge row-group profiles in the order given, starting from the empty profile as profile_parquet does."""
    total = Profile.empty(spec)
    for part in parts:
        total = total.merge(part)
    return total


def profile_parquet_dask(
    files: Sequence[str],
    spec: ProfileSpec,
    *,
    batch_size: int = 65_536,
    filter: pc.Expression | None = None,  # mirrors profile_parquet
    filter_columns: Sequence[str] = (),
    scheduler: str | None = None,
) -> Profile:
    """Profile Parquet files with Dask, one task per row group: equals ``profile_parquet`` exactly."""
    dask = _dask("dask")
    options: dict[str, Any] = {"batch_size": batch_size, "filter": filter, "filter_columns": filter_columns}
    tasks = [dask.delayed(profile_row_groups)(path, [group], spec, **options) for path, group in _row_groups(files)]
    results = dask.compute(*tasks, scheduler=scheduler) if tasks else ()
    return _merge_in_order((part for result in results for part in result), spec)


def profile_parquet_spark(
    files: Sequence[str],
    spec: ProfileSpec,
    *,
    batch_size: int = 65_536,
    filter: pc.Expression | None = None,  # mirrors profile_parquet
    filter_columns: Sequence[str] = (),
    spark: Any = None,
) -> Profile:
    """Profile Parquet files on a SparkSession: one ``mapInPandas`` task per row group, merged in order.

    Executors run ``profile_row_groups`` on their row groups (what ``profile_parquet`` runs: same reads,
    batch slices, filter and sums); the driver merges the row-group profiles in file and row-group order,
    so the result equals ``profile_parquet`` exactly, mean and M2 included, whatever Spark's partitioning.
    Spark's own aggregations are not used: their summation order depends on the partitioning.
    """
    from parity._spark import spark_session

    session = spark or spark_session()
    tasks = [(i, path, group) for i, (path, group) in enumerate(_row_groups(files))]
    if not tasks:
        return Profile.empty(spec)
    options: dict[str, Any] = {"batch_size": batch_size, "filter": filter, "filter_columns": filter_columns}

    def profile_tasks(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            out = []
            for task, path, group in frame.itertuples(index=False):
                (part,) = profile_row_groups(path, [int(group)], spec, **options)
                out.append((int(task), json.dumps(part.to_dict())))
            yield pd.DataFrame(out, columns=["task", "profile"])

    slices = min(len(tasks), session.sparkContext.defaultParallelism * 4)
    task_df = session.createDataFrame(tasks, "task long, path string, group int").repartition(slices)
    rows = task_df.mapInPandas(profile_tasks, schema="task long, profile string").collect()
    # JSON floats round-trip exactly (repr), so the driver merges the executors' very numbers.
    ordered = sorted(rows, key=lambda r: r["task"])
    return _merge_in_order((Profile.from_dict(json.loads(r["profile"])) for r in ordered), spec)
