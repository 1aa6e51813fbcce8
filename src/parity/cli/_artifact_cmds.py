"""``parity inspect``, ``parity verify`` and ``parity predict``: commands on one artifact."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer

from parity.artifact import Artifact
from parity.cli._batch_io import FORMATS, Batch, BatchWriter, atomic_output, file_format, open_input, output_schema
from parity.cli._context import get_state, load_verified, resolve_verified
from parity.cli._render import err, out, print_json, render_manifest, render_report, row_progress, warn
from parity.errors import ParityMismatchError, SchemaError
from parity.schema import Signature

__all__ = ["inspect_cmd", "predict_cmd", "register", "verify_cmd"]

RefArg = Annotated[
    str, typer.Argument(metavar="REF", help="Artifact directory, or registry ref: name, name:VERSION, name@ALIAS.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (only) to stdout.")]
TrustedOpt = Annotated[
    bool,
    typer.Option("--trusted", help="Allow loading a non-portable artifact (its Python payload can run code)."),
]


def register(app: typer.Typer) -> None:
    """Add the artifact commands to ``app``."""
    app.command("inspect")(inspect_cmd)
    app.command("verify")(verify_cmd)
    app.command("predict")(predict_cmd)


def inspect_cmd(
    ctx: typer.Context,
    ref: RefArg,
    json_out: JsonOpt = False,
    trusted: Annotated[
        bool, typer.Option("--trusted", help="Accepted for symmetry: inspect never loads the model.")
    ] = False,
) -> None:
    """Show an artifact's manifest (signature, parity report, lineage...) after checking its files."""
    resolved = resolve_verified(ref, get_state(ctx).registry())
    version = resolved.version
    if json_out:
        print_json(
            {
                "ref": ref,
                "path": str(resolved.path),
                "version": version.version if version else None,
                "aliases": list(resolved.aliases),
                "manifest": resolved.manifest,
            }
        )
        return
    label = None
    if version is not None:
        label = str(version.version) + (f" (aliases: {', '.join(resolved.aliases)})" if resolved.aliases else "")
    out.print(render_manifest(resolved.manifest, version=label, path=str(resolved.path)))


def verify_cmd(ctx: typer.Context, ref: RefArg, trusted: TrustedOpt = False, json_out: JsonOpt = False) -> None:
    """Load an artifact (checking every sha256) and replay its stored parity sample; exit 3 if it fails."""
    state = get_state(ctx)
    artifact = load_verified(ref, state.registry(), trusted=trusted)
    report = artifact.verify(raise_on_failure=False)
    if json_out:
        print_json(
            {
                "ref": ref,
                "name": artifact.name,
                "version": artifact.version,
                "passed": report.passed,
                "report": report.to_dict(),
            }
        )
    else:
        out.print(render_report(report.to_dict(), title=f"Parity replay of {_label(artifact)}"))
    if not report.passed:
        # Raised, not printed: the CLI's single error table turns it into exit code 3.
        raise ParityMismatchError(f"parity check failed for {_label(artifact)}: {report.failure}", report=report)


def _label(artifact: Artifact) -> str:
    return artifact.name if artifact.version is None else f"{artifact.name}:{artifact.version}"


def _format_option(path: Path) -> Path:
    try:
        file_format(path)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return path


def predict_cmd(
    ctx: typer.Context,
    ref: RefArg,
    input_path: Annotated[
        Path,
        typer.Option(
            "--input", "-i", help=f"Input rows: {', '.join(FORMATS)} (by extension).", callback=_format_option
        ),
    ],
    output_path: Annotated[
        Path,
        typer.Option("--output", "-o", help="Output file, same formats; written atomically.", callback=_format_option),
    ],
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per batch.")] = 10_000,
    keep_inputs: Annotated[
        bool, typer.Option("--keep-inputs", help="Also write the input columns (before the outputs).")
    ] = False,
    trusted: TrustedOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.")] = False,
) -> None:
    """Score a CSV / Parquet / JSON Lines file in batches and write the model's outputs.

    CSV columns are read with the model's types; an empty CSV field is a null (use Parquet or JSON Lines to pass "").
    """
    state = get_state(ctx)
    quiet = quiet or state.quiet
    artifact = load_verified(ref, state.registry(), trusted=trusted)
    signature = artifact.signature
    source = open_input(input_path, signature, batch_size)
    if source.columns is not None:
        _check_columns(source.columns, signature, input_path, keep_inputs)
    outputs = output_schema(signature)
    rows = 0
    ignored: set[str] = set()
    with atomic_output(output_path) as tmp, row_progress(disable=quiet) as progress:
        task = progress.add_task("predict", total=source.total_rows)
        writer = BatchWriter(tmp, file_format(output_path))
        try:
            for batch in source.batches():
                extra = [c for c in batch.column_names if c not in artifact.signature.input_names and c not in ignored]
                if extra and not keep_inputs:
                    ignored.update(extra)  # one warning per column, as Artifact.predict does
                    warn(f"ignoring column(s) {extra} of {input_path}: the model does not take them")
                writer.write(_predict_batch(artifact, batch, outputs, keep_inputs, rows, input_path))
                rows += batch.num_rows
                progress.update(task, completed=rows)
            writer.finish(outputs)
        finally:
            writer.close()
    if not quiet:
        for column, count in sorted(artifact.unseen_counts.items()):
            warn(f"{count:,} row(s) had a value of {column!r} not seen in training")
        err.print(f"wrote {rows:,} rows to {output_path}", soft_wrap=True)


def _check_columns(columns: list[str], signature: Signature, path: Path, keep_inputs: bool) -> None:
    missing = [c for c in signature.input_names if c not in columns]
    if missing:
        raise SchemaError(
            f"{path}: missing input column(s) {missing}; the model takes {signature.input_names}", column=missing[0]
        )
    if keep_inputs:
        _check_clash(columns, signature)


def _check_clash(columns: list[str], signature: Signature) -> None:
    clash = [c for c in signature.output_names if c in columns]
    if clash:
        raise SchemaError(
            f"--keep-inputs: input column(s) {clash} have the names of model outputs; rename them in the input",
            column=clash[0],
        )


def _predict_batch(
    artifact: Artifact, batch: Batch, outputs: pa.Schema, keep_inputs: bool, start: int, path: Path
) -> pa.Table:
    try:
        result = artifact.predict(batch.frame())
    except SchemaError as exc:
        # The codec counts rows from 0 within the batch: name the file and the row in it (1 = first data row).
        message = re.sub(r"\bat row (\d+)", lambda m: f"at data row {start + int(m.group(1)) + 1}", str(exc))
        raise SchemaError(f"{path}: {message}", column=exc.column) from exc
    # No pandas metadata: it would describe the batch frame, not the file being written.
    table = pa.Table.from_pandas(result, schema=outputs, preserve_index=False).replace_schema_metadata(None)
    if not keep_inputs:
        return table
    inputs = batch.table().replace_schema_metadata(None)
    _check_clash(inputs.column_names, artifact.signature)
    for field in outputs:
        inputs = inputs.append_column(field, table.column(field.name))
    return inputs
