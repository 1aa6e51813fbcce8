"""Backend-neutral partition profiling, a Dask backend, and a pyspark ``mapInPandas`` adapter.

Every backend profiles each partition on its own, in ``batch_size`` slices exactly as ``profile_parquet``
treats a row group, and merges the partition profiles in order with ``Profile.merge``. With one partition per
Parquet row group the result therefore equals ``profile_parquet`` bit for bit (the tests check it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from parity.errors import MissingDependencyError
from parity.profile import CategoricalSpec, Profile, ProfileSpec

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


def _dask() -> Any:
    try:
        import dask.dataframe as dd
    except ImportError as e:
        raise MissingDependencyError(
            "the Dask backend needs dask: pip install 'dask[dataframe]' (or use the default pyarrow backend)"
        ) from e
    return dd


def profile_dask(ddf: Any, spec: ProfileSpec, batch_size: int = 65_536) -> Profile:
    """Profile a Dask DataFrame: ``map_partitions`` builds one profile per partition, merged in order."""
    _dask()

    def one(df: pd.DataFrame) -> pd.DataFrame:
        text = json.dumps(profile_partition(df, spec, batch_size).to_dict())
        return pd.DataFrame({"profile": pd.Series([text], dtype=object)})

    meta = pd.DataFrame({"profile": pd.Series([], dtype=object)})
    parts = ddf.map_partitions(one, meta=meta).compute()
    return merge_profile_rows(parts["profile"].tolist()) if len(parts) else Profile.empty(spec)


def _read_row_group(task: tuple[str, int, list[str], list[str], Any]) -> pd.DataFrame:
    """Read one row group (optionally filtered) as pandas: one Dask partition."""
    path, group, columns, cats, filt = task
    # Strings stay dictionary-encoded (pandas categoricals), as profile_parquet reads them.
    with pq.ParquetFile(path, pre_buffer=False, read_dictionary=cats) as pf:
        table = pf.read_row_group(group, columns=columns)
    if filt is not None:
        table = table.filter(filt)
    return table.to_pandas()


def profile_parquet_dask(
    files: Sequence[str],
    spec: ProfileSpec,
    *,
    batch_size: int = 65_536,
    filter: pc.Expression | None = None,  # mirrors profile_parquet
    filter_columns: Sequence[str] = (),
    scheduler: str | None = None,
) -> Profile:
    """Profile Parquet files with Dask, one partition per row group: equals ``profile_parquet`` exactly."""
    dd = _dask()
    columns = list(spec.columns) + [c for c in filter_columns if c not in spec.columns]
    cats = [n for n, s in spec.columns.items() if isinstance(s, CategoricalSpec)]
    tasks = []
    for f in files:
        with pq.ParquetFile(f) as pf:
            tasks += [(f, g, columns, cats, filter) for g in range(pf.metadata.num_row_groups)]
    if not tasks:
        return Profile.empty(spec)
    ddf = dd.from_map(_read_row_group, tasks)
    if scheduler is None:
        return profile_dask(ddf, spec, batch_size)
    import dask

    with dask.config.set(scheduler=scheduler):
        return profile_dask(ddf, spec, batch_size)


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

    Executors read their row groups with pyarrow (as ``profile_parquet`` does, dictionary-encoded
    strings included) and profile them; the driver merges the partition profiles in file and row-group
    order, so the result equals ``profile_parquet`` exactly, whatever Spark's partitioning.
    """
    from parity._spark import spark_session

    session = spark or spark_session()
    columns = list(spec.columns) + [c for c in filter_columns if c not in spec.columns]
    cats = [n for n, s in spec.columns.items() if isinstance(s, CategoricalSpec)]
    tasks: list[tuple[int, str, int]] = []
    for f in files:
        with pq.ParquetFile(f) as pf:
            tasks += [(len(tasks), str(f), g) for g in range(pf.metadata.num_row_groups)]
    if not tasks:
        return Profile.empty(spec)

    def profile_tasks(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            out = []
            for task, path, group in frame.itertuples(index=False):
                part = _read_row_group((path, int(group), columns, cats, filter))
                out.append((int(task), json.dumps(profile_partition(part, spec, batch_size).to_dict())))
            yield pd.DataFrame(out, columns=["task", "profile"])

    slices = min(len(tasks), session.sparkContext.defaultParallelism * 4)
    task_df = session.createDataFrame(tasks, "task long, path string, group int").repartition(slices)
    rows = task_df.mapInPandas(profile_tasks, schema="task long, profile string").collect()
    return merge_profile_rows(r["profile"] for r in sorted(rows, key=lambda r: r["task"]))
