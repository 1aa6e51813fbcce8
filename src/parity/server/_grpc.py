"""gRPC adapter: the Open Inference Protocol ``inference.GRPCInferenceService`` over the :class:`DataPlane`.

``start_grpc(dataplane, config)``, called inside the running event loop (the one uvicorn serves
REST on), starts a *sync* ``grpc.server`` with a thread pool at ``config.host:config.grpc_port``
and returns a handle the caller stops with ``await handle.stop(grace)``. Handlers decode and
encode tensors in their pool thread and hand only ``DataPlane.infer`` to the event loop
(:class:`_Loop`), so gRPC requests share the batcher, metrics and lake with REST.
Measured on one core (benchmarks/serve_peers.py's client, 1 row, 32 in flight) this did 1.85x
the requests of the ``grpc.aio`` server it replaced: grpc.aio's per-call overhead on the event
loop cost more than the thread hop. What the hop costs is kept small (server CPU per request,
A/B in one run on the busy 2-core VM, 1 row, 32 in flight: ~370 -> ~280 us): calls queue for
the loop with one ``call_soon_threadsafe`` per burst and wait on a plain lock; pool threads run
under ``SCHED_BATCH`` (:func:`_batch_scheduling`); typed tensors are read with one
``ListFields`` call. Running the whole request in the pool thread instead (no hop, no batcher)
was measured slower (+10 % CPU per request at 32 in flight: the lost batching cost more than the
hop), and so were other pool sizes, ``sys.setswitchinterval`` and
``grpc.optimization_target=throughput``. Besides the OIP service (ServerLive, ServerReady,
ModelReady, ServerMetadata, ModelMetadata, ModelInfer) it serves the standard health service
``grpc.health.v1.Health`` (SERVING while ``dataplane.ready()``, for the whole server ``""`` and for
``inference.GRPCInferenceService``) and server reflection (v1alpha).

Transport settings come from :class:`ServerConfig`: TLS when ``tls_cert``/``tls_key`` are set,
``max_request_bytes`` as the largest accepted message (gRPC answers RESOURCE_EXHAUSTED above it),
``limit_concurrency`` as the most concurrent RPCs (RESOURCE_EXHAUSTED above it; health ``Watch``
streams have their own budget, :data:`MAX_WATCHES` in all and :data:`MAX_WATCHES_PER_PEER` per
client address, so they never take slots from ``ServerLive`` or ``ModelInfer``), and a bearer
``token`` required as ``authorization: Bearer <token>`` metadata on every RPC but health checks
(UNAUTHENTICATED otherwise). ``config.extra["grpc_options"]`` (a mapping) adds or overrides gRPC
channel arguments. Errors are parity exceptions mapped to status codes by
:func:`~parity.server._errors.status_for`, the table REST uses too. Tensor decoding lives in
:mod:`parity.server._grpc_codec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from parity.errors import ParityError
from parity.server._checks import MAX_ECHO_CHARS, bearer_ok, echo, request_id
from parity.server._config import ServerConfig
from parity.server._dataplane import DataPlane
from parity.server._errors import AddressInUse, Unauthorized, status_for
from parity.server._grpc_codec import decode_infer_request, encode_infer_response
from parity.server._logging import log_request, request_id_var
from parity.server._tensors import timeout_parameter
from parity.server.proto import open_inference_grpc_pb2 as pb
from parity.server.proto import open_inference_grpc_pb2_grpc as pb_grpc

__all__ = [
    "HEALTH_WATCH_INTERVAL_S",
    "MAX_WATCHES",
    "MAX_WATCHES_PER_PEER",
    "SERVICE_NAME",
    "GrpcServer",
    "HealthServicer",
    "InferenceServicer",
    "TokenInterceptor",
    "start_grpc",
]

log = logging.getLogger("parity.server")

SERVICE_NAME = "inference.GRPCInferenceService"
_HEALTH_SERVICE = "grpc.health.v1.Health"
_HEALTH_PREFIX = f"/{_HEALTH_SERVICE}/"
_INFER_METHOD = f"/{SERVICE_NAME}/ModelInfer"
HEALTH_WATCH_INTERVAL_S = 1.0
"""How often a health Watch stream re-reads readiness (readiness has no change events)."""
MAX_WATCHES = 32
"""Open health Watch streams in all (each holds a pool thread); more get RESOURCE_EXHAUSTED."""
MAX_WATCHES_PER_PEER = 4
"""Open health Watch streams per client address."""
POOL_THREADS = 16
"""Threads running unary RPCs (requests beyond them queue, up to ``limit_concurrency``)."""

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
T = TypeVar("T")


def _abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    """End the RPC with the status of ``exc`` from the shared error table."""
    code = status_for(exc).grpc
    if code == "INTERNAL" and not isinstance(exc, ParityError):
        # An unexpected failure: log the traceback, do not leak internals to the client.
        log.error("gRPC request failed", exc_info=exc)
        message = "internal server error"
    else:
        message = str(exc) or type(exc).__name__
        log.log(logging.ERROR if code in ("INTERNAL", "DATA_LOSS") else logging.INFO, "gRPC %s: %s", code, message)
    context.abort(grpc.StatusCode[code], message)
    raise AssertionError("unreachable: context.abort raises")  # for type checkers


def _metadata(context: grpc.ServicerContext, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else None
    return None


class _Call:
    """One coroutine handed to the loop and the pool thread waiting for its outcome (a one-shot latch)."""

    __slots__ = ("coro", "done", "error", "result")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Lock()
        self.done.acquire()  # released by the loop once the coroutine finished

    def settle(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self.error = asyncio.CancelledError()
        elif (exc := task.exception()) is not None:
            self.error = exc
        else:
            self.result = task.result()
        self.done.release()


class _Loop:
    """Runs coroutines on the server's event loop from gRPC pool threads.

    Cheaper than ``run_coroutine_threadsafe`` per call (measured): calls queue in a deque and one
    ``call_soon_threadsafe`` wakes the loop for all that arrived meanwhile, and the waiting thread
    sleeps on a plain lock instead of a ``concurrent.futures.Future`` condition.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.loop = loop
        self.timeout_s = timeout_s
        self._calls: deque[_Call] = deque()  # append/popleft are atomic: threads append, the loop pops
        self._scheduled = False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (bounded: the loop may be stopping)."""
        call = _Call(coro)
        self._calls.append(call)
        if not self._scheduled:
            # Appended before the flag is read, and _start clears the flag before popping: a call
            # seen with the flag still set is popped by the _start already scheduled.
            self._scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._start)
            except RuntimeError:  # the loop is closed: the server is stopping
                self._scheduled = False
                coro.close()
                raise
        if not call.done.acquire(timeout=self.timeout_s):
            raise TimeoutError(f"the server did not answer within {self.timeout_s:g} s")
        if call.error is not None:
            raise call.error
        return cast("T", call.result)

    def _start(self) -> None:
        """On the loop: start every queued call as a task."""
        self._scheduled = False
        calls, create = self._calls, self.loop.create_task
        while calls:
            call = calls.popleft()
            create(call.coro).add_done_callback(call.settle)


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService``: translates messages to DataPlane calls and back."""

    def __init__(self, dataplane: DataPlane, loop: _Loop, log_requests: bool = False) -> None:
        self.dp = dataplane
        self._loop = loop
        self._log_requests = log_requests

    def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.ServicerContext) -> pb.ServerLiveResponse:
        """True while the process answers requests."""
        return pb.ServerLiveResponse(live=self.dp.live())

    def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.ServicerContext) -> pb.ServerReadyResponse:
        """True when every configured model is ready."""
        return pb.ServerReadyResponse(ready=self.dp.ready())

    def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.ServicerContext) -> pb.ModelReadyResponse:
        """Readiness of one model version; NOT_FOUND if it is not served."""
        try:
            ready = self.dp.model_ready(request.name, request.version or None)
        except Exception as exc:
            _abort(context, exc)
        return pb.ModelReadyResponse(ready=ready)

    def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ServerMetadataResponse:
        """Server name, version and extensions."""
        meta = self.dp.server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"], extensions=meta["extensions"])

    def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ModelMetadataResponse:
        """Name, versions, platform, inputs and outputs of one model."""
        try:
            meta = self.dp.model_metadata(request.name, request.version or None)
        except Exception as exc:
            _abort(context, exc)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in meta["inputs"]],
            outputs=[tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in meta["outputs"]],
        )

    def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.ServicerContext) -> pb.ModelInferResponse:
        """Decode the tensors (in this thread), run the model through the DataPlane (on the loop), encode."""
        arrival = time.perf_counter()
        status, code, rows = "OK", 200, None
        labels: tuple[str, str] | None = None
        try:
            response, labels = self._infer(request, context, arrival)
            rows = int(response.outputs[0].shape[0]) if response.outputs and response.outputs[0].shape else None
            return response
        except Exception as exc:
            error = status_for(exc)
            status, code = error.grpc, error.http
            _abort(context, exc)
        finally:
            # Counted once the response message is built: gRPC serialises and writes it after this
            # method returns, out of the servicer's sight (REST counts after the last byte is written).
            seconds = time.perf_counter() - arrival
            version = request.model_version or None
            self.dp.record_answer(request.model_name, version, "grpc", code, seconds, labels)
            if self._log_requests:
                log_request(
                    request.model_name[:MAX_ECHO_CHARS], request.model_version[:MAX_ECHO_CHARS], "grpc", status,
                    seconds, rows,
                )  # fmt: skip

    def _infer(
        self, request: pb.ModelInferRequest, context: grpc.ServicerContext, arrival: float
    ) -> tuple[pb.ModelInferResponse, tuple[str, str]]:
        """The response and the (model, version) labels of the result."""
        name = request.model_name
        version = request.model_version or None  # "" means the default (active) version
        rid = request_id(request.id or _metadata(context, "x-request-id"))
        request_id_var.set(rid)
        decoded = decode_infer_request(
            request, self.dp.handle(name, version).signature, reject_extra=self.dp.reject_extra
        )
        # The client's deadline (gRPC's own, or the OIP `timeout` parameter) bounds the server's.
        deadline = context.time_remaining()
        if "timeout" in request.parameters:
            param = timeout_parameter(request.parameters["timeout"].int64_param)
            deadline = param if deadline is None or (param is not None and param < deadline) else deadline

        async def infer() -> Any:
            request_id_var.set(rid)
            return await self.dp.infer(
                name, version, decoded.columns, request_id=rid, protocol="grpc", arrival=arrival, timeout_s=deadline
            )

        result = self._loop.run(infer())
        context.set_trailing_metadata((("x-request-id", rid),))
        echoed = rid if request.id else ""
        response = encode_infer_response(
            result.model_name, result.model_version, echoed, result.outputs, result.datatypes, decoded
        )
        for key, value in (result.parameters or {}).items():
            response.parameters[key].string_param = value
        return response, (result.model_name, result.model_version)


def _peer_host(peer: str) -> str:
    """The client address of a gRPC peer string (``ipv4:1.2.3.4:5678`` -> ``ipv4:1.2.3.4``)."""
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer


class HealthServicer(health_pb2_grpc.HealthServicer):
    """``grpc.health.v1.Health`` answering from ``dataplane.ready()`` at each call."""

    def __init__(self, dataplane: DataPlane, interval_s: float = HEALTH_WATCH_INTERVAL_S) -> None:
        self.dp = dataplane
        self.interval_s = interval_s
        self.stopping = threading.Event()
        self._watches: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _status(self, service: str) -> int | None:
        if service in ("", SERVICE_NAME):
            return _SERVING if self.dp.ready() else _NOT_SERVING
        # Per-model names: "<model>" or "<model>:<version>", SERVING while that model takes requests.
        name, _, version = service.partition(":")
        try:
            return _SERVING if self.dp.model_ready(name, version or None) else _NOT_SERVING
        except ParityError:
            return None

    def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        """Current status of the server ("") or of the inference service."""
        status = self._status(request.service)
        if status is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {echo(request.service)}")
        return health_pb2.HealthCheckResponse(status=status)

    def _admit(self, peer: str) -> str | None:
        """Count a new Watch of ``peer``; the reason it is refused, if it is."""
        with self._lock:
            if sum(self._watches.values()) >= MAX_WATCHES:
                return f"too many health Watch streams (limit {MAX_WATCHES})"
            if self._watches[peer] >= MAX_WATCHES_PER_PEER:
                return f"too many health Watch streams from {peer} (limit {MAX_WATCHES_PER_PEER} per client)"
            self._watches[peer] += 1
        return None

    def _release(self, peer: str) -> None:
        with self._lock:
            self._watches[peer] -= 1
            if self._watches[peer] <= 0:
                del self._watches[peer]

    def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> Iterator[health_pb2.HealthCheckResponse]:
        """Stream the status, sending each change (polled: readiness has no change events)."""
        peer = _peer_host(context.peer())
        refused = self._admit(peer)
        if refused is not None:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused)
        try:
            last: int | None = None
            while context.is_active() and not self.stopping.is_set():
                status = self._status(request.service)
                status = _SERVICE_UNKNOWN if status is None else status
                if status != last:
                    yield health_pb2.HealthCheckResponse(status=status)
                    last = status
                self.stopping.wait(self.interval_s)
        finally:
            self._release(peer)


class TokenInterceptor(grpc.ServerInterceptor):
    """Require ``authorization: Bearer <token>`` metadata on every RPC except health checks.

    With a ``dataplane``, refused ``ModelInfer`` calls are counted like every other answer (401).
    """

    def __init__(self, token: str, dataplane: DataPlane | None = None) -> None:
        self._token = token.encode()
        self._code = grpc.StatusCode[status_for(Unauthorized).grpc]
        self._dp = dataplane

    def _allowed(self, details: grpc.HandlerCallDetails) -> bool:
        auth = ""
        for key, value in details.invocation_metadata or ():
            if key == "authorization" and isinstance(value, str):
                auth = value
                break
        return bearer_ok(auth, self._token)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Pass authorised calls (and health checks) on; answer the rest UNAUTHENTICATED."""
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(_HEALTH_PREFIX):
            return handler
        if self._allowed(handler_call_details):
            return handler
        message = "missing or invalid bearer token (send metadata 'authorization: Bearer <token>')"
        dp = self._dp
        if dp is None or handler_call_details.method != _INFER_METHOD:
            return _refuse(handler, self._code, message)
        arrival = time.perf_counter()

        def answered(request: pb.ModelInferRequest) -> None:
            seconds = time.perf_counter() - arrival
            dp.record_answer(request.model_name, request.model_version or None, "grpc", 401, seconds)

        return _refuse(handler, self._code, message, answered)


def _refuse(
    handler: grpc.RpcMethodHandler,
    code: grpc.StatusCode,
    message: str,
    answered: Callable[[Any], None] | None = None,
) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that ends the call with ``code`` (``answered(request)`` first)."""

    def deny(request: Any, context: grpc.ServicerContext) -> None:
        if answered is not None:
            answered(request)
        context.abort(code, message)

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


def _batch_scheduling() -> None:
    """Run the calling pool thread under ``SCHED_BATCH`` (Linux): its wake-ups do not preempt the loop.

    Each answer the loop hands back wakes a pool thread; under the default policy the woken thread
    preempts the loop thread, which still holds the GIL, and both switch twice before either runs
    Python. As ``SCHED_BATCH`` (same priority and CPU share, no wake-up preemption) it runs once the
    loop blocks or its time slice ends: 8-13 % less server CPU per request at 32 in flight (measured
    with benchmarks/serve_peers.py's client, server on one core).
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or a sandbox refusing the call
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


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


class GrpcServer:
    """A started gRPC server: ``await stop(grace)`` lets in-flight RPCs finish, then closes it."""

    def __init__(self, server: grpc.Server, health: HealthServicer, pool: ThreadPoolExecutor) -> None:
        self.server = server
        self.health = health
        self.pool = pool

    async def stop(self, grace: float) -> None:
        """Stop accepting RPCs, wait up to ``grace`` seconds for in-flight ones (the loop keeps serving them)."""
        self.health.stopping.set()
        done = self.server.stop(grace)
        await asyncio.to_thread(done.wait, grace + 1.0)
        await asyncio.to_thread(self.pool.shutdown, wait=False, cancel_futures=True)


def start_grpc(dataplane: DataPlane, config: ServerConfig) -> GrpcServer:
    """Start the gRPC server of ``dataplane`` on ``config.host:config.grpc_port`` (call inside the event loop)."""
    if not config.grpc_port:
        raise ValueError("start_grpc needs config.grpc_port")
    loop = _Loop(asyncio.get_running_loop(), config.request_timeout_s + 5.0)
    limit = config.limit_concurrency or None
    pool = ThreadPoolExecutor(
        max_workers=POOL_THREADS + MAX_WATCHES, thread_name_prefix="parity-grpc", initializer=_batch_scheduling
    )
    server = grpc.server(
        pool,
        interceptors=[TokenInterceptor(config.token, dataplane)] if config.token else [],
        options=_options(config),
        # Watch streams are capped at MAX_WATCHES by HealthServicer: whatever they hold, `limit`
        # RPCs stay available to ServerLive, ModelInfer and the rest.
        maximum_concurrent_rpcs=(limit + MAX_WATCHES) if limit else None,
    )
    health = HealthServicer(dataplane)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(dataplane, loop, log_requests=config.log_requests), server
    )
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
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
        raise AddressInUse(f"cannot listen for gRPC on {address}: {exc}") from None
    if not bound:
        raise AddressInUse(f"cannot listen for gRPC on {address} (port in use or address unavailable)")
    server.start()
    return GrpcServer(server, health, pool)
