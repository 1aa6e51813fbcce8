"""``parity skew``: training-serving skew of a model on serving data (lake, Parquet or CSV)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from parity.cli._context import get_state, load_verified
from parity.cli._render import err, out
from parity.cli._skew_render import EXIT_ALERT, EXIT_NO_DATA, EXIT_WARN, exit_code, render_report
from parity.skew import Reference, skew_report, write_html

__all__ = ["register", "skew_cmd"]

EPILOG = (
    f"Exit codes with --fail-on: 0 below the level, {EXIT_WARN} worst severity warn (--fail-on warn), "
    f"{EXIT_ALERT} alert, {EXIT_NO_DATA} no serving row in the window. Errors keep the codes of `parity --help`."
)


def register(app: typer.Typer) -> None:
    """Add the ``skew`` command to ``app``."""
    app.command("skew", epilog=EPILOG)(skew_cmd)


def skew_cmd(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            metavar="REF",
            help="Artifact directory, registry ref (name, name:VERSION, name@ALIAS), or a saved profile .json.",
        ),
    ],
    data: Annotated[
        str,
        typer.Option("--data", help="Lake root, directory of Parquet, a Parquet file, or a CSV file (or s3:// URL)."),
    ],
    since: Annotated[
        str | None, typer.Option("--since", help="Keep rows with ts >= this ISO time (UTC if naive).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Keep rows with ts < this ISO time.")] = None,
    by: Annotated[
        Literal["day", "hour"] | None, typer.Option("--by", help="Also compute every metric per day or hour window.")
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the JSON report here ('-': to stdout, instead of the table).")
    ] = None,
    fail_on: Annotated[
        Literal["warn", "alert"] | None,
        typer.Option("--fail-on", help="Exit non-zero when this severity is reached (see the exit codes below)."),
    ] = None,
    thresholds: Annotated[
        Path | None, typer.Option("--thresholds", help="TOML file of per-metric / per-feature warn and alert levels.")
    ] = None,
    min_rows: Annotated[
        int | None, typer.Option("--min-rows", min=1, help="Values a column needs before it may warn (default 100).")
    ] = None,
    replay: Annotated[
        bool, typer.Option("--replay", help="Re-run logged inputs through the model of their version; compare outputs.")
    ] = False,
    join: Annotated[
        str | None, typer.Option("--join", metavar="KEY", help="Id column joining serving rows to --offline rows.")
    ] = None,
    offline: Annotated[
        Path | None, typer.Option("--offline", help="Offline copy of the same entities' features (Parquet or CSV).")
    ] = None,
    processes: Annotated[
        int | None, typer.Option("--processes", min=1, help="Profiling processes (default: min(files, cores)).")
    ] = None,
    trusted: Annotated[
        bool,
        typer.Option("--trusted", help="Allow loading non-portable artifacts (their Python payload can run code)."),
    ] = False,
    engine: Annotated[
        str,
        typer.Option("--engine", help="Profiling engine for Parquet data: pyarrow, dask or spark (same profile)."),
    ] = "pyarrow",
) -> None:
    """Compare serving data with the model's training profile: drift, schema, and row-level mismatches."""
    state = get_state(ctx)
    registry = state.registry()
    if ref.endswith(".json") and Path(ref).is_file():
        reference = Reference.from_file(ref)
    else:
        reference = Reference.from_artifact(load_verified(ref, registry, trusted=trusted))
    report = skew_report(
        reference,
        data,
        since=since,
        until=until,
        by=by,
        thresholds=thresholds,
        min_rows=min_rows,
        replay=replay,
        join=join,
        offline=offline,
        processes=processes,
        registry=registry,
        trusted=trusted,
        backend=engine,  # type: ignore[arg-type]  # skew_report names the choices when it is wrong
    )
    to_stdout = json_path is not None and str(json_path) == "-"
    if to_stdout:
        sys.stdout.write(report.dumps() + "\n")
        sys.stdout.flush()
    else:
        out.print(render_report(report, limit=40))
        if json_path is not None:
            report.to_json(json_path)
    if html is not None:
        write_html(report, html)
    if not state.quiet:
        written = [str(p) for p in (html, None if to_stdout else json_path) if p is not None]
        if written:
            err.print(f"wrote {', '.join(written)}", highlight=False)
    code = exit_code(report, fail_on)
    if code:
        raise typer.Exit(code)
