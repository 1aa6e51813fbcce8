"""The prediction lake: every served row, with its raw inputs and outputs, as Parquet files.

:class:`LakeWriter` takes one call per request on the serving path (``await put(...)`` from an
event loop, ``write(...)`` from a thread) and queues the request's typed columns as they are:
no per-row Python. One background thread turns queued requests into Arrow record batches (one
per partition and cycle, whole columns at a time) and writes a Parquet file per partition when
its rows reach ``file_bytes`` or its first row is ``flush_interval_s`` old (rotation by size and
time), and on :meth:`LakeWriter.close`. Encoding and Parquet writing never run on the event loop.

The queue is bounded in rows and bytes (``max_queue_rows``, ``max_queue_bytes``; rows count until
their file is published). ``overflow`` decides what a full queue does: ``block`` (default: the
request waits for room, bounded by its deadline, so an acknowledged row is a logged row),
``shed`` (refuse with :class:`~parity.errors.LakeFullError`) or ``drop`` (count the rows as
dropped, with a rate-limited warning). ``durability="ack"`` acknowledges a request only once its
rows are fsynced in an append-only write-ahead segment (fsyncs are batched: one per thread cycle
for every request queued meanwhile), which the next writer on the same root replays into Parquet
(:mod:`parity.lake._wal`); ``buffered`` (default) loses what was not written yet on ``kill -9``.
A failed write keeps its rows and is retried; readiness reports it (:meth:`LakeWriter.status`).

Layout (hive-style partitions, walked by :func:`partitions`, the one owner of this layout)::

    <root>/model=<name>/version=<V>/date=<YYYY-MM-DD>/part-<uuid4 hex>.parquet

``V`` is the registry version (0 for an artifact directory that is not registered) and the date
is the UTC date of ``ts``. Files are written through a :class:`Publisher` (``stage`` a local
path, ``publish`` it under its key): :class:`LocalPublisher` writes ``.part-<id>.parquet.tmp`` in
the target directory, fsyncs and renames it, so readers only see complete files; an object-store
publisher plugs in the same way. Names are unique per file, so several processes share a root.
Text columns, ``request_id`` and ``model_version`` are dictionary-encoded in the Parquet files;
only ``ts`` carries min/max statistics (for engines that prune row groups by time).

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

from parity.lake._layout import (
    LocalPublisher,
    Partition,
    Publisher,
    check_writable,
    partition_key,
    partitions,
    read_lake,
)
from parity.lake._writer import (
    DURABILITY,
    LINEAGE_PREFIX,
    META_COLUMNS,
    OUTPUT_PREFIX,
    OVERFLOW,
    LakeWriter,
    lake_column_name,
    lake_schema,
)

__all__ = [
    "DURABILITY",
    "LINEAGE_PREFIX",
    "META_COLUMNS",
    "OUTPUT_PREFIX",
    "OVERFLOW",
    "LakeWriter",
    "LocalPublisher",
    "Partition",
    "Publisher",
    "check_writable",
    "lake_column_name",
    "lake_schema",
    "partition_key",
    "partitions",
    "read_lake",
]
