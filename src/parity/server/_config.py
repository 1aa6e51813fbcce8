"""Configuration of the model server (CLI options map one to one onto these fields)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from parity.server._batching import DEFAULT_MAX_BATCH_DELAY_MS, DEFAULT_MAX_BATCH_SIZE
from parity.server._checks import default_allowed_hosts

__all__ = ["DEFAULT_LAKE", "ENV_CONFIG", "ServerConfig"]

DEFAULT_LAKE = "./.parity/lake"
ENV_CONFIG = "PARITY_SERVER_CONFIG"  # how worker processes of `--workers N` receive the config


@dataclass
class ServerConfig:
    """Everything ``parity serve`` needs; ``grpc_port`` None/0 and ``lake`` None disable those parts."""

    refs: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8080
    grpc_port: int | None = 8081
    lake: str | None = DEFAULT_LAKE
    workers: int = 1
    token: str | None = None
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_batch_delay_ms: float = DEFAULT_MAX_BATCH_DELAY_MS
    max_request_bytes: int = 32 * 1024 * 1024
    request_timeout_s: float = 30.0
    reload_interval_s: float = 5.0
    """Seconds between registry polls for alias/bare-name refs; 0 disables hot reload."""
    registry: str | None = None
    """Registry root (default: $PARITY_HOME or ./.parity)."""
    tls_cert: str | None = None
    tls_key: str | None = None
    trusted: bool = False
    allow_failed_parity: bool = False
    """Serve versions whose recorded parity check failed (warned about in logs and model metadata)."""
    extra_inputs: str = "reject"
    """Request inputs the model does not take: "reject" (400 naming it) or "ignore" (dropped)."""
    log_level: str = "info"
    access_log: bool = False
    lake_flush_interval_s: float = 2.0
    """Longest time a lake row waits before its Parquet file is written (rotation by time)."""
    lake_max_rows: int = 1_000_000
    lake_max_bytes: int = 512 * 1024 * 1024
    lake_file_bytes: int = 64 * 1024 * 1024
    """Rotation by size: a lake file is written once its rows hold this many Arrow bytes."""
    lake_overflow: str = "block"
    lake_durability: str = "buffered"
    drain_s: float = 5.0
    """After SIGTERM: seconds of not-ready serving (with Connection: close) before the server stops."""
    admin_port: int | None = None
    """Health and metrics port (None: ``port + 2``; 0 disables it)."""
    max_inflight: int = 512
    """Requests per model version a process has started on (decoding, queued, running) before new ones get 503."""
    enable_repository_api: bool = False
    log_requests: bool = False
    log_values: bool = False
    """Quote offending input values in error messages (a debugging aid; off: feature values stay private)."""
    root_path: str = ""
    forwarded_allow_ips: str | None = None
    token_file: str | None = None
    graceful_timeout_s: float = 30.0
    limit_concurrency: int = 2048
    """Connections + in-flight requests per process before uvicorn answers 503 (health probes excepted)."""
    header_timeout_s: float = 5.0
    """Seconds a connection may take to send a request's headers (408 and closed after)."""
    body_timeout_s: float = 10.0
    """Seconds a request may take to send its declared body once its headers arrived (408 after)."""
    max_header_bytes: int = 64 * 1024
    """Largest request line + headers (431 above)."""
    allowed_hosts: tuple[str, ...] | None = None
    """Accepted ``Host`` headers (``*`` any; ``*.example.com`` subdomains); None: the loopback names
    when bound to loopback, any host otherwise."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form options for adapters (e.g. gRPC settings)."""

    def __post_init__(self) -> None:
        self.refs = tuple(str(r) for r in self.refs)
        if self.allowed_hosts is not None:
            self.allowed_hosts = tuple(h.strip().lower() for h in self.allowed_hosts if h.strip())
        if self.token is None and self.token_file:
            try:
                with open(self.token_file, encoding="utf-8") as fh:  # closed: no ResourceWarning per config
                    self.token = fh.read().strip() or None
            except OSError as exc:
                raise ValueError(f"cannot read the token file: {exc.strerror or exc}") from None
        if self.token is None:
            self.token = os.environ.get("PARITY_TOKEN") or None
        if self.admin_port is None:
            self.admin_port = self.port + 2 if self.port else 0
        if self.lake_overflow not in ("block", "shed", "drop"):
            raise ValueError(f"lake overflow must be block, shed or drop; got {self.lake_overflow!r}")
        if self.lake_durability not in ("buffered", "ack"):
            raise ValueError(f"lake durability must be buffered or ack; got {self.lake_durability!r}")
        if self.enable_repository_api and not self.token and not self.token_file:
            raise ValueError("the repository API (load/unload) needs a token: set token or token_file")
        if self.grpc_port == 0:
            self.grpc_port = None
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("pass both tls_cert and tls_key, or neither")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.extra_inputs not in ("reject", "ignore"):
            raise ValueError(f"extra_inputs must be 'reject' or 'ignore', got {self.extra_inputs!r}")
        for name in ("header_timeout_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_request_bytes < 1:
            raise ValueError(f"max_request_bytes must be positive, got {self.max_request_bytes}")

    @property
    def hosts(self) -> tuple[str, ...]:
        """The ``Host`` headers REST accepts (``allowed_hosts`` or the default for ``host``)."""
        return self.allowed_hosts if self.allowed_hosts is not None else default_allowed_hosts(self.host)

    def to_json(self) -> str:
        """Serialise for worker processes: never the token itself (workers read ``token_file``)."""
        data = asdict(self)
        if data["token_file"]:
            data["token"] = None
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        """Inverse of :meth:`to_json` (unknown keys are ignored)."""
        data = json.loads(text)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
