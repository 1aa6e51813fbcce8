"""The model server: Open Inference Protocol V2 REST (+ gRPC via the adapter), KServe V1, hot reload, lake.

Modules, one job each::

    _checks      request checks shared by REST and gRPC: token, request id, Host, content type
    _http        the HTTP/1.1 connection protocol: header/body timeouts, header cap, probes beside the limit
    _errors      server errors + the one table of HTTP / gRPC codes (status_for)
    _dataplane   DataPlane: protocol logic shared by REST and gRPC
    _repository  loaded model versions, hot reload, load/unload
    _batching    adaptive batching per model version
    _tensors     OIP tensors: JSON and binary (Triton extension) encode/decode
    _rest        Starlette routes
    _openapi     the OpenAPI document
    _metrics     Prometheus metrics
    _logging     JSON logs with request ids
    _config      ServerConfig
    _app         create_app / serve (uvicorn, workers, gRPC hook, graceful shutdown)

The typer ``serve`` command is ``parity.cli._serve_cmds`` (``python -m parity.server`` runs it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parity.server._config import ServerConfig
from parity.server._dataplane import DataPlane, InferResult
from parity.server._errors import (
    AddressInUse,
    BadRequest,
    ModelNotFound,
    ModelNotReady,
    PayloadTooLarge,
    RequestTimeout,
    ServerError,
    Unauthorized,
    status_for,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = [
    "AddressInUse",
    "BadRequest",
    "DataPlane",
    "InferResult",
    "ModelNotFound",
    "ModelNotReady",
    "PayloadTooLarge",
    "RequestTimeout",
    "ServerConfig",
    "ServerError",
    "Unauthorized",
    "create_app",
    "serve",
    "status_for",
]


def create_app(config: ServerConfig) -> Starlette:
    """Build the ASGI app (lazy import: uvicorn and starlette load only when serving)."""
    from parity.server._app import create_app as build

    return build(config)


def serve(config: ServerConfig) -> None:
    """Run the server until SIGTERM (lazy import of uvicorn)."""
    from parity.server._app import serve as run

    run(config)
