"""``parity serve``: the typer command function; the CLI app adds it with ``register(app)``.

``python -m parity.server`` runs it alone (:func:`main`). Importing this module imports the server
package, so the CLI registers it only when the `serve` extra is installed.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from parity.cli._errors import with_flags
from parity.errors import ParityError
from parity.server._batching import DEFAULT_MAX_BATCH_DELAY_MS, DEFAULT_MAX_BATCH_SIZE
from parity.server._config import DEFAULT_LAKE, ServerConfig

__all__ = ["main", "register", "serve"]


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    refs: Annotated[list[str], typer.Argument(help="Models to serve: artifact path, name, name:N or name@alias.")],
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="REST port.")] = 8080,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="gRPC port (0 disables gRPC).")] = 8081,
    lake: Annotated[
        str,
        typer.Option("--lake", help="Prediction lake: a directory or s3://bucket/prefix ('' or 'none' disables it)."),
    ] = DEFAULT_LAKE,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Server processes sharing the port.")] = 1,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="PARITY_TOKEN", help="Require 'Authorization: Bearer <token>' (not on health probes)."
        ),
    ] = None,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", min=1, help="Rows per merged batch (1 disables batching).")
    ] = DEFAULT_MAX_BATCH_SIZE,
    max_batch_delay_ms: Annotated[
        float, typer.Option("--max-batch-delay-ms", min=0.0, help="Longest wait for a batch to fill.")
    ] = DEFAULT_MAX_BATCH_DELAY_MS,
    max_request_bytes: Annotated[
        int, typer.Option("--max-request-bytes", min=1, help="Largest request body (413 above).")
    ] = 32 * 1024 * 1024,
    request_timeout: Annotated[
        float, typer.Option("--request-timeout", min=0.001, help="Seconds before a request fails with 504.")
    ] = 30.0,
    reload_interval: Annotated[
        float, typer.Option("--reload-interval", min=0.0, help="Seconds between registry polls (0: no hot reload).")
    ] = 5.0,
    registry: Annotated[
        str | None, typer.Option("--registry", help="Registry root (default $PARITY_HOME or ./.parity).")
    ] = None,
    trusted: Annotated[bool, typer.Option("--trusted", help="Allow non-portable (pickled) artifacts.")] = False,
    allow_failed_parity: Annotated[
        bool, typer.Option("--allow-failed-parity", help="Serve versions whose parity check FAILED (warned).")
    ] = False,
    extra_inputs: Annotated[
        str, typer.Option("--extra-inputs", help="Inputs the model does not take: reject (400) or ignore.")
    ] = "reject",
    tls_cert: Annotated[str | None, typer.Option("--tls-cert", help="TLS certificate (PEM).")] = None,
    tls_key: Annotated[str | None, typer.Option("--tls-key", help="TLS private key (PEM).")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request (uvicorn access log).")] = False,
    header_timeout: Annotated[
        float, typer.Option("--header-timeout", min=0.001, help="Seconds a client may take to send its headers.")
    ] = 5.0,
    body_timeout: Annotated[
        float, typer.Option("--body-timeout", min=0.001, help="Seconds a client may take to send its body.")
    ] = 10.0,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            "--allowed-hosts",
            help="Comma-separated Host headers to answer ('*' any; default: loopback names when bound to loopback).",
        ),
    ] = None,
    limit_concurrency: Annotated[
        int, typer.Option("--limit-concurrency", min=1, help="Connections + requests before 503 (not health).")
    ] = 2048,
) -> None:
    """Serve models over REST (Open Inference Protocol V2, KServe V1) and gRPC."""
    from parity.server._app import serve as run

    if registry is None:
        # Under the full CLI, `parity --registry DIR serve ...` sets the root on the context object.
        root = getattr(ctx.obj, "registry_root", None)
        registry = str(root) if root is not None else None

    try:
        config = ServerConfig(
            refs=tuple(refs),
            host=host,
            port=port,
            grpc_port=grpc_port or None,
            lake=None if lake.strip().lower() in ("", "none", "off") else lake,
            workers=workers,
            token=token,
            max_batch_size=max_batch_size,
            max_batch_delay_ms=max_batch_delay_ms,
            max_request_bytes=max_request_bytes,
            request_timeout_s=request_timeout,
            reload_interval_s=reload_interval,
            registry=registry,
            tls_cert=tls_cert,
            tls_key=tls_key,
            trusted=trusted,
            allow_failed_parity=allow_failed_parity,
            extra_inputs=extra_inputs,
            log_level=log_level,
            access_log=access_log,
            header_timeout_s=header_timeout,
            body_timeout_s=body_timeout,
            allowed_hosts=None if allowed_hosts is None else tuple(allowed_hosts.split(",")),
            limit_concurrency=limit_concurrency,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    run(config)


def main() -> None:
    """Run the ``serve`` command alone (a ParityError becomes one line on stderr and exit code 1)."""
    try:
        typer.run(serve)
    except ParityError as exc:
        print(f"error: {with_flags(str(exc))}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # uvicorn re-raises SIGINT once it has shut down gracefully
        sys.exit(130)
