"""The lake writer: a bounded queue of request batches, turned into Arrow and Parquet by one thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parity._ratelog import RateLimitedLog
from parity.codec import ARROW_TYPES
from parity.errors import LakeError, LakeFullError
from parity.lake._layout import (
    LocalPublisher,
    Publisher,
    check_writable,
    new_file_name,
    partition_key,
    write_parquet,
)
from parity.lake._wal import Wal, WalSegment, recover
from parity.schema import MISSING_STRING, Signature

__all__ = [
    "DURABILITY",
    "LINEAGE_PREFIX",
    "META_COLUMNS",
    "OUTPUT_PREFIX",
    "OVERFLOW",
    "LakeWriter",
    "lake_column_name",
    "lake_schema",
]

log = logging.getLogger("parity.lake")

OUTPUT_PREFIX = "output."
INPUT_PREFIX = "input."
LINEAGE_PREFIX = "lineage."
META_COLUMNS = ("ts", "model", "model_version", "request_id", "row", "latency_ms")
OVERFLOW = ("block", "shed", "drop")
DURABILITY = ("buffered", "ack")
Overflow = Literal["block", "shed", "drop"]
Durability = Literal["buffered", "ack"]

_TS = pa.timestamp("us", tz="UTC")
_OBJECT_BYTES = 48  # estimated bytes of one str of an object column (pointer + short text)
_WAKE_ROWS = 8_192  # the thread starts a cycle early once this many rows wait
_ABSORB_S = 0.05  # queued rows are encoded at least this often: small steps, no long GIL holds
_RETRY_S = 1.0  # pause after a failed write before trying again


def lake_column_name(input_name: str) -> str:
    """Return the lake column of a raw input (its own name unless that collides)."""
    if input_name in META_COLUMNS or input_name.startswith((OUTPUT_PREFIX, INPUT_PREFIX)):
        return INPUT_PREFIX + input_name
    return input_name


def lake_schema(signature: Signature) -> pa.Schema:
    """The Arrow schema of the lake files of a model with ``signature``."""
    fields = [
        pa.field("ts", _TS),
        pa.field("model", pa.string()),
        pa.field("model_version", pa.int64()),
        pa.field("request_id", pa.dictionary(pa.int32(), pa.string())),
        pa.field("row", pa.int32()),
        pa.field("latency_ms", pa.float64()),
    ]
    fields += [pa.field(lake_column_name(s.name), ARROW_TYPES[s.datatype]) for s in signature.inputs]
    fields += [pa.field(OUTPUT_PREFIX + o.name, ARROW_TYPES[o.datatype]) for o in signature.outputs]
    return pa.schema(fields)


def _estimate_bytes(columns: Mapping[str, np.ndarray]) -> int:
    return sum(a.size * _OBJECT_BYTES if a.dtype == object else a.nbytes for a in columns.values())


@dataclass(slots=True)
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
    nbytes: int
    key: str
    done: Callable[[BaseException | None], None] | None = None


@dataclass
class _File:
    """Rows of one future Parquet file, kept (and counted against the queue bound) until published."""

    key: str
    schema: pa.Schema
    opened: float
    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0
    arrow_bytes: int = 0
    wal: WalSegment | None = None


def _arrow_column(values: np.ndarray, datatype: str) -> pa.Array:
    """Typed Arrow array of one column, with NaN and MISSING_STRING turned into null (vectorised)."""
    if datatype == "BYTES":
        arr = pa.array(values, type=pa.string(), from_pandas=True)
        missing = pc.equal(arr, MISSING_STRING)
        if pc.any(missing).as_py():
            arr = pc.if_else(missing, pa.scalar(None, pa.string()), arr)
        return arr
    return pa.array(values, type=ARROW_TYPES[datatype], from_pandas=True)


def _record_batch(records: list[_Record], schema: pa.Schema) -> pa.RecordBatch:
    """One Arrow record batch of several requests of one partition: whole columns, no per-row Python."""
    sig = records[0].signature
    counts = np.fromiter((r.rows for r in records), dtype=np.int64, count=len(records))
    total = int(counts.sum())
    stamps = np.fromiter((int(r.ts * 1_000_000) for r in records), dtype=np.int64, count=len(records))
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    columns: list[pa.Array] = [
        pa.array(np.repeat(stamps, counts), type=pa.int64()).cast(_TS),
        pa.repeat(pa.scalar(records[0].model, pa.string()), total),
        pa.array(np.full(total, records[0].version, dtype=np.int64)),
        # Dictionary-encoded: one copy of each request's id, not one per row.
        pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(np.arange(len(records), dtype=np.int32), counts)),
            pa.array([r.request_id for r in records], pa.string()),
        ),
        pa.array((np.arange(total, dtype=np.int64) - starts).astype(np.int32)),
        pa.array(np.repeat(np.fromiter((r.latency_ms for r in records), np.float64, len(records)), counts)),
    ]
    for spec in sig.inputs:
        values = np.concatenate([np.asarray(r.inputs[spec.name]) for r in records])
        columns.append(_arrow_column(values, spec.datatype))
    for out in sig.outputs:
        values = np.concatenate([np.asarray(r.outputs[out.name]) for r in records])
        columns.append(_arrow_column(values, out.datatype))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class LakeWriter:
    """Queue prediction records (bounded in rows and bytes) and write them as Parquet from one thread.

    ``overflow`` says what happens when the queue is full: ``block`` waits for room (bounded by
    the caller's timeout), ``shed`` refuses (:class:`~parity.errors.LakeFullError`), ``drop``
    counts the rows as dropped and logs a rate-limited warning. ``durability="ack"`` acknowledges a
    record only once it is fsynced in the write-ahead log. A file is written when its rows reach
    ``file_bytes`` (Arrow bytes) or its first row is ``flush_interval_s`` old; a failed write is
    retried with its rows kept (they keep counting against the queue bound).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        flush_interval_s: float = 2.0,
        max_queue_rows: int = 1_000_000,
        max_queue_bytes: int = 512 * 1024 * 1024,
        file_bytes: int = 64 * 1024 * 1024,
        overflow: Overflow = "block",
        durability: Durability = "buffered",
        publisher: Publisher | None = None,
    ) -> None:
        if overflow not in OVERFLOW:
            raise LakeError(f"overflow must be one of {OVERFLOW}; got {overflow!r}")
        if durability not in DURABILITY:
            raise LakeError(f"durability must be one of {DURABILITY}; got {durability!r}")
        if min(max_queue_rows, max_queue_bytes, file_bytes) < 1 or flush_interval_s <= 0:
            raise LakeError(
                "max_queue_rows, max_queue_bytes and file_bytes must be >= 1 and flush_interval_s > 0; got "
                f"{max_queue_rows}, {max_queue_bytes}, {file_bytes} and {flush_interval_s}"
            )
        self.root = Path(root).expanduser().absolute()
        self.flush_interval_s = float(flush_interval_s)
        self.max_queue_rows = int(max_queue_rows)
        self.max_queue_bytes = int(max_queue_bytes)
        self.file_bytes = int(file_bytes)
        self.overflow: Overflow = overflow
        self.durability: Durability = durability
        self.publisher: Publisher = publisher or LocalPublisher(self.root)
        if publisher is None:
            check_writable(self.root)
        self.recovered = recover(self.root, self.publisher)
        self._wal = Wal(self.root) if durability == "ack" else None
        self._queue: list[_Record] = []
        self._queue_rows = 0
        self._rows = 0  # queued + pending (not yet published) rows: what the bounds limit
        self._bytes = 0
        self._files: dict[str, _File] = {}
        self._schemas: dict[int, tuple[Signature, pa.Schema]] = {}
        self._keys: dict[tuple[str, int, int], str] = {}
        self._written = 0
        self._dropped = 0
        self._blocked = 0
        self._last_flush: float | None = None
        self._error: str | None = None
        self._closed = False
        self._cond = threading.Condition()  # guards everything above
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._drop_log = RateLimitedLog(log, interval_s=10.0)
        self._observers: list[Callable[[str, int], None]] = []
        self._thread = threading.Thread(target=self._run, name="parity-lake", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ state

    @property
    def written(self) -> int:
        """Rows written to published Parquet files so far."""
        return self._written

    @property
    def dropped(self) -> int:
        """Rows lost: queue full in ``drop`` mode, writer closed, unencodable, or a write that kept failing."""
        return self._dropped

    @property
    def blocked(self) -> int:
        """Rows whose request had to wait for queue room (``block`` mode)."""
        return self._blocked

    @property
    def queued(self) -> int:
        """Rows accepted and not yet in a published file."""
        return self._rows

    @property
    def queued_bytes(self) -> int:
        """Estimated bytes of :attr:`queued`."""
        return self._bytes

    @property
    def last_flush(self) -> float | None:
        """Unix time of the last successful file write (None before the first)."""
        return self._last_flush

    @property
    def healthy(self) -> bool:
        """False while writes fail (the rows are kept and retried)."""
        return self._error is None

    def status(self) -> dict[str, object]:
        """Readiness details: ok, error, queued rows and bytes, last flush, durability and overflow."""
        return {
            "ok": self._error is None,
            "error": self._error,
            "queued_rows": self._rows,
            "queued_bytes": self._bytes,
            "last_flush": self._last_flush,
            "durability": self.durability,
            "overflow": self.overflow,
        }

    def observe(self, callback: Callable[[str, int], None]) -> None:
        """Call ``callback(outcome, rows)`` for every ``written``, ``dropped`` or ``blocked`` count (metrics)."""
        self._observers.append(callback)

    def _count(self, outcome: str, rows: int) -> None:
        for callback in self._observers:
            try:
                callback(outcome, rows)
            except Exception:  # an observer must never break the writer
                log.exception("lake observer failed")

    def has_room(self, rows: int, nbytes: int = 0) -> bool:
        """True when ``rows`` rows (``nbytes`` estimated bytes) fit in the queue right now."""
        return self._rows + rows <= self.max_queue_rows and self._bytes + nbytes <= self.max_queue_bytes

    def check_size(self, rows: int, nbytes: int) -> None:
        """Raise LakeFullError for a request that could never fit the queue, whatever the load."""
        if rows > self.max_queue_rows or nbytes > self.max_queue_bytes:
            raise LakeFullError(
                f"a request of {rows} rows (~{nbytes} bytes) exceeds the lake queue bound of "
                f"{self.max_queue_rows} rows / {self.max_queue_bytes} bytes; send fewer rows per request"
            )

    @staticmethod
    def estimate_bytes(columns: Mapping[str, np.ndarray]) -> int:
        """Estimated queue bytes of typed columns (what the byte bound counts)."""
        return _estimate_bytes(columns)

    # ------------------------------------------------------------------ writing

    def _record(
        self,
        model: str,
        version: int | None,
        signature: Signature,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
        request_id: str,
        latency_ms: float,
        ts: float | None,
    ) -> _Record:
        first = next(iter(outputs.values()), None)
        rows = len(first) if first is not None else len(next(iter(inputs.values())))
        stamp = time.time() if ts is None else float(ts)
        v = int(version or 0)
        nbytes = _estimate_bytes(inputs) + _estimate_bytes(outputs) + len(request_id) + 32
        return _Record(
            model, v, signature, inputs, outputs, request_id, float(latency_ms), stamp, rows, nbytes,
            self._key(model, v, stamp),
        )  # fmt: skip

    def _key(self, model: str, version: int, stamp: float) -> str:
        """The partition of a row stamped ``stamp``, cached per model, version and UTC day (checked once)."""
        day = int(stamp // 86_400)
        found = self._keys.get((model, version, day))
        if found is None:
            if len(self._keys) > 1024:  # days go by: forget the old ones
                self._keys.clear()
            found = partition_key(model, version, datetime.fromtimestamp(stamp, UTC).date())
            self._keys[(model, version, day)] = found
        return found

    def _enqueue(self, record: _Record) -> None:
        """Append under the lock (room already checked) and wake the thread when worth it."""
        if not self._queue:
            self._queue_since = time.monotonic()
        self._queue.append(record)
        self._queue_rows += record.rows
        self._rows += record.rows
        self._bytes += record.nbytes
        if self._wal is not None or self._queue_rows >= _WAKE_ROWS:
            self._cond.notify()

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
        timeout: float | None = None,
    ) -> bool:
        """Queue the rows of one request from any thread; False if dropped (see ``overflow``).

        In ``block`` mode this waits up to ``timeout`` seconds (None: no limit) for room; in
        ``ack`` mode it returns once the rows are fsynced in the write-ahead log.
        """
        record = self._record(model, version, signature, inputs, outputs, request_id, latency_ms, ts)
        acked = threading.Event()
        errors: list[BaseException] = []

        def done(exc: BaseException | None) -> None:
            if exc is not None:
                errors.append(exc)
            acked.set()

        if self._wal is not None:
            record.done = done
        with self._cond:
            if self._closed or record.rows > self.max_queue_rows or record.nbytes > self.max_queue_bytes:
                return self._drop(record.rows, "the writer is closed" if self._closed else "request too large")
            if not self.has_room(record.rows, record.nbytes):
                if self.overflow != "block":
                    return self._drop(record.rows, "queue full")
                self._blocked += record.rows
                self._count("blocked", record.rows)
                deadline = None if timeout is None else time.monotonic() + timeout
                while not self._closed and not self.has_room(record.rows, record.nbytes):
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return self._drop(record.rows, "queue full for the whole timeout")
                    self._cond.wait(left)
                if self._closed:
                    return self._drop(record.rows, "the writer is closed")
            self._enqueue(record)
        if self._wal is not None:
            acked.wait()
            if errors:
                return False
        return True

    async def put(
        self,
        *,
        model: str,
        version: int | None,
        signature: Signature,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
        request_id: str,
        latency_ms: float,
        timeout: float | None = None,
    ) -> bool:
        """Queue one request's rows from the event loop without blocking it; see ``overflow`` and ``durability``.

        Returns False when ``drop`` dropped them; raises LakeFullError when ``shed`` finds no room
        or ``block`` waited ``timeout`` seconds in vain, and LakeError when the WAL append failed.
        """
        record = self._record(model, version, signature, inputs, outputs, request_id, latency_ms, None)
        loop = asyncio.get_running_loop()
        ack: asyncio.Future[None] | None = None
        if self._wal is not None:
            ack = loop.create_future()
            record.done = _resolver(loop, ack)
        deadline = None if timeout is None else loop.time() + timeout
        waited = False
        while True:
            with self._cond:
                if self._closed:
                    raise LakeError("the prediction lake is closed (the server is shutting down)")
                self.check_size(record.rows, record.nbytes)
                if self.has_room(record.rows, record.nbytes):
                    self._enqueue(record)
                    break
                if self.overflow == "drop":
                    self._drop(record.rows, "queue full")
                    return False
                if self.overflow == "shed":
                    raise LakeFullError("the prediction lake queue is full; retry later")
                if not waited:
                    self._blocked += record.rows
                    self._count("blocked", record.rows)
                    waited = True
                room: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, room))
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                room.cancel()
                raise LakeFullError("the prediction lake had no room for this request's rows within its deadline")
            try:
                async with asyncio.timeout(left):
                    await room
            except TimeoutError:
                raise LakeFullError(
                    "the prediction lake had no room for this request's rows within its deadline"
                ) from None
        if ack is not None:
            await ack
        return True

    def _drop(self, rows: int, why: str) -> bool:
        self._dropped += rows
        self._count("dropped", rows)
        self._drop_log.warning("prediction lake dropped %d row(s): %s", rows, why)
        return False

    def flush(self) -> None:
        """Write every queued and pending row now (blocks until done or failed)."""
        with self._cond:
            self._flush_now = True
            self._cond.notify()
            target = self._cycles + 1
            while self._cycles < target and self._thread.is_alive():
                self._cond.wait(0.1)

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop accepting rows, write everything accepted and stop the thread (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            _wake(loop, fut)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> LakeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the thread

    _flush_now = False
    _cycles = 0
    _queue_since = 0.0

    def _run(self) -> None:
        retry_at = 0.0
        while True:
            with self._cond:
                while not (self._closed or self._flush_now or self._queue_rows >= _WAKE_ROWS):
                    if self._wal is not None and self._queue:
                        break
                    if not self._cond.wait(self._next_due()) and (self._queue or self._files):
                        break
                records, self._queue, self._queue_rows = self._queue, [], 0
                final, force, since = self._closed, self._flush_now, self._queue_since
                self._flush_now = False
            try:
                self._absorb(records, since)
                due = force or final or time.monotonic() >= retry_at
                if due and not self._write_due(force=force or final):
                    retry_at = time.monotonic() + _RETRY_S
            except Exception:  # the thread must survive anything: serving goes on
                log.exception("prediction lake cycle failed")
            with self._cond:
                self._cycles += 1
                self._cond.notify_all()
                if final and not self._queue:
                    break
        self._shutdown()

    def _next_due(self) -> float:
        if self._queue:
            # Encode what waits in small steps (a big batch holds the GIL for long, stalling requests).
            return _ABSORB_S
        if not self._files:
            return self.flush_interval_s
        oldest = min(f.opened for f in self._files.values())
        return max(0.01, oldest + self.flush_interval_s - time.monotonic())

    def _schema(self, signature: Signature) -> pa.Schema:
        found = self._schemas.get(id(signature))
        if found is None or found[0] is not signature:
            found = (signature, lake_schema(signature))
            self._schemas[id(signature)] = found
        return found[1]

    def _absorb(self, records: list[_Record], since: float) -> None:
        """Encode queued records into per-partition Arrow batches (and the WAL), then acknowledge them."""
        if not records:
            return
        groups: dict[tuple[str, int], list[_Record]] = {}
        for rec in records:
            groups.setdefault((rec.key, id(rec.signature)), []).append(rec)
        touched: list[tuple[_File, list[_Record]]] = []
        for group in groups.values():
            schema = self._schema(group[0].signature)
            try:
                batch = _record_batch(group, schema)
            except Exception as exc:  # unencodable values: nothing of them can be logged
                self._settle(group, LakeError(f"rows cannot be encoded for the lake: {exc}"))
                self._release(group, dropped=True)
                log.error("prediction lake dropped %d row(s) it cannot encode: %s", sum(r.rows for r in group), exc)
                continue
            file = self._file(group[0].key, schema, since)
            file.batches.append(batch)
            file.rows += batch.num_rows
            file.nbytes += sum(r.nbytes for r in group)
            file.arrow_bytes += batch.nbytes
            touched.append((file, group))
        if self._wal is None:
            return
        failed: BaseException | None = None
        try:
            for file, _ in touched:
                assert file.wal is not None
                file.wal.append(file.batches[-1])
            for file in {id(f): f for f, _ in touched}.values():
                assert file.wal is not None
                file.wal.sync()
        except OSError as exc:
            failed = LakeError(f"the write-ahead log cannot be written ({exc.strerror or exc})")
            self._fail(str(failed))
        for _, group in touched:
            self._settle(group, failed)

    def _file(self, key: str, schema: pa.Schema, since: float) -> _File:
        """The pending file of ``key`` with this schema (a new one when the schema changed)."""
        file = self._files.get(key)
        if file is not None and file.schema.equals(schema):
            return file
        if file is not None:  # another signature for the same partition: finish the old file first
            self._write_file(file)
        name = new_file_name()
        full = f"{key}/{name}"
        file = _File(full, schema, since)
        if self._wal is not None:
            file.wal = self._wal.segment(name, schema, full)
        self._files[key] = file
        return file

    def _write_due(self, *, force: bool) -> bool:
        """Write the files that are big or old enough (all when forced); False if one failed."""
        now = time.monotonic()
        ok = True
        for key, file in list(self._files.items()):
            if force or file.arrow_bytes >= self.file_bytes or now - file.opened >= self.flush_interval_s:
                if self._write_file(file):
                    del self._files[key]
                else:
                    ok = False
        return ok

    def _write_file(self, file: _File) -> bool:
        """Write and publish one file; on failure keep its rows for the next try."""
        if not file.batches:
            return True
        staged: Path | None = None
        try:
            staged = self.publisher.stage(file.key)
            write_parquet(pa.Table.from_batches(file.batches, schema=file.schema), staged)
            self.publisher.publish(staged, file.key)
        except Exception as exc:
            if staged is not None:
                with contextlib.suppress(OSError):
                    self.publisher.discard(staged)
            self._fail(f"writing {file.rows} row(s) failed ({getattr(exc, 'strerror', None) or exc}); retrying")
            return False
        if file.wal is not None:
            file.wal.remove()
        with self._cond:
            self._written += file.rows
            self._last_flush = time.time()
            self._error = None
            self._rows -= file.rows
            self._bytes -= file.nbytes
            waiters, self._waiters = self._waiters, []
            self._cond.notify_all()
        for loop, fut in waiters:
            _wake(loop, fut)
        self._count("written", file.rows)
        file.batches = []
        return True

    def _fail(self, message: str) -> None:
        if self._error != message:
            log.error("prediction lake: %s", message)
        self._error = message

    def _settle(self, group: list[_Record], exc: BaseException | None) -> None:
        for rec in group:
            if rec.done is not None:
                rec.done(exc)

    def _release(self, group: list[_Record], *, dropped: bool) -> None:
        with self._cond:
            n = sum(r.rows for r in group)
            self._rows -= n
            self._bytes -= sum(r.nbytes for r in group)
            if dropped:
                self._dropped += n
        if dropped:
            self._count("dropped", n)

    def _shutdown(self) -> None:
        """After the last cycle: anything still unwritten is dropped (buffered) or left to the WAL (ack)."""
        lost = sum(f.rows for f in self._files.values() if f.batches)
        for file in self._files.values():
            if file.wal is not None:
                file.wal.close()
        if lost and self._wal is None:
            with self._cond:
                self._dropped += lost
            self._count("dropped", lost)
            log.error("prediction lake dropped %d row(s) it could not write before closing", lost)
        elif lost:
            log.error("prediction lake: %d row(s) stay in the write-ahead log for the next start", lost)
        if self._wal is not None:
            self._wal.close(remove=not lost)


def _resolver(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> Callable[[BaseException | None], None]:
    """A thread-safe callback settling ``fut`` on its loop."""

    def settle(exc: BaseException | None) -> None:
        def apply() -> None:
            if fut.done():
                return
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(apply)

    return settle


def _wake(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
    def apply() -> None:
        if not fut.done():
            fut.set_result(None)

    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(apply)
