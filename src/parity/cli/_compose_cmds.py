"""``parity compose serve|check|explain|replay|reference``: business rules over several model endpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from parity._io import atomic_write_json
from parity.cli._render import err, out, print_json, table
from parity.compose import explain, load_composition, reference, replay
from parity.skew._data import parse_time

__all__ = ["register"]

compose_app = typer.Typer(
    name="compose",
    help="Compositions: plain Python business rules over several model endpoints, served and explained.",
    no_args_is_help=True,
)

Spec = Annotated[str, typer.Argument(metavar="MODULE:OBJECT", help="The Composition, e.g. rules:composition.")]


def register(app: typer.Typer) -> None:
    """Add the ``compose`` command group to ``app``."""
    app.add_typer(compose_app)


@compose_app.command("check")
def check_cmd(
    spec: Spec,
    timeout: Annotated[float, typer.Option("--timeout", min=0.01, help="Seconds per metadata call.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was validated as JSON.")] = False,
) -> None:
    """Validate the declaration against every downstream's live metadata (for CI); exit 8 on a mismatch."""
    comp = load_composition(spec)
    found = comp.check(timeout_s=timeout)
    if as_json:
        print_json({"composition": comp.describe(), "validated": found})
        return
    rows = [
        (ep, role, str(meta["model"]) if meta else "stub", ", ".join(meta["versions"]) if meta else "")
        for ep, roles in found.items()
        for role, meta in roles.items()
    ]
    out.print(table(f"composition {comp.name} v{comp.version}: OK", ["endpoint", "role", "model", "versions"], rows))


@compose_app.command("serve")
def serve_cmd(
    ctx: typer.Context,
    spec: Spec,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="REST port.")] = 8090,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="gRPC port (0 disables gRPC).")] = 8091,
    lake: Annotated[str, typer.Option("--lake", help="Lake directory for decisions ('none' disables it).")] = (
        "./.parity/lake"
    ),
    token: Annotated[
        str | None, typer.Option("--token", envvar="PARITY_TOKEN", help="Require 'Authorization: Bearer <token>'.")
    ] = None,
    max_request_bytes: Annotated[int, typer.Option("--max-request-bytes", min=1, help="Largest body (413).")] = (
        32 * 1024 * 1024
    ),
    request_timeout: Annotated[float, typer.Option("--request-timeout", min=0.001, help="Seconds before 504.")] = 30.0,
    limit_concurrency: Annotated[int, typer.Option("--limit-concurrency", min=1, help="Connections (503 above).")] = (
        2048
    ),
    tls_cert: Annotated[str | None, typer.Option("--tls-cert", help="TLS certificate (PEM).")] = None,
    tls_key: Annotated[str | None, typer.Option("--tls-key", help="TLS private key (PEM).")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    skip_check: Annotated[bool, typer.Option("--skip-check", help="Start even if validation fails (no!).")] = False,
) -> None:
    """Serve a composition over REST (OIP V2, KServe V1) and gRPC, on the model server stack."""
    from parity.server._compose import serve_composition
    from parity.server._config import ServerConfig

    comp = load_composition(spec)
    if not skip_check:
        comp.check()  # one clear error before the server starts (start-up validates again)
    try:
        config = ServerConfig(
            refs=(),
            host=host,
            port=port,
            grpc_port=grpc_port or None,
            lake=None if lake.strip().lower() in ("", "none", "off") else lake,
            token=token,
            max_request_bytes=max_request_bytes,
            request_timeout_s=request_timeout,
            limit_concurrency=limit_concurrency,
            tls_cert=tls_cert,
            tls_key=tls_key,
            log_level=log_level,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    serve_composition(comp, config)


@compose_app.command("explain")
def explain_cmd(
    request_id: Annotated[str, typer.Argument(metavar="REQUEST_ID", help="The X-Request-ID of the decision.")],
    lake: Annotated[Path, typer.Option("--lake", help="Lake root the composition logged to.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the lineage as JSON.")] = False,
) -> None:
    """Print how one decision was made: inputs, each downstream's answer, route, fallback, decision."""
    found = explain(lake, request_id)
    if as_json:
        print_json(found)
        return
    out.print(
        f"[bold]request {found['request_id']}[/bold]: composition {found['composition']} v{found['version']}, "
        f"{found['latency_ms']:.2f} ms, at {found['ts']}"
    )
    for i, row in enumerate(found["rows"]):
        out.print(f"\n[bold]row {i}[/bold] inputs: {json.dumps(row['inputs'], default=str)}")
        rows = []
        for ep, d in row["downstreams"].items():
            route = d["route"] or "not called"
            outputs = json.dumps(d["outputs"], default=str)
            latency = "" if d["latency_ms"] is None else f"{d['latency_ms']:.2f}"
            rows.append((ep, d["model"] or "", d["version"] or "", route, d["fallback"] or "-", latency, outputs))
        out.print(table("downstreams", ["endpoint", "model", "version", "route", "fallback", "ms", "outputs"], rows))
        out.print(f"decision: {json.dumps(row['decision'], default=str)}")
    for s in found["shadows"]:
        out.print(f"\nshadow {s['model']}: outputs {s['outputs']} (primary {s['primary']}) {s['error']}")


@compose_app.command("replay")
def replay_cmd(
    spec: Spec,
    lake: Annotated[Path, typer.Option("--lake", help="Lake root the composition logged to.")],
    since: Annotated[str | None, typer.Option("--since", help="Rows with ts >= this ISO time.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Rows with ts < this ISO time.")] = None,
    version: Annotated[
        int | None, typer.Option("--version", help="Only decisions of this composition version.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    fail_on_change: Annotated[bool, typer.Option("--fail-on-change", help="Exit 10 if any decision changes.")] = False,
) -> None:
    """Re-run logged requests through the current rules (downstreams answer what they logged); show changes."""
    comp = load_composition(spec)
    result = replay(
        comp, lake, since=parse_time(since, "--since"), until=parse_time(until, "--until"), version=version
    ).to_dict()
    if as_json:
        print_json(result)
    else:
        out.print(
            f"replayed {result['requests']} request(s), {result['rows']} row(s) of {comp.name}: "
            f"[bold]{result['changed_rows']}[/bold] decision(s) would change ({result['changed_share']:.1%})"
        )
        for name, n in result["by_output"].items():
            out.print(f"  {name}: {n} row(s) change")
        rows = [
            (e["request_id"], e["row"], json.dumps(e["before"], default=str), json.dumps(e["after"], default=str))
            for e in result["examples"]
        ]
        if rows:
            out.print(table("examples", ["request", "row", "logged decision", "current rules"], rows))
    if fail_on_change and result["changed_rows"]:
        raise typer.Exit(10)


@compose_app.command("reference")
def reference_cmd(
    spec: Spec,
    data: Annotated[Path, typer.Option("--data", help="Reference inputs (CSV or Parquet), e.g. the training rows.")],
    output: Annotated[Path, typer.Option("--out", help="Where to write the reference JSON for `parity skew`.")],
) -> None:
    """Profile inputs, downstream outputs and decisions on reference data, for `parity skew REF.json --data LAKE`."""
    import pandas as pd

    comp = load_composition(spec)
    frame = pd.read_parquet(data) if data.suffix == ".parquet" else pd.read_csv(data)
    try:
        doc = reference(comp, frame)
    finally:
        comp.close()  # stop its in-process runners (a shadow's worker task) before the loop goes
    atomic_write_json(output, doc)
    err.print(f"wrote {output} ({len(frame)} reference rows)")
