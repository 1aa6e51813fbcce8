"""``parity batch``: score a dataset with an artifact on local cores, Dask or Spark."""

from __future__ import annotations

from typing import Annotated

import typer

from parity.batch import ENGINES, score
from parity.cli._context import get_state, resolve_verified
from parity.cli._render import err, print_json, row_progress

__all__ = ["batch_cmd", "register"]


def register(app: typer.Typer) -> None:
    """Add ``batch`` to ``app``."""
    app.command("batch")(batch_cmd)


def _engine(value: str) -> str:
    if value not in ENGINES:
        raise typer.BadParameter(f"must be one of {', '.join(ENGINES)}, got {value!r}")
    return value


def batch_cmd(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="Artifact directory or registry ref.")],
    input_url: Annotated[str, typer.Option("--input", "-i", help="Parquet/CSV file or directory (or URL).")],
    output_url: Annotated[
        str, typer.Option("--output", "-o", help="Parquet output: a .parquet file (local) or a directory; must be new.")
    ],
    engine: Annotated[str, typer.Option("--engine", help="local, spark or dask.", callback=_engine)] = "local",
    key: Annotated[
        str | None, typer.Option("--key", help="Comma-separated columns copied to the output beside the outputs.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per record batch (local).")] = 65_536,
    trusted: Annotated[bool, typer.Option("--trusted", help="Allow a non-portable artifact.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Score a dataset in record batches and write Parquet with the key columns and the model's outputs."""
    state = get_state(ctx)
    resolved = resolve_verified(ref, state.registry())
    keys = [k.strip() for k in key.split(",") if k.strip()] if key else []
    with row_progress(disable=state.quiet or json_out) as progress:
        task = progress.add_task("batch", total=None)
        result = score(
            resolved.path,
            input_url,
            output_url,
            engine=engine,  # type: ignore[arg-type]  # checked by the callback
            keys=keys,
            batch_size=batch_size,
            trusted=trusted,
            progress=lambda n: progress.advance(task, n),
        )
    if json_out:
        print_json({"rows": result.rows, "output": result.output, "engine": result.engine})
    elif not state.quiet:
        err.print(f"wrote {result.rows:,} rows to {result.output} ({result.engine} engine)", soft_wrap=True)
