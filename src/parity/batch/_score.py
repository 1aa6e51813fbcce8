"""Score a Parquet/CSV dataset with an artifact: the local and Dask engines and the shared per-batch step.

Every engine calls :func:`score_table` on Arrow batches (local and Dask from pyarrow's reader, Spark
in ``mapInArrow``), which runs the model through ``Artifact.predict_columns``, the one path that
runs a model, after :func:`parity.codec.encode_arrow` validated the batch, so outputs do not depend
on the engine. Output: the ``keys`` columns as read, then one column per declared output, typed as
the signature says.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from parity.artifact import Artifact
from parity.batch._fs import atomic_dir, atomic_file, open_dataset
from parity.codec import ARROW_TYPES, encode_arrow
from parity.errors import SchemaError
from parity.schema import Signature

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "BatchResult",
    "Plan",
    "plan",
    "score_dask",
    "score_local",
    "score_table",
    "single_threaded",
]

DEFAULT_BATCH_SIZE = 65_536
Progress = Callable[[int], None]


@dataclass(frozen=True)
class BatchResult:
    """What a batch run wrote."""

    rows: int
    output: str
    engine: str
    files: int


@dataclass(frozen=True)
class Plan:
    """Columns to read and the output schema, checked against the artifact before any row is scored."""

    read: list[str]
    keys: list[str]
    inputs: list[str]
    schema: pa.Schema


def _csv_format(signature: Signature) -> ds.CsvFileFormat:
    import pyarrow.csv as pacsv

    # Model columns are read with the model's types (a category "1" stays text); text keeps "NA" as a value.
    convert = pacsv.ConvertOptions(
        column_types={c.name: ARROW_TYPES[c.datatype] for c in signature.inputs}, strings_can_be_null=False
    )
    return ds.CsvFileFormat(convert_options=convert, read_options=pacsv.ReadOptions(block_size=1 << 20))


def _parquet_format(signature: Signature) -> ds.ParquetFileFormat:
    # Text inputs read as Parquet stores them, dictionary-encoded: encode_arrow validates and the
    # graph runs each distinct value once instead of building a Python string per row.
    # pre_buffer off: with it, Arrow reads column chunks ahead of the consumer without bound (peak RSS
    # scanning 5M churn rows: 546 MiB, growing with the file; without: 331 MiB at 5M, 256 MiB at 1M).
    text = [c.name for c in signature.inputs if c.datatype == "BYTES"]
    return ds.ParquetFileFormat(
        read_options=ds.ParquetReadOptions(dictionary_columns=text),
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False),
    )


def plan(signature: Signature, schema: pa.Schema, keys: Sequence[str], where: str) -> Plan:
    """Check that inputs and keys exist and keys do not clash with outputs; return what to read and write."""
    names = list(schema.names)
    missing = [c for c in signature.input_names if c not in names]
    if missing:
        raise SchemaError(f"{where}: missing input column(s) {missing}; the model takes {signature.input_names}",
                          column=missing[0])  # fmt: skip
    bad_keys = [k for k in keys if k not in names]
    if bad_keys:
        raise SchemaError(
            f"keys={bad_keys}: column(s) not in {where}; it has {names}", column=bad_keys[0], param="keys"
        )
    clash = [k for k in keys if k in signature.output_names]
    if clash:
        raise SchemaError(
            f"keys={clash}: column(s) named like model outputs {signature.output_names}", column=clash[0], param="keys"
        )
    fields = []
    for key in keys:
        kind = schema.field(key).type
        fields.append(pa.field(key, kind.value_type if pa.types.is_dictionary(kind) else kind))
    fields += [pa.field(o.name, ARROW_TYPES[o.datatype]) for o in signature.outputs]
    read = list(dict.fromkeys([*keys, *signature.input_names]))
    return Plan(read=read, keys=list(keys), inputs=list(signature.input_names), schema=pa.schema(fields))


def _text_nulls(table: pa.Table, signature: Signature) -> pa.Table:
    """In CSV text columns the empty field is a null (as ``parity predict`` reads CSV)."""
    for spec in signature.inputs:
        if spec.datatype == "BYTES" and spec.name in table.column_names:
            i = table.column_names.index(spec.name)
            col = table.column(i)
            table = table.set_column(i, spec.name, pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col))
    return table


def score_table(artifact: Artifact, table: pa.Table | pa.RecordBatch, p: Plan, *, csv: bool = False) -> pa.Table:
    """Keys + outputs of one Arrow batch, cast to the output schema.

    The batch goes to ``Artifact.predict_columns`` through :func:`parity.codec.encode_arrow`, so text
    is validated and run once per distinct value (see :mod:`parity._dictgraph`), with no pandas frame.
    """
    if csv:
        table = _text_nulls(pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch) else table,
                            artifact.signature)  # fmt: skip
    outputs = artifact.predict_columns(encode_arrow(artifact.signature, table))
    columns = []
    for key in p.keys:
        col = table.column(key)
        col = col.dictionary_decode() if pa.types.is_dictionary(col.type) else col
        kind = p.schema.field(key).type
        columns.append(col if col.type == kind else col.cast(kind))  # Spark may send large_string
    # from_pandas: a NaN output is written as null, as the pandas frame of Artifact.predict gives it.
    columns += [pa.array(outputs[f.name], type=f.type, from_pandas=True) for f in p.schema if f.name not in p.keys]
    return pa.Table.from_arrays(columns, schema=p.schema)


def single_threaded(artifact: Artifact) -> Artifact:
    """Run the graph on one onnxruntime thread per call; batch engines parallelise across batches instead.

    A multi-threaded session splits tree ensembles differently from a one-thread one, which moves the
    last bits of some outputs (measured: ~1e-16 on 20% of rows): with one thread per batch, every
    engine and every batch size gives bit-identical outputs.
    """
    from parity.artifact import ONNX_FILE
    from parity.runtime import OnnxRuntime

    if isinstance(artifact.runtime, OnnxRuntime):
        artifact.runtime = OnnxRuntime(artifact.file_bytes(ONNX_FILE), artifact.signature, threads=1)
    return artifact


def _workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def score_local(
    artifact: Artifact,
    input_url: str,
    output_url: str,
    *,
    keys: Sequence[str] = (),
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    filesystem: pafs.FileSystem | None = None,
    output_filesystem: pafs.FileSystem | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Stream the dataset by record batches through the artifact on all cores and write Parquet atomically.

    ``output_url`` ending in ``.parquet`` is one file; anything else is a directory with one part file.
    At most ``2 * workers`` batches are in memory at once, whatever the input size.
    """
    dataset, fmt = open_dataset(
        input_url,
        filesystem=filesystem,
        csv_format=_csv_format(artifact.signature),
        parquet_format=_parquet_format(artifact.signature),
    )
    p = plan(artifact.signature, dataset.schema, keys, input_url)
    artifact = single_threaded(artifact)
    workers = workers or _workers()
    # One decoding thread: the pool's workers are the parallelism (Arrow's own threads cost 5x the CPU).
    # Read ahead only as far as the pool can take (Arrow's default, 16 batches, is ~300 MiB here).
    scanner = dataset.scanner(columns=p.read, batch_size=batch_size, use_threads=False, batch_readahead=2 * workers)
    single = str(output_url).lower().endswith((".parquet", ".pq"))
    stage = atomic_file(output_url, output_filesystem) if single else atomic_dir(output_url, output_filesystem)
    rows = 0
    with stage as (fs, tmp):
        part = tmp if single else f"{tmp}/part-00000.parquet"
        with fs.open_output_stream(part) as sink, pq.ParquetWriter(sink, p.schema, **_write_options(p)) as writer:
            pending: deque[Future[pa.Table]] = deque()
            with ThreadPoolExecutor(workers, thread_name_prefix="parity-batch") as pool:
                for batch in scanner.to_batches():
                    if batch.num_rows == 0:
                        continue
                    pending.append(pool.submit(score_table, artifact, batch, p, csv=fmt == "csv"))
                    while len(pending) >= 2 * workers or (pending and pending[0].done()):
                        rows += _write(writer, pending.popleft().result(), progress)
                while pending:
                    rows += _write(writer, pending.popleft().result(), progress)
    return BatchResult(rows=rows, output=str(output_url), engine="local", files=1)


def _write_options(p: Plan) -> dict[str, Any]:
    """Dictionary pages only for outputs whose values repeat (labels): keys are identifiers and a
    probability per row never repeats, and trying costs the writer's CPU (keys + label + probability,
    CPU-s per million rows: dictionary everywhere 0.066, label + key 0.038, label only 0.024)."""
    return {"use_dictionary": [f.name for f in p.schema if f.name not in p.keys and not pa.types.is_floating(f.type)]}


def _write(writer: pq.ParquetWriter, table: pa.Table, progress: Progress | None) -> int:
    writer.write_table(table)
    if progress is not None:
        progress(table.num_rows)
    return table.num_rows


def score_dask(
    artifact: Artifact,
    input_url: str,
    output_url: str,
    *,
    keys: Sequence[str] = (),
    scheduler: str = "threads",
    filesystem: pafs.FileSystem | None = None,
    output_filesystem: pafs.FileSystem | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """One Dask task per Parquet row group (read, score, write its own part file) on a local scheduler."""
    try:
        import dask
    except ImportError as exc:
        from parity.errors import MissingDependencyError

        raise MissingDependencyError("the dask engine needs dask: pip install 'parity[dask]'") from exc
    dataset, fmt = open_dataset(input_url, filesystem=filesystem, parquet_format=_parquet_format(artifact.signature))
    if fmt != "parquet":
        raise SchemaError(f"engine='dask' reads Parquet; {input_url} is {fmt}: use engine='local'", param="engine")
    p = plan(artifact.signature, dataset.schema, keys, input_url)
    artifact = single_threaded(artifact)
    assert isinstance(dataset, ds.FileSystemDataset)
    groups = [g for frag in dataset.get_fragments() for g in frag.split_by_row_group()]

    def task(index: int, fragment: Any, fs: pafs.FileSystem, tmp: str) -> int:
        table = score_table(artifact, fragment.to_table(columns=p.read), p)
        pq.write_table(table, f"{tmp}/part-{index:05d}.parquet", filesystem=fs, **_write_options(p))
        return int(table.num_rows)

    with atomic_dir(output_url, output_filesystem) as (fs, tmp):
        tasks = [dask.delayed(task)(i, g, fs, tmp) for i, g in enumerate(groups)]
        counts = dask.compute(*tasks, scheduler=scheduler)
        if not groups:
            pq.write_table(p.schema.empty_table(), f"{tmp}/part-00000.parquet", filesystem=fs)
    rows = int(sum(counts))
    if progress is not None:
        progress(rows)
    return BatchResult(rows=rows, output=str(output_url), engine="dask", files=max(1, len(groups)))
