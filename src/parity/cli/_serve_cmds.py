"""``parity serve``: the typer command function; the CLI app adds it with ``register(app)``.

``python -m parity.server`` runs it alone (:func:`main`). Importing this module imports the server
package, so the CLI registers it only when the `serve` extra is installed.

Every option can also come from a ``PARITY_<OPTION>`` environment variable (``--lake-overflow``
-> ``PARITY_LAKE_OVERFLOW``) or from a TOML file given with ``--config`` whose keys are the option
names (``lake-overflow = "shed"`` or ``lake_overflow``), optionally under a ``[serve]`` table.
Precedence: command line, then environment, then config file, then the default.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from parity.cli._errors import with_flags
from parity.errors import ParityError
from parity.server._batching import DEFAULT_MAX_BATCH_DELAY_MS, DEFAULT_MAX_BATCH_SIZE
from parity.server._config import DEFAULT_LAKE, ServerConfig

__all__ = ["ENV_PREFIX", "main", "register", "serve"]

ENV_PREFIX = "PARITY_"


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command("serve")(serve)


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Eager callback: the TOML file's values become the defaults of every other option."""
    if not value:
        return value
    try:
        data = tomllib.loads(Path(value).read_text(encoding="utf-8"))
    except OSError as exc:
        raise typer.BadParameter(f"cannot read the config file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise typer.BadParameter(f"the config file is not valid TOML: {exc}") from None
    table: Any = data.get("serve", data)
    if not isinstance(table, dict):
        raise typer.BadParameter("the [serve] entry of the config file must be a table")
    known = {p.name for p in ctx.command.params if p.name}
    defaults: dict[str, Any] = {}
    for key, item in table.items():
        name = str(key).replace("-", "_")
        if name not in known or name == "config":
            raise typer.BadParameter(f"unknown option {key!r} in the config file; known: {sorted(known - {'config'})}")
        if name == "refs" and isinstance(item, str):
            item = item.split()  # one string of space-separated refs, as in $PARITY_REFS
        defaults[name] = item
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _env(name: str) -> str:
    return ENV_PREFIX + name.upper()


def serve(
    ctx: typer.Context,
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Models to serve: artifact path, name, name:N or name@alias.", envvar=_env("refs"), show_default=False
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="TOML file with option values.",
            is_eager=True,
            callback=_load_config,
            envvar=_env("config"),
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.", envvar=_env("host"))] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="REST port.", envvar=_env("port"))] = 8080,
    grpc_port: Annotated[
        int, typer.Option("--grpc-port", help="gRPC port (0 disables gRPC).", envvar=_env("grpc_port"))
    ] = 8081,
    admin_port: Annotated[
        int | None,
        typer.Option(
            "--admin-port",
            help="Health and metrics port (default: REST port + 2; 0 disables).",
            envvar=_env("admin_port"),
        ),
    ] = None,
    lake: Annotated[
        str,
        typer.Option(
            "--lake",
            help="Prediction lake: a directory or s3://bucket/prefix ('' or 'none' disables it).",
            envvar=_env("lake"),
        ),
    ] = DEFAULT_LAKE,
    lake_overflow: Annotated[
        str,
        typer.Option(
            "--lake-overflow",
            help="Full lake queue: block (wait, bounded by the deadline), shed (503) or drop (count and log).",
            envvar=_env("lake_overflow"),
        ),
    ] = "block",
    lake_durability: Annotated[
        str,
        typer.Option(
            "--lake-durability",
            help="buffered, or ack (answer only once the rows are fsynced in the write-ahead log).",
            envvar=_env("lake_durability"),
        ),
    ] = "buffered",
    lake_flush_interval: Annotated[
        float,
        typer.Option(
            "--lake-flush-interval",
            min=0.01,
            help="Seconds before a lake file is written.",
            envvar=_env("lake_flush_interval"),
        ),
    ] = 2.0,
    lake_max_rows: Annotated[
        int, typer.Option("--lake-max-rows", min=1, help="Lake queue bound in rows.", envvar=_env("lake_max_rows"))
    ] = 1_000_000,
    lake_max_bytes: Annotated[
        int, typer.Option("--lake-max-bytes", min=1, help="Lake queue bound in bytes.", envvar=_env("lake_max_bytes"))
    ] = 512 * 1024 * 1024,
    lake_file_bytes: Annotated[
        int,
        typer.Option(
            "--lake-file-bytes", min=1, help="Lake file rotation size (Arrow bytes).", envvar=_env("lake_file_bytes")
        ),
    ] = 64 * 1024 * 1024,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Server processes sharing the port.", envvar=_env("workers"))
    ] = 1,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="PARITY_TOKEN", help="Require 'Authorization: Bearer <token>' (not on health probes)."
        ),
    ] = None,
    token_file: Annotated[
        str | None,
        typer.Option(
            "--token-file", help="Read the bearer token from this file (kept out of ps).", envvar=_env("token_file")
        ),
    ] = None,
    max_batch_size: Annotated[
        int,
        typer.Option(
            "--max-batch-size",
            min=1,
            help="Rows per merged batch (1 disables batching).",
            envvar=_env("max_batch_size"),
        ),
    ] = DEFAULT_MAX_BATCH_SIZE,
    max_batch_delay_ms: Annotated[
        float,
        typer.Option(
            "--max-batch-delay-ms", min=0.0, help="Longest wait for a batch to fill.", envvar=_env("max_batch_delay_ms")
        ),
    ] = DEFAULT_MAX_BATCH_DELAY_MS,
    max_inflight: Annotated[
        int,
        typer.Option(
            "--max-inflight",
            min=1,
            help="Requests per model version a process has started on (from before decoding) before 503.",
            envvar=_env("max_inflight"),
        ),
    ] = 512,
    max_request_bytes: Annotated[
        int,
        typer.Option(
            "--max-request-bytes", min=1, help="Largest request body (413 above).", envvar=_env("max_request_bytes")
        ),
    ] = 32 * 1024 * 1024,
    request_timeout: Annotated[
        float,
        typer.Option(
            "--request-timeout",
            min=0.001,
            help="Seconds from arrival before a request fails with 504.",
            envvar=_env("request_timeout"),
        ),
    ] = 30.0,
    drain: Annotated[
        float,
        typer.Option(
            "--drain", min=0.0, help="Seconds of not-ready serving after SIGTERM before stopping.", envvar=_env("drain")
        ),
    ] = 5.0,
    header_timeout: Annotated[
        float,
        typer.Option(
            "--header-timeout",
            min=0.001,
            help="Seconds a client may take to send its headers.",
            envvar=_env("header_timeout"),
        ),
    ] = 5.0,
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout", min=0.001, help="Seconds a client may take to send its body.", envvar=_env("body_timeout")
        ),
    ] = 10.0,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            "--allowed-hosts",
            help="Comma-separated Host headers to answer ('*' any; default: loopback names when bound to loopback).",
            envvar=_env("allowed_hosts"),
        ),
    ] = None,
    limit_concurrency: Annotated[
        int,
        typer.Option(
            "--limit-concurrency",
            min=1,
            help="Connections + requests before 503 (not health).",
            envvar=_env("limit_concurrency"),
        ),
    ] = 2048,
    reload_interval: Annotated[
        float,
        typer.Option(
            "--reload-interval",
            min=0.0,
            help="Seconds between registry polls (0: no hot reload).",
            envvar=_env("reload_interval"),
        ),
    ] = 5.0,
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="Registry root (default $PARITY_HOME or ./.parity).", envvar=_env("registry")),
    ] = None,
    enable_repository_api: Annotated[
        bool,
        typer.Option(
            "--enable-repository-api",
            help="Serve the load/unload endpoints (needs a token).",
            envvar=_env("enable_repository_api"),
        ),
    ] = False,
    trusted: Annotated[
        bool, typer.Option("--trusted", help="Allow non-portable (pickled) artifacts.", envvar=_env("trusted"))
    ] = False,
    allow_failed_parity: Annotated[
        bool,
        typer.Option(
            "--allow-failed-parity",
            help="Serve versions whose parity check FAILED (warned).",
            envvar=_env("allow_failed_parity"),
        ),
    ] = False,
    extra_inputs: Annotated[
        str,
        typer.Option(
            "--extra-inputs",
            help="Inputs the model does not take: reject (400) or ignore.",
            envvar=_env("extra_inputs"),
        ),
    ] = "reject",
    tls_cert: Annotated[
        str | None, typer.Option("--tls-cert", help="TLS certificate (PEM).", envvar=_env("tls_cert"))
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option("--tls-key", help="TLS private key (PEM).", envvar=_env("tls_key"))
    ] = None,
    root_path: Annotated[
        str,
        typer.Option(
            "--root-path", help="URL prefix a reverse proxy strips (ASGI root_path).", envvar=_env("root_path")
        ),
    ] = "",
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            help="Proxies whose X-Forwarded-* headers are trusted (comma-separated, '*').",
            envvar=_env("forwarded_allow_ips"),
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.", envvar=_env("log_level"))
    ] = "info",
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (uvicorn access log).", envvar=_env("access_log"))
    ] = False,
    log_values: Annotated[
        bool,
        typer.Option(
            "--log-values",
            help="Quote offending input values in error messages (debugging).",
            envvar=_env("log_values"),
        ),
    ] = False,
    log_requests: Annotated[
        bool,
        typer.Option(
            "--log-requests", help="One structured JSON line per inference request.", envvar=_env("log_requests")
        ),
    ] = False,
) -> None:
    """Serve models over REST (Open Inference Protocol V2, KServe V1) and gRPC."""
    from parity.server._app import serve as run

    if registry is None:
        # Under the full CLI, `parity --registry DIR serve ...` sets the root on the context object.
        root = getattr(ctx.obj, "registry_root", None)
        registry = str(root) if root is not None else None
    try:
        cfg = ServerConfig(
            refs=tuple(refs or ()),
            host=host,
            port=port,
            grpc_port=grpc_port or None,
            admin_port=admin_port,
            lake=None if lake.strip().lower() in ("", "none", "off") else lake,
            lake_overflow=lake_overflow,
            lake_durability=lake_durability,
            lake_flush_interval_s=lake_flush_interval,
            lake_max_rows=lake_max_rows,
            lake_max_bytes=lake_max_bytes,
            lake_file_bytes=lake_file_bytes,
            workers=workers,
            token=token,
            token_file=token_file,
            max_batch_size=max_batch_size,
            max_batch_delay_ms=max_batch_delay_ms,
            max_inflight=max_inflight,
            max_request_bytes=max_request_bytes,
            request_timeout_s=request_timeout,
            drain_s=drain,
            reload_interval_s=reload_interval,
            header_timeout_s=header_timeout,
            body_timeout_s=body_timeout,
            allowed_hosts=None if allowed_hosts is None else tuple(allowed_hosts.split(",")),
            limit_concurrency=limit_concurrency,
            registry=registry,
            enable_repository_api=enable_repository_api,
            tls_cert=tls_cert,
            tls_key=tls_key,
            trusted=trusted,
            allow_failed_parity=allow_failed_parity,
            extra_inputs=extra_inputs,
            root_path=root_path,
            forwarded_allow_ips=forwarded_allow_ips,
            log_level=log_level,
            access_log=access_log,
            log_requests=log_requests,
            log_values=log_values,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    run(cfg)


def main() -> None:
    """Run the ``serve`` command alone (a ParityError becomes one line on stderr and exit code 1)."""
    try:
        typer.run(serve)
    except ParityError as exc:
        print(f"error: {with_flags(exc)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # uvicorn re-raises SIGINT once it has shut down gracefully
        sys.exit(130)
