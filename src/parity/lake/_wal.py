"""The write-ahead log of ``durability="ack"``: append-only Arrow IPC segments, fsync-batched, replayed on start.

Each writer process owns one directory ``<root>/.wal/<id>/`` and holds an exclusive ``flock`` on
its ``lock`` file while it runs. A segment ``<file id>.arrows`` holds the record batches of one
Parquet file that is not published yet (its partition is in the stream's schema metadata); it is
deleted once that file is published. On start, :func:`recover` replays every directory whose lock
it can take (its writer is dead) into Parquet files named after the segment, so a crash between
publishing and deleting never duplicates rows, and a torn last batch (never fsynced, so never
acknowledged) is skipped.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from parity.lake._layout import Publisher, write_parquet

__all__ = ["WAL_DIR", "Wal", "WalSegment", "recover"]

log = logging.getLogger("parity.lake")

WAL_DIR = ".wal"
_KEY = b"parity.lake.key"


class WalSegment:
    """The append-only log of one pending Parquet file."""

    def __init__(self, path: Path, schema: pa.Schema, key: str) -> None:
        self.path = path
        self._fh: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        meta = dict(schema.metadata or {})
        meta[_KEY] = key.encode()
        self._writer = pa.ipc.new_stream(self._fh, schema.with_metadata(meta))
        self.dirty = False

    def append(self, batch: pa.RecordBatch) -> None:
        """Append one batch (durable only after :meth:`sync`)."""
        self._writer.write_batch(batch)
        self.dirty = True

    def sync(self) -> None:
        """Flush and fsync what was appended."""
        if self.dirty:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self.dirty = False

    def remove(self) -> None:
        """Close and delete the segment (its rows are published)."""
        self.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the file, keeping it for the next start's replay."""
        if not self._fh.closed:
            try:
                self._writer.close()
            finally:
                self._fh.close()


class Wal:
    """This process's WAL directory, locked while the writer runs."""

    def __init__(self, root: Path) -> None:
        self.directory = root / WAL_DIR / uuid.uuid4().hex
        self.directory.mkdir(parents=True)
        self._lock = open(self.directory / "lock", "wb")  # noqa: SIM115 - closed in close()
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def segment(self, file_name: str, schema: pa.Schema, key: str) -> WalSegment:
        """A new segment for the pending file ``file_name`` of partition file ``key``."""
        return WalSegment(self.directory / f"{file_name}.arrows", schema, key)

    def close(self, *, remove: bool) -> None:
        """Release the lock; delete the directory when every segment was published."""
        self._lock.close()
        if remove and not any(self.directory.glob("*.arrows")):
            shutil.rmtree(self.directory, ignore_errors=True)


def _read_segment(path: Path) -> tuple[str | None, list[pa.RecordBatch]]:
    """The partition file key and every complete batch of a segment (a torn tail is skipped)."""
    batches: list[pa.RecordBatch] = []
    try:
        with open(path, "rb") as fh:
            reader = pa.ipc.open_stream(fh)
            key = (reader.schema.metadata or {}).get(_KEY)
            while True:
                try:
                    batches.append(reader.read_next_batch())
                except StopIteration:
                    break
                except (pa.ArrowInvalid, OSError):
                    break  # torn tail: written but never fsynced, so never acknowledged
    except (pa.ArrowInvalid, OSError):
        return None, []  # not even a schema: no batch in it was ever acknowledged
    return (key.decode() if key else None), batches


def recover(root: Path, publisher: Publisher) -> int:
    """Publish the segments of dead writers under ``root``; return the rows recovered."""
    base = root / WAL_DIR
    if not base.is_dir():
        return 0
    rows = 0
    for directory in sorted(p for p in base.iterdir() if p.is_dir()):
        try:
            lock = open(directory / "lock", "ab")  # noqa: SIM115 - closed below
        except OSError:
            continue
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live writer owns it
            for segment in sorted(directory.glob("*.arrows")):
                key, batches = _read_segment(segment)
                if key is not None and batches and not publisher.exists(key):
                    staged = publisher.stage(key)
                    try:
                        write_parquet(pa.Table.from_batches(batches), staged)
                        publisher.publish(staged, key)
                    except BaseException:
                        publisher.discard(staged)
                        raise
                    n = sum(b.num_rows for b in batches)
                    rows += n
                    log.warning("prediction lake: replayed %d acknowledged row(s) from an interrupted run", n)
                segment.unlink()
                # The dead writer's unfinished copy of the same file, if it got that far.
                if key is not None:
                    publisher.discard(publisher.stage(key))
        finally:
            lock.close()
        shutil.rmtree(directory, ignore_errors=True)
    return rows
