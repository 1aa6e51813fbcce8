"""Join serving rows with an offline copy of the same entities by an id column; per-feature mismatch rates.

Both sides are streamed in record batches. When together they exceed ``bucket_rows`` they are first
hash-partitioned by key into temporary Parquet buckets, so each join holds one bucket in memory at a time.
Offline duplicates of a key keep their first row (and are counted); serving rows without a match are counted.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from parity.skew._data import TS, Expected, Source, _csv_convert, _group, _us, open_source, type_class
from parity.skew._errors import SkewDataError
from parity.skew._replay import MAX_EXAMPLES, json_value
from parity.skew._report import JoinFeature, JoinReport, Metric
from parity.skew._thresholds import FeatureRules

__all__ = ["REL_TOL", "join_report"]

REL_TOL = 1e-9
BUCKET_ROWS = 1_000_000
_OFF = "offline."


def _stream(
    src: Source, columns: list[str], batch_size: int, window: tuple[int | None, int | None]
) -> Iterator[pa.Table]:
    """Yield the given columns of every file, batch by batch, within the time window when ``ts`` exists."""
    lo, hi = window
    for path in src.files:
        names = src.schemas[path].names
        read = list(dict.fromkeys([c for c in columns if c in names] + ([TS] if TS in names and (lo or hi) else [])))
        try:
            if src.kind == "csv":
                forced = {
                    c: pa.string() for c in read if c != TS and type_class(src.schemas[path].field(c).type) == "string"
                }
                batches: Any = pacsv.open_csv(path, convert_options=_csv_convert(forced, read))
            else:
                batches = pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=batch_size, columns=read)
            for batch in batches:
                parts = _group(batch, lo, hi, None) if TS in read else [(0, batch)]
                for _, rows in parts:
                    if rows.num_rows:
                        yield pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
        except (OSError, pa.ArrowInvalid) as e:
            raise SkewDataError(f"`offline`: cannot read {path}: {e}") from e


def _bucket_of(keys: pa.ChunkedArray | pa.Array, buckets: int) -> np.ndarray:
    """Return a stable bucket number per key (hash of its string form)."""
    values = pc.cast(keys, pa.large_string()).to_numpy(zero_copy_only=False)
    return (pd.util.hash_array(values.astype(object)) % np.uint64(buckets)).astype(np.int64)


def _partition(tables: Iterable[pa.Table], key: str, buckets: int, where: Path, side: str) -> list[Path]:
    """Write every batch's rows into per-bucket Parquet files; return the bucket paths."""
    writers: dict[int, pq.ParquetWriter] = {}
    paths = [where / f"{side}-{b}.parquet" for b in range(buckets)]
    try:
        for table in tables:
            b = _bucket_of(table.column(key), buckets)
            for k in np.unique(b):
                part = table.filter(pa.array(b == k))
                if int(k) not in writers:
                    writers[int(k)] = pq.ParquetWriter(paths[int(k)], part.schema)
                writers[int(k)].write_table(part.cast(writers[int(k)].schema))
    finally:
        for w in writers.values():
            w.close()
    return paths


@dataclass
class _Acc:
    """Running counts of one feature."""

    compared: int = 0
    mismatched: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


def _mismatch(a: pa.ChunkedArray, b: pa.ChunkedArray) -> np.ndarray:
    """Per row: True where serving and offline values differ (numbers within 1e-9 relative, both null = match)."""
    ta, tb = type_class(a.type), type_class(b.type)
    if ta in ("numeric", "null") and tb in ("numeric", "null") and "numeric" in (ta, tb):
        x = pc.cast(a, pa.float64()).to_numpy(zero_copy_only=False)
        y = pc.cast(b, pa.float64()).to_numpy(zero_copy_only=False)
        nx, ny = np.isnan(x), np.isnan(y)
        with np.errstate(invalid="ignore"):
            close = (x == y) | (np.abs(x - y) <= REL_TOL * np.maximum(np.abs(x), np.abs(y)))
        return np.asarray(np.where(nx | ny, nx != ny, ~close))
    if ta != tb and "null" not in (ta, tb):
        a, b = pc.cast(a, pa.large_string()), pc.cast(b, pa.large_string())
    va, vb = a.is_valid().to_numpy(zero_copy_only=False), b.is_valid().to_numpy(zero_copy_only=False)
    if ta == "null" or tb == "null":
        return np.asarray(va | vb)
    eq = pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)
    return np.asarray(np.where(va & vb, ~eq, va != vb))


def _join_bucket(
    serving: pa.Table, offline: pa.Table, key: str, pairs: list[tuple[str, str, str]], accs: dict[str, _Acc]
) -> tuple[int, int]:
    """Join one bucket; update the accumulators; return (matched serving rows, duplicate offline keys)."""
    serving = serving.filter(pc.is_valid(serving.column(key)))
    offline = offline.filter(pc.is_valid(offline.column(key)))
    if offline.num_rows == 0 or serving.num_rows == 0:
        return 0, 0
    # Offline duplicates: keep each key's first row, so the join is one serving row to at most one offline row.
    offline = offline.append_column("__i", pa.array(np.arange(offline.num_rows)))
    first = offline.group_by(key).aggregate([("__i", "min")]).column("__i_min")
    dups = offline.num_rows - len(first)
    offline = offline.take(first).drop_columns(["__i"])
    offline = offline.rename_columns([c if c == key else _OFF + c for c in offline.column_names])
    if serving.column(key).type != offline.column(key).type:
        serving = serving.set_column(
            serving.schema.get_field_index(key), key, pc.cast(serving.column(key), pa.large_string())
        )
        offline = offline.set_column(
            offline.schema.get_field_index(key), key, pc.cast(offline.column(key), pa.large_string())
        )
    joined = serving.join(offline, keys=key, join_type="inner", use_threads=False)
    for feature, s_col, o_col in pairs:
        bad = _mismatch(joined.column(s_col), joined.column(_OFF + o_col))
        acc = accs[feature]
        acc.compared += joined.num_rows
        acc.mismatched += int(bad.sum())
        for i in np.flatnonzero(bad)[: max(MAX_EXAMPLES - len(acc.examples), 0)]:
            acc.examples.append(
                {
                    "key": json_value(joined.column(key)[int(i)].as_py()),
                    "serving": json_value(joined.column(s_col)[int(i)].as_py()),
                    "offline": json_value(joined.column(_OFF + o_col)[int(i)].as_py()),
                }
            )
    return joined.num_rows, dups


def join_report(
    src: Source,
    inputs: Sequence[Expected],
    key: str,
    offline_path: str | os.PathLike[str],
    rules: dict[str, FeatureRules],
    *,
    since: datetime | None,
    until: datetime | None,
    batch_size: int,
    bucket_rows: int = BUCKET_ROWS,
) -> JoinReport:
    """Join serving rows (in the window) with the offline copy by ``key`` and compare every shared input."""
    off = open_source(offline_path, model=None, text_columns=[c.feature for c in inputs if c.expect == "string"])
    report = JoinReport(key, str(offline_path))
    for side, s in (("serving data", src), ("offline data", off)):
        if s.files and not all(key in s.schemas[f].names for f in s.files):
            raise SkewDataError(f"`join` {key!r}: the {side} ({s.path}) has no column {key!r} in every file")
    pairs = [
        (c.feature, c.data, c.feature)
        for c in inputs
        if c.role == "input" and src.files and off.files
        and all(c.data in src.schemas[f].names for f in src.files)
        and all(c.feature in off.schemas[f].names for f in off.files)
    ]  # fmt: skip
    skipped = [c.feature for c in inputs if c.role == "input" and c.feature not in {p[0] for p in pairs}]
    if skipped:
        report.notes.append(f"not compared (missing on one side): {skipped}")
    window = (_us(since), _us(until))
    s_cols, o_cols = [key, *(p[1] for p in pairs)], [key, *(p[2] for p in pairs)]
    accs = {p[0]: _Acc() for p in pairs}
    total = (src.rows or 0) + (off.rows or 0)
    if src.rows is not None and off.rows is not None and total <= bucket_rows:
        serving = _concat(_stream(src, s_cols, batch_size, window))
        offline = _concat(_stream(off, o_cols, batch_size, (None, None)))
        report.serving_rows, report.offline_rows = serving.num_rows, offline.num_rows
        if serving.num_rows and offline.num_rows:
            report.matched, report.duplicate_offline_keys = _join_bucket(serving, offline, key, pairs, accs)
    else:
        buckets = max(2, math.ceil(max(total, 1) / bucket_rows))
        with tempfile.TemporaryDirectory(prefix="parity-join-") as tmp:
            counted = _Counted(_stream(src, s_cols, batch_size, window))
            s_paths = _partition(counted, key, buckets, Path(tmp), "serving")
            o_counted = _Counted(_stream(off, o_cols, batch_size, (None, None)))
            o_paths = _partition(o_counted, key, buckets, Path(tmp), "offline")
            report.serving_rows, report.offline_rows = counted.rows, o_counted.rows
            for sp, op in zip(s_paths, o_paths, strict=True):
                if sp.exists() and op.exists():
                    m, d = _join_bucket(pq.read_table(sp), pq.read_table(op), key, pairs, accs)
                    report.matched += m
                    report.duplicate_offline_keys += d
    for feature, _, _ in pairs:
        acc, rule = accs[feature], rules[feature]
        rate = acc.mismatched / acc.compared if acc.compared else None
        level = rule.levels.get("join_mismatch")
        metric = Metric("join_mismatch", rate, rate, 0.0, None, None)
        if level is None or rule.ignore:
            metric.status = "not_judged"
        elif rate is None:
            metric.status, metric.note = "unavailable", "no joined rows"
        else:
            metric.warn, metric.alert, metric.severity = level.warn, level.alert, level.judge(rate)
        report.features.append(
            JoinFeature(feature, acc.compared, acc.mismatched, metric.severity, metric, acc.examples)
        )
    report.features.sort(key=lambda f: (-(f.rate or 0.0), f.name))
    report.severity = max((f.severity for f in report.features), key=("ok", "warn", "alert").index, default="ok")
    if report.serving_rows and not report.matched:
        report.notes.append(f"no serving row matched an offline row by {key!r}")
    return report


class _Counted:
    """Iterator wrapper that counts the rows passing through."""

    def __init__(self, it: Iterator[pa.Table]) -> None:
        self.it, self.rows = it, 0

    def __iter__(self) -> Iterator[pa.Table]:
        for t in self.it:
            self.rows += t.num_rows
            yield t


def _concat(tables: Iterator[pa.Table]) -> pa.Table:
    parts = list(tables)
    if not parts:
        return pa.table({})
    return pa.concat_tables(parts, promote_options="permissive")
