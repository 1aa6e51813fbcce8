"""Serving data sources (lake, Parquet, CSV), their schema check, and streaming (windowed) profiling."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from parity._fs import filesystem, is_remote, mirror
from parity.errors import SchemaError
from parity.lake import LINEAGE_PREFIX, META_COLUMNS, OUTPUT_PREFIX, partitions
from parity.profile import (
    BooleanSpec,
    CategoricalSpec,
    ColumnSpec,
    NumericSpec,
    Profile,
    ProfileSpec,
    profile_parquet,
)
from parity.skew._errors import SkewDataError

__all__ = [
    "BY_SECONDS",
    "Expected",
    "SchemaProblem",
    "Source",
    "TypeClass",
    "auto_processes",
    "check_schema",
    "open_source",
    "parse_time",
    "profile_source",
    "type_class",
]

SourceKind: TypeAlias = Literal["lake", "parquet", "csv", "profile"]
TypeClass: TypeAlias = Literal["numeric", "string", "bool", "timestamp", "null", "other"]
BY_SECONDS = {"day": 86_400, "hour": 3_600}
TS = "ts"
_US = pa.timestamp("us", tz="UTC")
SMALL_ROWS = 1_000_000
"""Below this many rows profiling stays in one process: spawning a worker (it imports parity) costs ~1 s."""


def parse_time(value: str | datetime | None, what: str) -> datetime | None:
    """Parse an ISO time (naive means UTC; a bare date is its midnight) into an aware datetime."""
    if value is None or isinstance(value, datetime):
        t = value
    else:
        try:
            t = datetime.fromisoformat(value.strip())
        except ValueError:
            raise SkewDataError(
                f"{what}: {value!r} is not an ISO time; use e.g. 2024-06-01 or 2024-06-01T12:00:00Z"
            ) from None
    if t is not None and t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t


def type_class(t: pa.DataType) -> TypeClass:
    """Group an Arrow type into the classes a signature distinguishes."""
    t = t.value_type if pa.types.is_dictionary(t) else t
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    return "timestamp" if pa.types.is_timestamp(t) else "other"


@dataclass(frozen=True)
class Expected:
    """One column the reference expects: report name, name in the data, role, binning and type class."""

    feature: str
    data: str
    role: Literal["input", "output"]
    spec: ColumnSpec
    expect: TypeClass
    declared: str

    @property
    def kind(self) -> Literal["numeric", "categorical", "boolean"]:
        """Profile kind of the column."""
        if isinstance(self.spec, NumericSpec):
            return "numeric"
        return "boolean" if isinstance(self.spec, BooleanSpec) else "categorical"


@dataclass(frozen=True)
class SchemaProblem:
    """A missing column, an unexpected column, or a column whose type differs from the reference."""

    kind: Literal["missing_column", "new_column", "type_change"]
    column: str
    message: str
    files: int

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"kind": self.kind, "column": self.column, "message": self.message, "files": self.files}


@dataclass
class Source:
    """Resolved serving data: its kind, files, per-file schemas and (lake) versions."""

    path: Path
    kind: SourceKind
    files: list[str]
    schemas: dict[str, pa.Schema]
    rows: int | None
    versions: dict[str, int] = field(default_factory=dict)
    row_groups: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> set[str]:
        """Every column name found in any file."""
        return {n for s in self.schemas.values() for n in s.names}

    def has(self, column: str) -> bool:
        """Return whether any file holds ``column``."""
        return any(column in s.names for s in self.schemas.values())


def _lake_files(root: Path, model: str | None, since: datetime | None, until: datetime | None) -> dict[str, int]:
    """Return the lake's part files of ``model`` (all models when None) within the window, with their version."""
    return {str(f): p.version for p in partitions(root, model, None, since, until) for f in p.files}


def _footer(path: str) -> pq.FileMetaData:
    try:
        return pq.read_metadata(path)
    except (OSError, pa.ArrowException) as e:
        raise SkewDataError(f"cannot read Parquet file {path}: {e}; remove or rewrite the file") from e


def _csv_schema(path: str, forced: dict[str, pa.DataType]) -> pa.Schema:
    try:
        with pacsv.open_csv(path, convert_options=_csv_convert(forced, None)) as reader:
            return reader.schema
    except (OSError, pa.ArrowException) as e:
        raise SkewDataError(f"cannot read CSV file {path}: {e}") from e


def _csv_convert(forced: dict[str, pa.DataType], include: list[str] | None) -> pacsv.ConvertOptions:
    # An empty cell is null in any column (CSV has no other way to say it); a quoted "" stays an empty string.
    return pacsv.ConvertOptions(
        column_types=forced,
        include_columns=include,
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )


def _local(path: str | os.PathLike[str], model: str | None) -> Path:
    """``path`` itself, or the local mirror of an object-storage location."""
    if not is_remote(path):
        return Path(path)
    try:
        fs, base = filesystem(path)
        lake = model is not None and fs.isdir(base) and fs.exists(f"{base}/model={model}")
        return mirror(path, under=f"model={model}" if lake else None)
    except FileNotFoundError as exc:
        raise SkewDataError(
            f"serving data {str(path)!r} does not exist; pass a lake root, Parquet or CSV path"
        ) from exc
    except OSError as exc:
        raise SkewDataError(f"cannot read serving data {str(path)!r}: {exc}") from exc


def open_source(
    path: str | os.PathLike[str],
    *,
    model: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    model_version: int | None = None,
    text_columns: Sequence[str] = (),
) -> Source:
    """Resolve ``path``: a lake root (only ``model``'s partitions), a Parquet directory or file, or CSV.

    An ``s3://`` location is mirrored into the local cache first (only ``model``'s partitions of a lake).
    """
    root = _local(path, model)
    if not root.exists():
        raise SkewDataError(f"serving data {str(root)!r} does not exist; pass a lake root, Parquet or CSV path")
    forced = {c: pa.string() for c in text_columns}
    if root.is_dir() and any(p.is_dir() for p in root.glob("model=*")):
        versions = _lake_files(root, model, since, until)
        if model_version is not None:
            versions = {f: v for f, v in versions.items() if v == model_version}
        src = Source(root, "lake", list(versions), {}, 0, versions)
        if not versions:
            present = sorted(p.name.split("=", 1)[1] for p in root.glob("model=*"))
            src.notes.append(
                f"the lake holds no partition of model {model!r}"
                + (f" version {model_version}" if model_version is not None else "")
                + f" in the window (models present: {present})"
            )
    elif root.is_dir():
        files = sorted(str(p) for p in root.rglob("*.parquet") if p.is_file() and not p.name.startswith("."))
        if files:
            src = Source(root, "parquet", files, {}, 0)
        else:
            csvs = sorted(str(p) for p in root.rglob("*.csv") if p.is_file())
            if not csvs:
                raise SkewDataError(f"no Parquet or CSV files found under {root}")
            src = Source(root, "csv", csvs, {}, None)
    else:
        kind: SourceKind = "csv" if root.suffix.lower() in (".csv", ".tsv") else "parquet"
        src = Source(root, kind, [str(root)], {}, 0 if kind == "parquet" else None)
    for f in src.files:
        if src.kind == "csv":
            src.schemas[f] = _csv_schema(f, forced)
        else:
            meta = _footer(f)
            src.schemas[f] = meta.schema.to_arrow_schema()
            src.rows = (src.rows or 0) + meta.num_rows
            src.row_groups[f] = meta.num_row_groups
    return src


def check_schema(
    src: Source, expected: Sequence[Expected], *, ignore: Sequence[str] = (), outputs_optional: bool
) -> tuple[list[Expected], list[SchemaProblem]]:
    """Return the expected columns safe to profile, and the schema problems found in the files."""
    problems: list[SchemaProblem] = []
    usable: list[Expected] = []
    n = len(src.files)
    any_output = any(c.startswith(OUTPUT_PREFIX) for c in src.columns)
    for col in expected:
        if col.role == "output" and outputs_optional and not any_output:
            continue  # plain data without predictions: outputs are not compared, which is no schema problem
        missing = [f for f in src.files if col.data not in src.schemas[f].names]
        if missing:
            problems.append(
                SchemaProblem(
                    "missing_column",
                    col.feature,
                    f"column {col.data!r} ({col.declared}) is missing from {len(missing)} of {n} file(s), "
                    f"e.g. {missing[0]}",
                    len(missing),
                )
            )
            continue
        wrong: dict[str, pa.DataType] = {}
        for f in src.files:
            t = src.schemas[f].field(col.data).type
            if type_class(t) not in (col.expect, "null"):
                wrong[f] = t
        if wrong:
            f0 = next(iter(wrong))
            problems.append(
                SchemaProblem(
                    "type_change",
                    col.feature,
                    f"column {col.data!r}: expected {col.declared} ({col.expect}), received {wrong[f0]} "
                    f"in {len(wrong)} of {n} file(s), e.g. {f0}",
                    len(wrong),
                )
            )
            continue
        usable.append(col)
    known = {c.data for c in expected} | set(META_COLUMNS) | set(ignore)
    # lineage.* columns describe how a row was produced (composition routes, latencies), not features.
    for name in sorted(n for n in src.columns - known if not n.startswith(LINEAGE_PREFIX)):
        files = sum(1 for f in src.files if name in src.schemas[f].names)
        t = next(src.schemas[f].field(name).type for f in src.files if name in src.schemas[f].names)
        problems.append(
            SchemaProblem(
                "new_column",
                name,
                f"column {name!r} ({t}) is not in the reference (in {files} of {n} file(s)); list it under "
                "[schema] ignore_columns in the thresholds file if it is expected",
                files,
            )
        )
    return usable, problems


def auto_processes(requested: int | None, src: Source) -> int:
    """Return the worker count: as requested, else min(work units, cores), or 1 for small data."""
    if requested is not None:
        return max(1, requested)
    if src.kind == "csv" or src.rows is None or src.rows < SMALL_ROWS:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # A single large file still splits across workers by row group.
    units = len(src.files) if len(src.files) >= cores else sum(src.row_groups.values())
    return max(1, min(units, cores))


def _window_filter(since: datetime | None, until: datetime | None) -> pc.Expression | None:
    """Return the ``since <= ts < until`` expression (``ts`` cast to UTC microseconds), or None."""
    expr: pc.Expression | None = None
    ts = pc.field(TS).cast(_US)
    if since is not None:
        expr = ts >= pa.scalar(since, _US)
    if until is not None:
        upper = ts < pa.scalar(until, _US)
        expr = upper if expr is None else expr & upper
    return expr


def _micros(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    """Return the ``ts`` column as int64 UTC microseconds (nulls as int64 min, outside every window)."""
    ts = pc.cast(batch.column(TS), _US).cast(pa.int64())
    return np.asarray(pc.fill_null(ts, np.iinfo(np.int64).min).to_numpy(zero_copy_only=False))


def _group(
    batch: pa.RecordBatch | pa.Table, lo: int | None, hi: int | None, step: int | None
) -> list[tuple[int, pa.RecordBatch | pa.Table]]:
    """Split one batch into (window key, rows) after the time filter; key 0 when not windowed."""
    if lo is None and hi is None and step is None:
        return [(0, batch)]
    us = _micros(batch)
    keep = us > np.iinfo(np.int64).min
    if lo is not None:
        keep &= us >= lo
    if hi is not None:
        keep &= us < hi
    if step is None:
        return [(0, batch if keep.all() else batch.filter(pa.array(keep)))]
    keys = np.floor_divide(us, step)
    found = np.unique(keys[keep])
    if found.size == 1 and keep.all():
        return [(int(found[0]), batch)]  # the common case: a lake file holds one day
    return [(int(k), batch.filter(pa.array(keep & (keys == k)))) for k in found]


def _window_task(
    path: str,
    kind: SourceKind,
    groups: list[int] | None,
    spec: ProfileSpec,
    read: list[str],
    forced: dict[str, pa.DataType],
    batch_size: int,
    window: tuple[int | None, int | None, int | None],
) -> dict[int, Profile]:
    """Profile one file (or some of its row groups) into one profile per time window, streaming batches."""
    out: dict[int, Profile] = {}
    lo, hi, step = window

    def add(batch: pa.RecordBatch | pa.Table) -> None:
        for key, rows in _group(batch, lo, hi, step):
            if rows.num_rows:
                out.setdefault(key, Profile.empty(spec)).update(rows)

    if kind == "csv":
        opts = pacsv.ReadOptions(block_size=1 << 22)
        try:
            with pacsv.open_csv(path, read_options=opts, convert_options=_csv_convert(forced, read)) as reader:
                for batch in reader:
                    add(batch)
        except pa.ArrowInvalid as e:
            raise SchemaError(
                f"CSV file {path} cannot be read with consistent column types: {e}; a column changes type "
                "part-way through the file (e.g. text in a numeric column): fix it upstream or convert to Parquet"
            ) from e
        except OSError as e:
            raise SkewDataError(f"cannot read CSV file {path}: {e}") from e
        return out
    cats = [n for n, s in spec.columns.items() if isinstance(s, CategoricalSpec)]
    try:
        with pq.ParquetFile(path, pre_buffer=False, read_dictionary=cats) as pf:
            for batch in pf.iter_batches(batch_size=batch_size, row_groups=groups, columns=read):
                add(batch)
    except (OSError, pa.ArrowInvalid) as e:
        raise SkewDataError(f"cannot read Parquet file {path}: {e}") from e
    return out


def _init_worker() -> None:
    """Keep BLAS single-threaded in workers: the pool already uses every core it is given."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"


def _run_windows(tasks: list[tuple[Any, ...]], processes: int) -> dict[int, Profile]:
    """Run window tasks in order (or in a spawned pool) and merge their profiles per window."""
    merged: dict[int, Profile] = {}

    def fold(parts: dict[int, Profile]) -> None:
        for key, prof in parts.items():
            merged[key] = merged[key].merge(prof) if key in merged else prof

    if processes <= 1 or len(tasks) <= 1:
        for task in tasks:
            fold(_window_task(*task))
        return merged
    old = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # the spawned child loads numpy before its initializer runs
    pool = ProcessPoolExecutor(min(processes, len(tasks)), multiprocessing.get_context("spawn"), _init_worker)
    try:
        futures = [pool.submit(_window_task, *task) for task in tasks]
        for future in futures:
            fold(future.result())
    except BrokenProcessPool as e:
        raise SkewDataError(
            "a profiling worker process died; a script calling skew_report with processes > 1 must guard its "
            "entry point with `if __name__ == '__main__':` (workers are spawned)"
        ) from e
    finally:
        if old is None:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = old
        pool.shutdown(wait=True, cancel_futures=True)
    return merged


def profile_source(
    src: Source,
    columns: Sequence[Expected],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by: Literal["day", "hour"] | None = None,
    processes: int = 1,
    batch_size: int = 65_536,
    backend: Literal["pyarrow", "dask", "spark"] = "pyarrow",
) -> tuple[Profile, dict[datetime, Profile]]:
    """Profile the source's files under the reference binning: the whole window, and per ``by`` window."""
    spec = ProfileSpec({c.data: c.spec for c in columns})
    windowed = since is not None or until is not None or by is not None
    if windowed:
        bad = [f for f in src.files if TS not in src.schemas[f].names or type_class(src.schemas[f].field(TS).type)
               not in ("timestamp", "null")]  # fmt: skip
        if bad:
            got = src.schemas[bad[0]].field(TS).type if TS in src.schemas[bad[0]].names else "no such column"
            raise SkewDataError(
                f"`since`/`until`/`by` need a timestamp column {TS!r} in every file; {bad[0]} has {got}"
            )
    empty = Profile.empty(spec)
    if not src.files:
        return empty, {}
    if src.kind in ("parquet", "lake") and by is None:
        filt = _window_filter(since, until)
        cols = [TS] if filt is not None else []
        if backend == "dask":
            from parity.skew._backends import profile_parquet_dask

            return profile_parquet_dask(src.files, spec, batch_size=batch_size, filter=filt, filter_columns=cols), {}
        if backend == "spark":
            from parity.skew._backends import profile_parquet_spark

            return profile_parquet_spark(src.files, spec, batch_size=batch_size, filter=filt, filter_columns=cols), {}
        prof = profile_parquet(
            src.files, spec, batch_size=batch_size, processes=processes, filter=filt, filter_columns=cols
        )
        return prof, {}
    read = list(spec.columns) + ([TS] if windowed and TS not in spec.columns else [])
    forced = {c.data: pa.string() for c in columns if c.expect == "string"}
    step = BY_SECONDS[by] * 1_000_000 if by else None
    window = (_us(since), _us(until), step)
    tasks: list[tuple[Any, ...]] = []
    for f in src.files:
        groups = src.row_groups.get(f, 1)
        split = processes if processes > len(src.files) and src.kind != "csv" else 1
        parts = np.array_split(np.arange(groups), split) if src.kind != "csv" else [None]
        for part in parts:
            if part is None or len(part):
                rg = None if part is None else [int(g) for g in part]
                tasks.append((f, src.kind, rg, spec, read, forced, batch_size, window))
    by_key = _run_windows(tasks, processes)
    total = empty
    windows: dict[datetime, Profile] = {}
    for key in sorted(by_key):
        total = total.merge(by_key[key])
        if step is not None:
            windows[datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=key * step)] = by_key[key]
    return total, windows


def _us(t: datetime | None) -> int | None:
    """Return an aware datetime as integer microseconds since the epoch."""
    if t is None:
        return None
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
