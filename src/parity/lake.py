"""The prediction lake: every served row, with its raw inputs and outputs, as Parquet files.

:class:`LakeWriter` takes one call per request (``write``) on the serving path, queues it in
memory (bounded: beyond ``max_queue_rows`` rows new records are dropped and counted, never
blocking the request) and a background thread writes the queue out every ``flush_interval_s``
seconds and on :meth:`LakeWriter.close`. A failed write is logged, its rows are counted as
dropped, and serving goes on.

Layout (hive-style partitions)::

    <root>/model=<name>/version=<V>/date=<YYYY-MM-DD>/part-<uuid4 hex>.parquet

``V`` is the registry version (0 for an artifact directory that is not registered) and the date
is the UTC date of ``ts``. A file is written as ``.part-<uuid>.parquet.tmp`` in the same
directory and renamed into place, so readers only ever see complete files (and Parquet readers
skip dot-files). Names are unique per write, so several server processes can share one root.

Schema of every file, one row per predicted row, in this column order:

========================  ===========================  ==========================================
column                    Arrow type                   meaning
========================  ===========================  ==========================================
``ts``                    timestamp[us, tz=UTC]        when the prediction was returned
``model``                 string                       served model name
``model_version``         int64                        registry version (0 = unregistered)
``request_id``            dictionary<int32, string>    X-Request-ID (or generated), per request
``row``                   int32                        0-based position of the row in its request
``latency_ms``            float64                      server time of the whole request
``<input>``               signature type               one column per raw input, named as in the
                                                       signature: FP64 float64, FP32 float32,
                                                       INT64 int64, INT32 int32, BOOL bool,
                                                       BYTES string; missing values are null
                                                       (NaN and MISSING_STRING become null)
``output.<name>``         signature type               one column per declared output
========================  ===========================  ==========================================

An input whose name collides with a metadata column above, or starts with ``output.``, is
stored as ``input.<name>`` instead. Columns named ``lineage.<...>`` are metadata of how a row was
produced (a composition's routes, fallbacks, downstream versions and latencies), not features:
the skew report does not profile them. :func:`read_lake` reads it all back as one Arrow table.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from parity.codec import ARROW_TYPES
from parity.registry import validate_name
from parity.schema import MISSING_STRING, Signature

__all__ = ["LINEAGE_PREFIX", "META_COLUMNS", "OUTPUT_PREFIX", "LakeWriter", "lake_column_name", "read_lake"]

log = logging.getLogger("parity.lake")

OUTPUT_PREFIX = "output."
INPUT_PREFIX = "input."
LINEAGE_PREFIX = "lineage."
META_COLUMNS = ("ts", "model", "model_version", "request_id", "row", "latency_ms")


_META_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("us", tz="UTC")),
        ("model", pa.string()),
        ("model_version", pa.int64()),
        ("request_id", pa.dictionary(pa.int32(), pa.string())),
        ("row", pa.int32()),
        ("latency_ms", pa.float64()),
    ]
)


def lake_column_name(input_name: str) -> str:
    """Return the lake column of a raw input (its own name unless that collides)."""
    if input_name in META_COLUMNS or input_name.startswith((OUTPUT_PREFIX, INPUT_PREFIX)):
        return INPUT_PREFIX + input_name
    return input_name


@dataclass
class _Record:
    model: str
    version: int
    signature: Signature
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]
    request_id: str
    latency_ms: float
    ts: float
    rows: int


def _arrow_column(values: np.ndarray, datatype: str) -> pa.Array:
    """Typed Arrow array of one column, with NaN and MISSING_STRING turned into null."""
    if datatype == "BYTES":
        obj = values.astype(object, copy=False)
        missing = obj == MISSING_STRING
        if missing.any():
            obj = obj.copy()
            obj[missing] = None
        return pa.array(obj, type=pa.string())
    return pa.array(values, type=ARROW_TYPES[datatype], from_pandas=True)


def _table(records: list[_Record]) -> pa.Table:
    """One Arrow table of several records of the same model version."""
    sig = records[0].signature
    counts = np.array([r.rows for r in records])
    total = int(counts.sum())
    ts = np.repeat(np.array([int(r.ts * 1_000_000) for r in records], dtype=np.int64), counts)
    columns: dict[str, pa.Array] = {
        "ts": pa.array(ts, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "model": pa.array([records[0].model] * total, type=pa.string()),
        "model_version": pa.array(np.full(total, records[0].version, dtype=np.int64)),
        # Dictionary-encoded: one copy of each request's id, not one per row.
        "request_id": pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(np.arange(len(records), dtype=np.int32), counts)),
            pa.array([r.request_id for r in records], pa.string()),
        ),
        "row": pa.array(np.concatenate([np.arange(n, dtype=np.int32) for n in counts])),
        "latency_ms": pa.array(np.repeat(np.array([r.latency_ms for r in records], dtype=np.float64), counts)),
    }
    for spec in sig.inputs:
        values = np.concatenate([np.asarray(r.inputs[spec.name]) for r in records])
        columns[lake_column_name(spec.name)] = _arrow_column(values, spec.datatype)
    for out in sig.outputs:
        values = np.concatenate([np.asarray(r.outputs[out.name]) for r in records])
        columns[OUTPUT_PREFIX + out.name] = _arrow_column(values, out.datatype)
    return pa.table(columns)


class LakeWriter:
    """Queue prediction records in memory and write them as Parquet from a background thread."""

    def __init__(
        self, root: str | os.PathLike[str], *, flush_interval_s: float = 2.0, max_queue_rows: int = 100_000
    ) -> None:
        self.root = Path(root).expanduser().absolute()
        self.flush_interval_s = float(flush_interval_s)
        self.max_queue_rows = int(max_queue_rows)
        self._queue: list[_Record] = []
        self._queued_rows = 0
        self._written = 0
        self._dropped = 0
        self._files = 0
        self._closed = False
        self._lock = threading.Lock()  # guards the queue and the counters
        self._write_lock = threading.Lock()  # one flush at a time (background thread or flush())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="parity-lake", daemon=True)
        self._thread.start()

    @property
    def written(self) -> int:
        """Rows written to Parquet files so far."""
        return self._written

    @property
    def dropped(self) -> int:
        """Rows lost: queue full, writer closed, or a failed write."""
        return self._dropped

    @property
    def queued(self) -> int:
        """Rows waiting in memory for the next flush."""
        return self._queued_rows

    def write(
        self,
        *,
        model: str,
        version: int | None,
        signature: Signature,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
        request_id: str,
        latency_ms: float,
        ts: float | None = None,
    ) -> bool:
        """Queue the rows of one request (typed input columns and outputs); False if dropped."""
        validate_name(model)  # the name becomes a directory: "../x" must never leave the root
        first = next(iter(outputs.values()), None)
        rows = len(first) if first is not None else len(next(iter(inputs.values())))
        record = _Record(
            model, int(version or 0), signature, inputs, outputs, request_id, float(latency_ms),
            time.time() if ts is None else ts, rows,
        )  # fmt: skip
        with self._lock:
            if self._closed or self._queued_rows + rows > self.max_queue_rows:
                self._dropped += rows
                return False
            self._queue.append(record)
            self._queued_rows += rows
        return True

    def flush(self) -> None:
        """Write every queued record now."""
        with self._write_lock:
            with self._lock:
                batch, self._queue, self._queued_rows = self._queue, [], 0
            if batch:
                self._write(batch)

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop accepting records, write what is queued and stop the thread (idempotent)."""
        with self._lock:
            self._closed = True
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self.flush()

    def __enter__(self) -> LakeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            try:
                self.flush()
            except Exception:  # the thread must survive anything: serving goes on
                log.exception("prediction lake flush failed")
        self.flush()

    def _write(self, batch: list[_Record]) -> None:
        groups: dict[tuple[str, int, date], list[_Record]] = {}
        for rec in batch:
            day = datetime.fromtimestamp(rec.ts, UTC).date()
            groups.setdefault((rec.model, rec.version, day), []).append(rec)
        for (model, version, day), records in groups.items():
            rows = sum(r.rows for r in records)
            try:
                # Records of one model version normally share a signature; split if they do not.
                by_sig: dict[int, list[_Record]] = {}
                for rec in records:
                    by_sig.setdefault(id(rec.signature), []).append(rec)
                for group in by_sig.values():
                    self._write_file(model, version, day, _table(group))
            except Exception as exc:  # a bad disk or bad data must not stop serving
                with self._lock:
                    self._dropped += rows
                log.error("prediction lake dropped %d row(s) of %s:%s: %s", rows, model, version, exc)
                continue
            with self._lock:
                self._written += rows

    def _write_file(self, model: str, version: int, day: date, table: pa.Table) -> None:
        directory = self.root / f"model={model}" / f"version={version}" / f"date={day.isoformat()}"
        directory.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = directory / f".{name}.tmp"
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, directory / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._files += 1


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # naive datetimes are read as UTC, like the lake's dates


def _partition(path: Path, key: str) -> str:
    return path.name.split("=", 1)[1] if path.name.startswith(key + "=") else ""


def read_lake(
    root: str | os.PathLike[str],
    model: str | None = None,
    version: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pa.Table:
    """Read lake rows (optionally of one model/version, with ``since <= ts < until``) as one table."""
    base = Path(root)
    lo, hi = _utc(since), _utc(until)
    tables: list[pa.Table] = []
    for model_dir in sorted(base.glob("model=*")):
        if model is not None and _partition(model_dir, "model") != model:
            continue
        for version_dir in sorted(model_dir.glob("version=*")):
            if version is not None and _partition(version_dir, "version") != str(version):
                continue
            for date_dir in sorted(version_dir.glob("date=*")):
                try:
                    day = date.fromisoformat(_partition(date_dir, "date"))
                except ValueError:
                    continue
                # Prune whole days outside the window before opening any file.
                if (lo is not None and day < lo.astimezone(UTC).date()) or (
                    hi is not None and day > hi.astimezone(UTC).date()
                ):
                    continue
                tables.extend(pq.read_table(f) for f in sorted(date_dir.glob("part-*.parquet")))
    if not tables:
        return _META_SCHEMA.empty_table()
    table = pa.concat_tables(tables, promote_options="permissive")
    if lo is not None or hi is not None:
        import pyarrow.compute as pc

        mask: Any = None
        if lo is not None:
            mask = pc.greater_equal(table["ts"], pa.scalar(lo, pa.timestamp("us", tz="UTC")))
        if hi is not None:
            upper = pc.less(table["ts"], pa.scalar(hi, pa.timestamp("us", tz="UTC")))
            mask = upper if mask is None else pc.and_(mask, upper)
        table = table.filter(mask)
    return table
