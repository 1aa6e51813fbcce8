"""gRPC adapter: the Open Inference Protocol ``inference.GRPCInferenceService`` over the :class:`DataPlane`.

``await start_grpc(dataplane, config)`` starts a ``grpc.aio`` server in the running event loop
(the one uvicorn serves REST on) at ``config.host:config.grpc_port`` and returns it; the caller
stops it with ``await server.stop(grace)``. Besides the OIP service (ServerLive, ServerReady,
ModelReady, ServerMetadata, ModelMetadata, ModelInfer) it serves the standard health service
``grpc.health.v1.Health`` (SERVING while ``dataplane.ready()``, for the whole server ``""`` and for
``inference.GRPCInferenceService``) and server reflection (v1alpha).

Transport settings come from :class:`ServerConfig`: TLS when ``tls_cert``/``tls_key`` are set,
``max_request_bytes`` as the largest accepted message (gRPC answers RESOURCE_EXHAUSTED above it),
``limit_concurrency`` as the most concurrent RPCs (RESOURCE_EXHAUSTED above it), and a bearer
``token`` required as ``authorization: Bearer <token>`` metadata on every RPC but health checks
(UNAUTHENTICATED otherwise). ``config.extra["grpc_options"]`` (a mapping) adds or overrides gRPC
channel arguments. Errors are parity exceptions mapped to status codes by
:func:`~parity.server._errors.status_for`, the table REST uses too. Tensor decoding lives in
:mod:`parity.server._grpc_codec`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from parity.errors import ParityError
from parity.server._config import ServerConfig
from parity.server._dataplane import DataPlane
from parity.server._errors import Unauthorized, status_for
from parity.server._grpc_codec import decode_infer_request, encode_infer_response
from parity.server._logging import request_id_var
from parity.server.proto import open_inference_grpc_pb2 as pb
from parity.server.proto import open_inference_grpc_pb2_grpc as pb_grpc

__all__ = ["HEALTH_WATCH_INTERVAL_S", "SERVICE_NAME", "InferenceServicer", "start_grpc"]

log = logging.getLogger("parity.server")

SERVICE_NAME = "inference.GRPCInferenceService"
_HEALTH_SERVICE = "grpc.health.v1.Health"
_HEALTH_PREFIX = f"/{_HEALTH_SERVICE}/"
HEALTH_WATCH_INTERVAL_S = 1.0
"""How often a health Watch stream re-reads readiness (readiness has no change events)."""

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> NoReturn:
    """End the RPC with the status of ``exc`` from the shared error table."""
    code = status_for(exc).grpc
    if code == "INTERNAL" and not isinstance(exc, ParityError):
        # An unexpected failure: log the traceback, do not leak internals to the client.
        log.error("gRPC request failed", exc_info=exc)
        message = "internal server error"
    else:
        message = str(exc) or type(exc).__name__
        log.log(logging.ERROR if code in ("INTERNAL", "DATA_LOSS") else logging.INFO, "gRPC %s: %s", code, message)
    await context.abort(grpc.StatusCode[code], message)
    raise AssertionError("unreachable: context.abort raises")  # for type checkers


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else None
    return None


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService``: translates messages to DataPlane calls and back."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dp = dataplane

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        """True while the process answers requests."""
        return pb.ServerLiveResponse(live=self.dp.live())

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        """True when every configured model is ready."""
        return pb.ServerReadyResponse(ready=self.dp.ready())

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        """Readiness of one model version; NOT_FOUND if it is not served."""
        try:
            ready = self.dp.model_ready(request.name, request.version or None)
        except Exception as exc:
            await _abort(context, exc)
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        """Server name, version and extensions."""
        meta = self.dp.server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"], extensions=meta["extensions"])

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        """Name, versions, platform, inputs and outputs of one model."""
        try:
            meta = self.dp.model_metadata(request.name, request.version or None)
        except Exception as exc:
            await _abort(context, exc)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in meta["inputs"]],
            outputs=[tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in meta["outputs"]],
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        """Decode the tensors, run the model through the DataPlane, encode the outputs."""
        name = request.model_name
        version = request.model_version or None  # "" means the default (active) version
        rid = request.id or _metadata(context, "x-request-id") or uuid.uuid4().hex
        request_id_var.set(rid)
        try:
            decoded = decode_infer_request(request, self.dp.handle(name, version).signature)
        except Exception as exc:
            self.dp.record_error(name, "grpc", exc)  # failures inside infer() are counted there
            await _abort(context, exc)
        try:
            result = await self.dp.infer(name, version, decoded.columns, request_id=rid, protocol="grpc")
        except Exception as exc:
            await _abort(context, exc)
        context.set_trailing_metadata((("x-request-id", rid),))
        response = encode_infer_response(
            result.model_name, result.model_version, request.id, result.outputs, result.datatypes, decoded
        )
        for key, value in (result.parameters or {}).items():
            response.parameters[key].string_param = value
        return response


class HealthServicer(health_pb2_grpc.HealthServicer):
    """``grpc.health.v1.Health`` answering from ``dataplane.ready()`` at each call."""

    def __init__(self, dataplane: DataPlane, interval_s: float = HEALTH_WATCH_INTERVAL_S) -> None:
        self.dp = dataplane
        self.interval_s = interval_s

    def _status(self, service: str) -> int | None:
        if service not in ("", SERVICE_NAME):
            return None
        return _SERVING if self.dp.ready() else _NOT_SERVING

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        """Current status of the server ("") or of the inference service."""
        status = self._status(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> None:
        """Stream the status, sending each change (polled: readiness has no change events)."""
        last: int | None = None
        while True:
            status = self._status(request.service)
            status = _SERVICE_UNKNOWN if status is None else status
            if status != last:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                last = status
            await asyncio.sleep(self.interval_s)


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Require ``authorization: Bearer <token>`` metadata on every RPC except health checks."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._message = "missing or invalid bearer token (send metadata 'authorization: Bearer <token>')"
        self._code = grpc.StatusCode[status_for(Unauthorized).grpc]

    def _allowed(self, details: grpc.HandlerCallDetails) -> bool:
        auth = ""
        for key, value in details.invocation_metadata or ():
            if key == "authorization" and isinstance(value, str):
                auth = value
                break
        scheme, _, given = auth.partition(" ")
        # Compare even on a wrong scheme so timing reveals nothing about the token.
        ok = hmac.compare_digest(given.strip().encode(), self._token)
        return ok and scheme.lower() == "bearer"

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Pass authorised calls (and health checks) on; answer the rest UNAUTHENTICATED."""
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(_HEALTH_PREFIX):
            return handler
        if self._allowed(handler_call_details):
            return handler
        return self._deny(handler)

    def _deny(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        code, message = self._code, self._message

        async def deny(request: Any, context: grpc.aio.ServicerContext) -> None:
            await context.abort(code, message)

        # Same kind of handler as the real one, so the request stream is read the way the client sends it.
        if handler.request_streaming and handler.response_streaming:
            make = grpc.stream_stream_rpc_method_handler
        elif handler.request_streaming:
            make = grpc.stream_unary_rpc_method_handler
        elif handler.response_streaming:
            make = grpc.unary_stream_rpc_method_handler
        else:
            make = grpc.unary_unary_rpc_method_handler
        return make(
            deny, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


def _reflection_pool() -> descriptor_pool.DescriptorPool:
    """A pool holding every served service's file (ours lives in a private pool, see gen_proto.sh)."""
    pool = descriptor_pool.DescriptorPool()
    for fd in (pb.DESCRIPTOR, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
        pool.AddSerializedFile(fd.serialized_pb)
    return pool


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _options(config: ServerConfig) -> list[tuple[str, Any]]:
    options: dict[str, Any] = {
        "grpc.max_receive_message_length": config.max_request_bytes,
        "grpc.max_send_message_length": -1,
        # Worker processes share the port only with SO_REUSEPORT; one process should fail to bind a
        # port in use instead of silently sharing it with another server.
        "grpc.so_reuseport": 1 if config.workers > 1 else 0,
    }
    extra = config.extra.get("grpc_options") if isinstance(config.extra, dict) else None
    if isinstance(extra, dict):
        options.update(extra)
    return list(options.items())


async def start_grpc(dataplane: DataPlane, config: ServerConfig) -> grpc.aio.Server:
    """Start the gRPC server of ``dataplane`` on ``config.host:config.grpc_port``; return it."""
    if not config.grpc_port:
        raise ValueError("start_grpc needs config.grpc_port")
    interceptors = [TokenInterceptor(config.token)] if config.token else []
    server = grpc.aio.server(
        interceptors=interceptors,
        options=_options(config),
        maximum_concurrent_rpcs=config.limit_concurrency or None,
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(dataplane), server)
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(dataplane), server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, _HEALTH_SERVICE, reflection.SERVICE_NAME), server, pool=_reflection_pool()
    )
    address = _address(config.host, config.grpc_port)
    try:
        if config.tls_cert and config.tls_key:
            key = Path(config.tls_key).read_bytes()
            cert = Path(config.tls_cert).read_bytes()
            bound = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpc raises RuntimeError when it cannot bind
        raise OSError(f"cannot listen for gRPC on {address}: {exc}") from None
    if not bound:
        raise OSError(f"cannot listen for gRPC on {address} (port in use or address unavailable)")
    await server.start()
    return server
