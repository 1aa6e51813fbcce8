"""Assemble and run the server: DataPlane + lake + REST app (+ gRPC adapter) under uvicorn.

``serve(config)`` runs uvicorn with uvloop and httptools, access log off, bounded concurrency
and a graceful shutdown in two steps. On SIGTERM the process reports not ready at once and keeps
serving, in-flight and newly arriving requests alike, for ``drain_s`` seconds (load balancers
take a moment to notice), answering with ``Connection: close``; then uvicorn stops accepting
connections, lets in-flight requests finish, gRPC stops, the batchers drain and the prediction
lake writes everything it acknowledged; exit 0. The lake's backpressure (``block``) and its
durability (``ack``) are the same queue, so "answered 200" and "in the lake" stay one fact
through the drain. Health and metrics also answer on the admin port (:mod:`._admin`).
``--workers N`` runs N processes sharing one listening socket (uvicorn's supervisor; the config
reaches them through $PARITY_SERVER_CONFIG, the token through a private file, metrics are summed
in prometheus_client's multiprocess mode); each process has its own DataPlane, hot reloader and
lake files (names are unique per file), and each starts its own gRPC
server on the shared gRPC port (gRPC sets SO_REUSEPORT). After the models load, the heap is
frozen (``gc.freeze``) so full collections stay cheap: it cut p99 latency at 32 connections
from ~10-30 ms to ~4 ms on the benchmark.

gRPC: if ``config.grpc_port`` is set, ``parity.server._grpc.start_grpc(dataplane, config)`` is
called inside the running event loop after the models loaded. It may be sync or async and may
return an object with a ``stop(grace)`` method (sync or async), called on shutdown. If the
module does not exist, gRPC is skipped with a warning.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import inspect
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.supervisors import Multiprocess

from parity._lake_s3 import lake_writer
from parity.codec import echo_values
from parity.errors import ParityError
from parity.lake import LakeWriter
from parity.registry import Registry
from parity.server._admin import AdminServer
from parity.server._config import ENV_CONFIG, ServerConfig
from parity.server._dataplane import DataPlane
from parity.server._errors import AddressInUse
from parity.server._http import GuardedHttpProtocol, HttpLimits
from parity.server._logging import configure_logging
from parity.server._rest import RestSettings, build_rest_app

__all__ = ["app_from_env", "create_app", "serve"]

log = logging.getLogger("parity.server")


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _start_grpc(dataplane: DataPlane, config: ServerConfig) -> Any:
    if not config.grpc_port:
        return None
    try:
        module = importlib.import_module("parity.server._grpc")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(("parity.server._grpc", "parity.server.proto", "grpc")):
            raise
        log.warning("gRPC adapter not available (%s); serving REST only", exc)
        return None
    server = await _maybe_await(module.start_grpc(dataplane, config))
    log.info("gRPC listening on %s:%s", config.host, config.grpc_port)
    return server


async def _stop_grpc(server: Any, grace: float) -> None:
    if server is None or not hasattr(server, "stop"):
        return
    try:
        await _maybe_await(server.stop(grace))
    except Exception:
        log.exception("stopping the gRPC server failed")


def make_lake(config: ServerConfig) -> LakeWriter | None:
    """The lake writer of ``config`` (None when the lake is off); LakeError if its path is unusable."""
    if not config.lake:
        return None
    return lake_writer(  # a directory, or s3://bucket/prefix (a local buffer plus an uploader)
        config.lake,
        flush_interval_s=config.lake_flush_interval_s,
        max_queue_rows=config.lake_max_rows,
        max_queue_bytes=config.lake_max_bytes,
        file_bytes=config.lake_file_bytes,
        overflow=config.lake_overflow,  # validated by ServerConfig
        durability=config.lake_durability,
    )


DataPlaneFactory = Callable[[ServerConfig, LakeWriter | None], DataPlane]
"""Builds the data plane an app serves (default: models of ``config.refs``; a composition's is another)."""


def create_app(config: ServerConfig, make_dataplane: DataPlaneFactory | None = None) -> Starlette:
    """Build the ASGI app of ``config``; models load when the app's lifespan starts."""
    echo_values(config.log_values)  # errors name the field and type; values only when asked
    lake = make_lake(config)
    make = make_dataplane or (lambda cfg, lk: DataPlane.from_config(cfg, lake=lk))
    dataplane = make(config, lake)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        grpc_server = None
        admin: AdminServer | None = None
        try:
            try:
                await dataplane.start(config.reload_interval_s)
                if config.admin_port:
                    admin = AdminServer(dataplane, config.host, config.admin_port)
                    admin.start()
                grpc_server = await _start_grpc(dataplane, config)
            except Exception as exc:
                app.state.startup_error = exc  # serve() re-raises it for the CLI's exit-code table
                raise
            _install_drain(dataplane, config.drain_s)
            # Everything loaded so far (libraries, models) lives as long as the process: moving it
            # out of the collector's generations makes full collections cheap (lower p99).
            gc.collect()
            gc.freeze()
            log.info(
                "ready: models %s, REST on %s:%s", dataplane.repository.names(), config.host, config.port,
                extra={"lake": config.lake, "max_batch_size": config.max_batch_size, "workers": config.workers},
            )  # fmt: skip
            yield
        finally:
            dataplane.begin_shutdown()
            await _stop_grpc(grpc_server, min(config.graceful_timeout_s, 10.0))
            await dataplane.stop()
            if lake is not None:
                await asyncio.to_thread(lake.close)
                log.info("prediction lake closed: %d row(s) written, %d dropped", lake.written, lake.dropped)
            if admin is not None:
                admin.stop()

    settings = RestSettings(
        token=config.token,
        max_request_bytes=config.max_request_bytes,
        request_timeout_s=config.request_timeout_s,
        allowed_hosts=config.hosts,
        repository_api=config.enable_repository_api,
        log_requests=config.log_requests,
    )
    app = build_rest_app(dataplane, settings, lifespan=lifespan)
    app.add_middleware(_OneLineStartupErrors)
    app.state.startup_error = None
    app.state.dataplane = dataplane
    app.state.lake = lake
    app.state.config = config
    return app


class _OneLineStartupErrors:
    """ASGI middleware: a ParityError failing startup is logged as its message, not as a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass every scope on; rewrite a lifespan startup failure's message."""
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        state = scope.get("app")

        async def send_one_line(message: Message) -> None:
            error = getattr(getattr(state, "state", None), "startup_error", None)
            if message["type"] == "lifespan.startup.failed" and isinstance(error, ParityError | OSError):
                message = {**message, "message": f"startup failed: {error}"}
            await send(message)

        await self.app(scope, receive, send_one_line)


def app_from_env() -> Starlette:
    """App factory for worker processes: the config travels in $PARITY_SERVER_CONFIG."""
    config = ServerConfig.from_json(os.environ[ENV_CONFIG])
    configure_logging(config.log_level)
    return create_app(config)


class _Server(uvicorn.Server):
    """uvicorn server that reports not-ready as soon as it starts shutting down."""

    def __init__(self, config: uvicorn.Config, dataplane: DataPlane) -> None:
        super().__init__(config)
        self._dataplane = dataplane

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Report not ready, then let uvicorn shut down gracefully (SIGTERM arrives here after the drain)."""
        self._dataplane.begin_shutdown()
        super().handle_exit(sig, frame)


def _install_drain(dataplane: DataPlane, drain_s: float) -> None:
    """Wrap uvicorn's SIGTERM handler: report not ready at once, let uvicorn shut down ``drain_s`` later.

    Wrapping the installed handler (rather than subclassing uvicorn's Server) works the same in
    a single process and in every ``--workers`` child; a second SIGTERM stops at once.
    """
    original = signal.getsignal(signal.SIGTERM)
    if drain_s <= 0 or not callable(original):
        return
    loop = asyncio.get_running_loop()
    draining = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal draining
        dataplane.begin_shutdown()
        if draining:
            original(signum, frame)
            return
        draining = True
        log.info("SIGTERM: not ready; serving for %g s more, then shutting down", drain_s)
        loop.call_soon_threadsafe(loop.call_later, drain_s, original, signum, frame)

    signal.signal(signal.SIGTERM, handler)


def _uvicorn_options(config: ServerConfig) -> dict[str, Any]:
    return {
        "host": config.host,
        "port": config.port,
        "loop": "uvloop",
        "lifespan": "on",
        "access_log": config.access_log,
        "log_config": None,
        "log_level": config.log_level,
        "limit_concurrency": config.limit_concurrency,
        "http": GuardedHttpProtocol,
        "ws": "none",
        # Worker processes unpickle GuardedHttpProtocol (importing the server) before they answer the
        # supervisor's health pings: give a slow start on a busy node more than uvicorn's 5 s.
        "timeout_worker_healthcheck": 60,
        "backlog": 2048,
        "timeout_keep_alive": 30,
        "timeout_graceful_shutdown": config.graceful_timeout_s,
        "root_path": config.root_path,
        "proxy_headers": config.forwarded_allow_ips is not None,
        "forwarded_allow_ips": config.forwarded_allow_ips,
        "ssl_certfile": config.tls_cert,
        "ssl_keyfile": config.tls_key,
        "server_header": False,
    }


def _bind(host: str, port: int) -> socket.socket:
    """The listening REST socket (bound here so a busy port is one clear AddressInUse, not a log line)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise AddressInUse(f"cannot listen on {host}:{port}: {exc}") from None
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: Any, config: ServerConfig, **kwargs: Any) -> uvicorn.Config:
    ucfg = uvicorn.Config(app, **_uvicorn_options(config), **kwargs)
    # Read by GuardedHttpProtocol; an attribute of the Config survives the pickling of --workers N.
    ucfg.parity_http = HttpLimits(  # type: ignore[attr-defined]
        header_timeout_s=config.header_timeout_s,
        body_timeout_s=config.body_timeout_s,
        max_header_bytes=config.max_header_bytes,
    )
    return ucfg


def serve(config: ServerConfig, make_dataplane: DataPlaneFactory | None = None) -> None:
    """Run the server until SIGTERM/SIGINT (blocking); a ref that resolves to nothing raises a ParityError."""
    configure_logging(config.log_level)
    if make_dataplane is None:
        if not config.refs:
            raise ValueError("nothing to serve: pass at least one model reference (path, name, name:N or name@alias)")
        # Fail fast, with one clear error instead of a lifespan traceback, on a ref that resolves to nothing.
        registry = Registry(config.registry) if config.registry else Registry()
        for ref in config.refs:
            registry.path(ref)
    elif config.workers > 1:
        raise ValueError(f"a custom data plane (e.g. a composition) runs in one process; workers is {config.workers}")
    sock = _bind(config.host, config.port)
    if config.workers > 1:
        _serve_workers(config, sock)
        return
    app = create_app(config, make_dataplane)
    server = _Server(_uvicorn_config(app, config), app.state.dataplane)
    # uvicorn re-raises the signal it shut down on once it is done; a no-op handler turns that
    # into a normal return, so a graceful SIGTERM exits 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run(sockets=[sock])
    except SystemExit:  # uvicorn exits 3 when the lifespan startup failed
        if server.started or app.state.startup_error is None:
            raise
    if not server.started:
        error = app.state.startup_error
        if isinstance(error, ParityError):
            raise error  # the CLI maps it to its exit code (integrity 6, untrusted 7, ...)
        if isinstance(error, OSError):
            raise AddressInUse(str(error)) from None
        raise SystemExit(1)


def _serve_workers(config: ServerConfig, sock: socket.socket) -> None:
    """N worker processes on one socket (uvicorn's supervisor); metrics in multiprocess mode."""
    import shutil
    import tempfile

    from parity.server._metrics import MULTIPROC_ENV

    with tempfile.TemporaryDirectory(prefix="parity-metrics-") as metrics_dir:
        os.environ.setdefault(MULTIPROC_ENV, metrics_dir)
        token_dir = None
        if config.token and not config.token_file:
            # Workers read the token from a private file: it stays out of their environment and of `ps`.
            token_dir = tempfile.mkdtemp(prefix="parity-token-")
            path = os.path.join(token_dir, "token")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(config.token)
            config.token_file = path
        os.environ.pop("PARITY_TOKEN", None)
        os.environ[ENV_CONFIG] = config.to_json()
        try:
            ucfg = _uvicorn_config("parity.server._app:app_from_env", config, factory=True, workers=config.workers)
            Multiprocess(ucfg, sockets=[sock]).run()
        finally:
            if token_dir is not None:
                shutil.rmtree(token_dir, ignore_errors=True)
