"""The lake's on-disk layout: partition paths, the one partition walker, publishing and reading back."""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from parity.errors import LakeError
from parity.registry import validate_name

__all__ = [
    "META_SCHEMA",
    "LocalPublisher",
    "Partition",
    "Publisher",
    "check_writable",
    "partition_key",
    "partitions",
    "read_lake",
    "write_parquet",
]

META_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("us", tz="UTC")),
        ("model", pa.string()),
        ("model_version", pa.int64()),
        ("request_id", pa.dictionary(pa.int32(), pa.string())),
        ("row", pa.int32()),
        ("latency_ms", pa.float64()),
    ]
)


def partition_key(model: str, version: int, day: date) -> str:
    """Relative directory of one partition: ``model=<name>/version=<V>/date=<YYYY-MM-DD>``."""
    validate_name(model)  # the name becomes a directory: "../x" must never leave the root
    return f"model={model}/version={int(version)}/date={day.isoformat()}"


class Publisher(Protocol):
    """Where finished Parquet files go: a local directory here; object stores plug in the same way."""

    def stage(self, key: str) -> Path:
        """A local path to write the file ``key`` (``<partition>/part-<id>.parquet``) to before publishing."""
        ...

    def publish(self, staged: Path, key: str) -> None:
        """Make the complete file at ``staged`` visible as ``key`` in the lake, atomically."""
        ...

    def discard(self, staged: Path) -> None:
        """Remove a staged file that will not be published."""
        ...

    def exists(self, key: str) -> bool:
        """True when ``key`` is already published (recovery must not publish a file twice)."""
        ...


class LocalPublisher:
    """Publish into a local lake root: write ``.name.tmp`` beside the target, fsync, rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def stage(self, key: str) -> Path:
        """A dot-file in the target directory (Parquet readers skip dot-files)."""
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.parent / f".{target.name}.tmp"

    def publish(self, staged: Path, key: str) -> None:
        """fsync the staged file, rename it into place, fsync the directory."""
        fd = os.open(staged, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        target = self.root / key
        os.replace(staged, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def discard(self, staged: Path) -> None:
        """Delete the staged file if it exists."""
        staged.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        """True when the final file is in place."""
        return (self.root / key).is_file()


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write one lake file: dictionary encoding for text and ids only, min/max statistics for ``ts`` only."""
    # Dictionary-encoding high-cardinality floats costs most of the write time and saves nothing.
    text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)]
    # No parity reader uses column statistics; computing them for every column was ~20% of the
    # write. ``ts`` keeps them, so engines that prune row groups by time (DuckDB, Spark) still can.
    stats = ["ts"] if "ts" in table.schema.names else False
    pq.write_table(table, path, use_dictionary=[*text, "model_version"], write_statistics=stats)


def new_file_name() -> str:
    """A unique Parquet file name, so several writers (processes) can share one root."""
    return f"part-{uuid.uuid4().hex}.parquet"


def check_writable(root: Path) -> None:
    """Raise LakeError unless ``root`` is (or can be made) a directory this process can write files in."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-", suffix=".tmp"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise LakeError(
            f"the prediction lake directory is not writable ({reason}); pass a writable directory or disable the lake"
        ) from None


@dataclass(frozen=True)
class Partition:
    """One ``model=/version=/date=`` directory of the lake and its published Parquet files."""

    model: str
    version: int
    day: date
    path: Path
    files: tuple[Path, ...]


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)  # naive datetimes are read as UTC, like the lake's dates


def _value(path: Path, key: str) -> str | None:
    return path.name.split("=", 1)[1] if path.name.startswith(key + "=") else None


def partitions(
    root: str | os.PathLike[str],
    model: str | None = None,
    version: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Partition]:
    """Every partition of ``model``/``version`` (all when None) whose day overlaps ``[since, until)``."""
    base = Path(root)
    lo, hi = _utc(since), _utc(until)
    first = lo.astimezone(UTC).date() if lo is not None else None
    out: list[Partition] = []
    for model_dir in sorted(base.glob("model=*")):
        name = _value(model_dir, "model")
        if name is None or (model is not None and name != model):
            continue
        for version_dir in sorted(model_dir.glob("version=*")):
            try:
                v = int(_value(version_dir, "version") or "")
            except ValueError:
                continue
            if version is not None and v != int(version):
                continue
            for date_dir in sorted(version_dir.glob("date=*")):
                try:
                    day = date.fromisoformat(_value(date_dir, "date") or "")
                except ValueError:
                    continue
                # Prune whole days outside [since, until) before opening any file.
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                if (first is not None and day < first) or (hi is not None and start >= hi):
                    continue
                files = tuple(sorted(p for p in date_dir.glob("part-*.parquet") if p.is_file()))
                out.append(Partition(name, v, day, date_dir, files))
    return out


def read_lake(
    root: str | os.PathLike[str],
    model: str | None = None,
    version: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pa.Table:
    """Read lake rows (optionally of one model/version, with ``since <= ts < until``) as one table."""
    lo, hi = _utc(since), _utc(until)
    tables = [pq.read_table(f) for p in partitions(root, model, version, lo, hi) for f in p.files]
    if not tables:
        return META_SCHEMA.empty_table()
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
