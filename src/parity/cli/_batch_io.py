"""Streaming batch readers and writers for ``parity predict``: CSV, Parquet and JSON Lines.

The format is chosen by file extension. Input batches expose the model's input columns as a
pandas frame (what ``Artifact.predict`` takes) and, only when ``--keep-inputs`` asks, every input
column as an Arrow table. CSV columns named in the signature are read with the signature's types,
so a category ``"1"`` stays text; in those text columns an empty field is a null (every other
value, ``NA`` included, is text), and numeric columns also treat pyarrow's usual markers
(empty, ``NA``, ``NaN``, ``null``...) as null. Outputs are written with the signature's types.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from parity.codec import ARROW_TYPES, records_to_columns
from parity.errors import SchemaError
from parity.schema import Signature

__all__ = [
    "FORMATS",
    "Batch",
    "BatchWriter",
    "InputFile",
    "atomic_output",
    "file_format",
    "open_input",
    "output_schema",
]

Format = Literal["csv", "parquet", "jsonl"]
FORMATS: dict[str, Format] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


_CSV_BLOCK = 1 << 20  # bytes per CSV read; batches are re-cut to --batch-size rows anyway


def file_format(path: Path) -> Format:
    """Return the format of ``path`` from its extension, or raise ValueError listing the known ones."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the format of {str(path)!r}: use one of the extensions {', '.join(FORMATS)}")
    return fmt


def output_schema(signature: Signature) -> pa.Schema:
    """Arrow schema of the declared outputs."""
    return pa.schema([pa.field(o.name, ARROW_TYPES[o.datatype]) for o in signature.outputs])


class Batch(Protocol):
    """A chunk of input rows."""

    @property
    def num_rows(self) -> int:
        """Number of rows."""
        ...

    def frame(self) -> pd.DataFrame:
        """The model's input columns (those present) as pandas, for ``Artifact.predict``."""
        ...

    @property
    def column_names(self) -> list[str]:
        """Every column of the batch (inputs or not)."""
        ...

    def table(self) -> pa.Table:
        """Every input column as Arrow (for ``--keep-inputs``)."""
        ...


@dataclass
class _ArrowBatch:
    data: pa.Table
    inputs: Sequence[str]

    @property
    def num_rows(self) -> int:
        return self.data.num_rows

    @property
    def column_names(self) -> list[str]:
        return list(self.data.column_names)

    def frame(self) -> pd.DataFrame:
        present = [c for c in self.inputs if c in self.data.column_names]
        return self.data.select(present).to_pandas()

    def table(self) -> pa.Table:
        return self.data


@dataclass
class _RecordsBatch:
    records: list[dict[str, Any]]
    signature: Signature

    @property
    def num_rows(self) -> int:
        return len(self.records)

    @property
    def column_names(self) -> list[str]:
        return list(dict.fromkeys(k for record in self.records for k in record))

    def frame(self) -> pd.DataFrame:
        # Object columns keep each JSON value as is, so the codec names the exact bad value and row.
        columns = records_to_columns(self.signature, self.records)
        return pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in columns.items()})

    def table(self) -> pa.Table:
        names = list(dict.fromkeys(k for record in self.records for k in record))
        arrays = []
        for name in names:
            values = [record.get(name) for record in self.records]
            spec = next((c for c in self.signature.inputs if c.name == name), None)
            arrays.append(pa.array(values, type=ARROW_TYPES[spec.datatype] if spec else None))
        return pa.Table.from_arrays(arrays, names=names)


class InputFile(Protocol):
    """An opened input: its column names (when known up front) and its batches."""

    columns: list[str] | None
    total_rows: int | None

    def batches(self) -> Iterator[Batch]:
        """Yield batches of at most ``batch_size`` rows."""
        ...


def _rebatch(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Re-cut record batches into tables of exactly ``size`` rows (the last may be shorter)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            take = min(size - count, batch.num_rows - offset)
            pending.append(batch.slice(offset, take))
            count += take
            offset += take
            if count == size:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending)


# What a numeric CSV field spells a null as (pyarrow's defaults; pandas writes NaN as an empty field).
_NUMERIC_NULLS = pa.array(
    [
        *["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"],
        *["N/A", "NA", "NULL", "NaN", "n/a", "nan", "null"],
    ]
)


class _CsvInput:
    def __init__(self, path: Path, signature: Signature, batch_size: int) -> None:
        import pyarrow.csv as pacsv

        self.path, self.signature, self.batch_size = path, signature, batch_size
        # Every input is read as text and converted below, so a bad value is reported with its
        # column and row (Arrow's own conversion error names neither) and "30.0" (how pandas
        # writes an integer column that had a null) reads as the integer 30.
        self._reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK),
            convert_options=pacsv.ConvertOptions(
                column_types={c.name: pa.string() for c in signature.inputs}, strings_can_be_null=False
            ),
        )
        self.columns: list[str] | None = list(self._reader.schema.names)
        self.total_rows: int | None = None

    def _convert(self, table: pa.Table, start: int) -> pa.Table:
        for spec in self.signature.inputs:
            if spec.name not in table.column_names:
                continue
            i = table.column_names.index(spec.name)
            text = table.column(i)
            if spec.datatype == "BYTES":
                # Text stays text ("NA" is a value); only the empty field is a null.
                converted = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
            else:
                text = pc.if_else(pc.is_in(text, value_set=_NUMERIC_NULLS), pa.scalar(None, pa.string()), text)
                converted = self._numbers(spec.name, spec.datatype, text, start)
            table = table.set_column(i, spec.name, converted)
        return table

    def _numbers(self, name: str, datatype: str, text: pa.ChunkedArray, start: int) -> pa.ChunkedArray:
        target = ARROW_TYPES[datatype]
        attempts = [target, pa.float64()] if datatype in ("INT64", "INT32") else [target]
        for attempt in attempts:
            try:
                # INT columns that only parse as float go on as float64: the codec then checks each
                # value is a whole number in range and names the row of one that is not.
                return pc.cast(text, attempt)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        for row, value in enumerate(text.to_pylist()):
            try:
                pc.cast(pa.array([value], pa.string()), attempts[-1])
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise SchemaError(
                    f"{self.path}: column {name!r}, data row {start + row + 1} (line {start + row + 2}): "
                    f"expected {datatype}; received {value!r}",
                    column=name,
                ) from None
        raise SchemaError(f"{self.path}: column {name!r} cannot be read as {datatype}", column=name)

    def batches(self) -> Iterator[Batch]:
        start = 0
        for table in _rebatch(iter(self._reader), self.batch_size):
            yield _ArrowBatch(self._convert(table, start), self.signature.input_names)
            start += table.num_rows


class _ParquetInput:
    def __init__(self, path: Path, signature: Signature, batch_size: int) -> None:
        import pyarrow.parquet as pq

        self.signature, self.batch_size = signature, batch_size
        self._file = pq.ParquetFile(path)
        self.columns: list[str] | None = list(self._file.schema_arrow.names)
        self.total_rows: int | None = self._file.metadata.num_rows

    def batches(self) -> Iterator[Batch]:
        for table in _rebatch(self._file.iter_batches(batch_size=self.batch_size), self.batch_size):
            yield _ArrowBatch(table, self.signature.input_names)


class _JsonLinesInput:
    def __init__(self, path: Path, signature: Signature, batch_size: int) -> None:
        self.path, self.signature, self.batch_size = path, signature, batch_size
        self.columns: list[str] | None = None  # JSON objects may differ line by line
        self.total_rows: int | None = None

    def batches(self) -> Iterator[Batch]:
        records: list[dict[str, Any]] = []
        with open(self.path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"{self.path}: line {number} is not valid JSON ({exc})") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{self.path}: line {number} must be a JSON object, got {type(record).__name__}")
                records.append(record)
                if len(records) == self.batch_size:
                    yield _RecordsBatch(records, self.signature)
                    records = []
        if records:
            yield _RecordsBatch(records, self.signature)


def open_input(path: Path, signature: Signature, batch_size: int) -> InputFile:
    """Open ``path`` for batched reading in the format its extension names."""
    if not path.is_file():
        raise FileNotFoundError(f"input file {str(path)!r} does not exist")
    readers: dict[Format, Callable[[Path, Signature, int], InputFile]] = {
        "csv": _CsvInput,
        "parquet": _ParquetInput,
        "jsonl": _JsonLinesInput,
    }
    return readers[file_format(path)](path, signature, batch_size)


class BatchWriter:
    """Writes tables to one file incrementally; later tables are cast to the first one's schema."""

    def __init__(self, path: Path, fmt: Format) -> None:
        self.path, self.fmt = path, fmt
        self.schema: pa.Schema | None = None
        self._writer: Any = None
        self._fh: Any = None

    def write(self, table: pa.Table) -> None:
        """Append the rows of ``table``."""
        if self.schema is None:
            self._open(table.schema)
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        if self.fmt == "csv":
            table = _exact_floats(table)
        if self.fmt == "jsonl":
            for row in table.to_pylist():
                self._fh.write(json.dumps({k: _json_value(v) for k, v in row.items()}, ensure_ascii=False) + "\n")
        else:
            self._writer.write_table(table)

    def _open(self, schema: pa.Schema) -> None:
        self.schema = schema
        if self.fmt == "csv":
            import pyarrow.csv as pacsv

            self._writer = pacsv.CSVWriter(self.path, _exact_floats(schema.empty_table()).schema)
        elif self.fmt == "parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(self.path, schema)
        else:
            self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def finish(self, empty_schema: pa.Schema) -> None:
        """Complete the file; with no rows written, write an empty file of ``empty_schema``."""
        if self.schema is None:
            self._open(empty_schema)
            if self.fmt == "csv":
                self._writer.write_table(_exact_floats(empty_schema.empty_table()))
            elif self.fmt == "parquet":
                self._writer.write_table(empty_schema.empty_table())
        self.close()

    def close(self) -> None:
        """Release the file (safe to call twice; after an error the temp file is discarded anyway)."""
        for handle in (self._writer, self._fh):
            if handle is not None:
                handle.close()
        self._writer = self._fh = None


def _exact_floats(table: pa.Table) -> pa.Table:
    """Float columns as their shortest round-trip text (``repr``), e.g. ``1.1712264258445515e-06``.

    Arrow writes ``0.0000011712264258445515``, which pandas 2's default CSV parser reads back with
    only ~11 significant digits: written this way every reader gets the exact double back.
    """
    for i, field in enumerate(table.schema):
        if pa.types.is_floating(field.type):
            text = [None if v is None else repr(v) for v in table.column(i).to_pylist()]
            table = table.set_column(i, field.name, pa.array(text, type=pa.string()))
    return table


def _json_value(value: Any) -> Any:
    # JSON has no NaN or infinity: write them as null rather than emit invalid JSON.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@contextmanager
def atomic_output(target: Path) -> Iterator[Path]:
    """Yield a temp path next to ``target``, renamed over it only if the block succeeds."""
    parent = target.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"output directory {str(parent)!r} does not exist")
    # Same directory, so the rename is atomic; a fresh name (not mkstemp) so the file gets the usual permissions.
    tmp = parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
