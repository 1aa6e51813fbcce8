"""REST adapter: Open Inference Protocol V2 (+ Triton binary tensors), KServe V1 records, repository
extension, metrics and OpenAPI, as raw Starlette routes over the :class:`DataPlane`.

:data:`ROUTES` lists every route (method, path, handler, flags); :class:`RestHandlers` holds one
method per route. :func:`endpoint` wraps each: it takes the request id (``X-Request-ID`` cut to
128 characters, or a new one, echoed back), refuses a ``Host`` outside ``allowed_hosts`` (DNS
rebinding) and, on POST, the content types a web page can send cross-site without a CORS
preflight (415), checks the bearer token, applies the request timeout and turns exceptions into
``{"error": "..."}`` with the status of :func:`status_for`. Bodies are read with a byte limit
(``Content-Length`` checked first, streamed bytes counted too). No pydantic, no pandas: orjson
in, orjson out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from parity._ratelog import RateLimitedLog
from parity.codec import records_to_columns
from parity.errors import ParityError
from parity.server._checks import BROWSER_FORM_TYPES, bearer_ok, echo, host_allowed, new_request_id, request_id
from parity.server._dataplane import DataPlane, InferResult
from parity.server._errors import (
    BadRequest,
    HostNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
    UnsupportedMediaType,
    status_for,
)
from parity.server._http import ARRIVAL_KEY
from parity.server._logging import log_request, request_id_var
from parity.server._openapi import openapi_document
from parity.server._tensors import InferRequest, encode_outputs, loads_json, parse_infer_request

__all__ = ["HEADER_LENGTH", "ROUTES", "RestHandlers", "RestSettings", "RouteSpec", "build_rest_app", "endpoint"]

log = logging.getLogger("parity.server")

HEADER_LENGTH = "inference-header-content-length"
_JSON = "application/json"
Handler = Callable[[Request], Awaitable[Response]]


class RestSettings:
    """Transport settings of the REST adapter."""

    def __init__(
        self,
        *,
        token: str | None = None,
        max_request_bytes: int = 32 * 1024 * 1024,
        request_timeout_s: float = 30.0,
        allowed_hosts: tuple[str, ...] = ("*",),
        repository_api: bool = False,
        log_requests: bool = False,
    ) -> None:
        self.token = token.encode() if token else None
        self.max_request_bytes = max_request_bytes
        self.request_timeout_s = request_timeout_s
        self.allowed_hosts = frozenset(allowed_hosts)
        self.repository_api = repository_api
        """Serve the load/unload endpoints (off by default, as in Triton; they always need the token)."""
        self.log_requests = log_requests
        """One structured log line per inference request."""


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=_JSON, headers=headers)


def _error(exc: BaseException) -> Response:
    status = status_for(exc).http
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {"Retry-After": "1"} if status == 503 else None
    # Unexpected failures are logged with their traceback; the client learns nothing internal.
    message = (str(exc) or type(exc).__name__) if isinstance(exc, ParityError) else "internal server error"
    try:
        return _json({"error": message}, status, headers)
    except orjson.JSONEncodeError:  # a message quoting a string orjson refuses (e.g. a lone surrogate)
        return _json({"error": message.encode("utf-8", "backslashreplace").decode("utf-8")}, status, headers)


async def _let_others_in() -> None:
    """Yield to the event loop once, holding an admission slot, before a request's heavy work.

    Every request the loop has read meanwhile then takes its slot, or is refused, before this one
    decodes: refusals are answered without waiting behind the decoding of the admitted, and the
    slots count every request started on. Without the yield a request that runs inline (most do)
    holds the loop from its slot to its answer, so no two ever hold slots at once.
    """
    await asyncio.sleep(0)


async def read_body(request: Request, limit: int) -> bytes:
    """Read the request body, refusing more than ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest(f"invalid Content-Length {declared!r}") from None
        if size > limit:
            raise PayloadTooLarge(f"request body of {size} bytes exceeds the limit of {limit} bytes")
    # Straight from the ASGI receive channel: cheaper than Request.stream()'s async generator.
    receive = request.receive
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BadRequest("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class RestHandlers:
    """The REST endpoints of one :class:`DataPlane`: one method per route of :data:`ROUTES`."""

    def __init__(self, dataplane: DataPlane, settings: RestSettings) -> None:
        self.dp = dataplane
        self.limit = settings.max_request_bytes
        self._openapi = orjson.dumps(openapi_document())

    # ------------------------------------------------------------------ health and metadata

    async def live(self, request: Request) -> Response:
        """OIP server liveness."""
        return _json({"live": True}) if self.dp.live() else _json({"live": False}, 503)

    async def ready(self, request: Request) -> Response:
        """OIP server readiness (503 while not ready)."""
        return _json({"ready": True}) if self.dp.ready() else _json({"ready": False}, 503)

    async def server_metadata(self, request: Request) -> Response:
        """OIP server metadata."""
        return _json(self.dp.server_metadata())

    async def model_metadata(self, request: Request) -> Response:
        """OIP model metadata."""
        p = request.path_params
        return _json(self.dp.model_metadata(p["name"], p.get("version")))

    async def model_ready(self, request: Request) -> Response:
        """OIP model readiness: 200 means ready, a 4xx means not ready."""
        p = request.path_params
        ok = self.dp.model_ready(p["name"], p.get("version"))
        return _json({"name": p["name"], "ready": ok}, 200 if ok else 400)

    # ------------------------------------------------------------------ inference

    async def _decode_infer(self, request: Request, name: str, version: str | None) -> InferRequest:
        handle = self.dp.handle(name, version)
        body = await read_body(request, self.limit)
        raw_length = request.headers.get(HEADER_LENGTH)
        header_length: int | None = None
        if raw_length is not None:
            try:
                header_length = int(raw_length)
            except ValueError:
                raise BadRequest(f"invalid Inference-Header-Content-Length {echo(raw_length)}") from None
        return parse_infer_request(body, header_length, handle.signature, reject_extra=self.dp.reject_extra)

    async def infer(self, request: Request) -> Response:
        """OIP inference (JSON, or JSON header + binary tensors)."""
        p = request.path_params
        name, version = p["name"], p.get("version")
        with self.dp.admit(name, version):  # 503 before the body is read or decoded
            await _let_others_in()
            req = await self._decode_infer(request, name, version)
            rid = request_id_var.get() or new_request_id()
            result = await self.dp.infer(
                name, version, req.columns, request_id=rid, protocol="v2", arrival=request.state.arrival,
                timeout_s=req.timeout_s, admitted=True,
            )  # fmt: skip
            return self._infer_response(request, req, result)

    def _infer_response(self, request: Request, req: InferRequest, result: InferResult) -> Response:
        """The OIP response of ``result``, with the outputs ``req`` asked for."""
        request.state.rows = len(next(iter(result.outputs.values()), ()))
        request.state.labels = (result.model_name, result.model_version)
        requested = req.outputs or [(o, req.binary_output) for o in result.outputs]
        header: dict[str, Any] = {"model_name": result.model_name, "model_version": result.model_version}
        if req.id is not None:
            header["id"] = request_id(req.id)
        if result.parameters:
            header["parameters"] = result.parameters
        content, json_length = encode_outputs(result.outputs, result.datatypes, requested, header)
        if json_length is None:
            return Response(content, media_type=_JSON)
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(json_length)},
        )

    async def _decode_v1(self, request: Request, name: str) -> dict[str, list[Any]]:
        handle = self.dp.handle(name)
        body = await read_body(request, self.limit)
        payload = loads_json(body)
        instances = payload.get("instances") if isinstance(payload, dict) else None
        if not isinstance(instances, list) or not instances:
            raise BadRequest('the request body must be {"instances": [{column: value, ...}, ...]}')
        return records_to_columns(handle.signature, instances, reject_extra=self.dp.reject_extra)

    async def v1_predict(self, request: Request) -> Response:
        """KServe V1: records in, records out."""
        name = request.path_params["name"]
        with self.dp.admit(name):
            await _let_others_in()
            columns = await self._decode_v1(request, name)
            rid = request_id_var.get() or new_request_id()
            result = await self.dp.infer(
                name, None, columns, request_id=rid, protocol="v1", arrival=request.state.arrival, admitted=True
            )
            return self._v1_response(request, result)

    def _v1_response(self, request: Request, result: InferResult) -> Response:
        """The KServe V1 response of ``result`` (one record per row)."""
        request.state.rows = len(next(iter(result.outputs.values()), ()))
        request.state.labels = (result.model_name, result.model_version)
        keys = list(result.outputs)
        values = [result.outputs[k].tolist() for k in keys]
        body: dict[str, Any] = {"predictions": [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]}
        if result.parameters:
            body["parameters"] = result.parameters
        return _json(body)

    # ------------------------------------------------------------------ repository extension

    async def repository_index(self, request: Request) -> Response:
        """Every known model and its state (``{"ready": true}`` keeps the ready ones)."""
        body = await read_body(request, self.limit)
        ready_only = False
        if body.strip():
            payload = loads_json(body)
            ready_only = isinstance(payload, dict) and bool(payload.get("ready", False))
        index = self.dp.repository_index()
        if ready_only:
            index = [m for m in index if m["state"] == "READY"]
        return _json(index)

    async def repository_load(self, request: Request) -> Response:
        """Load (or reload) a model by registry ref."""
        await read_body(request, self.limit)
        await self.dp.load(request.path_params["name"])
        return _json({})

    async def repository_unload(self, request: Request) -> Response:
        """Stop serving a model."""
        await read_body(request, self.limit)
        await self.dp.unload(request.path_params["name"])
        return _json({})

    # ------------------------------------------------------------------ operations

    async def metrics(self, request: Request) -> Response:
        """Prometheus metrics."""
        return Response(self.dp.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(self, request: Request) -> Response:
        """The OpenAPI document."""
        return Response(self._openapi, media_type=_JSON)


class RouteSpec(NamedTuple):
    """One REST route: method, path, :class:`RestHandlers` method, and how :func:`endpoint` wraps it."""

    method: str
    path: str
    handler: str
    protected: bool = True
    """Needs the bearer token (when one is set) and an allowed ``Host``."""
    timed: bool = False
    """Bounded by the request timeout (504)."""
    protocol: str | None = None
    """Inference route of this protocol label: every answer is counted in the metrics."""
    repository: bool = False
    """A load/unload route: served only with ``--enable-repository-api``."""


_MODEL = "/v2/models/{name}"
_VERSIONED = "/v2/models/{name}/versions/{version}"
ROUTES: tuple[RouteSpec, ...] = (
    # Starlette tries routes in order: the hot ones first.
    RouteSpec("POST", _MODEL + "/infer", "infer", timed=True, protocol="v2"),
    RouteSpec("POST", _VERSIONED + "/infer", "infer", timed=True, protocol="v2"),
    RouteSpec("GET", "/v2/health/live", "live", protected=False),
    RouteSpec("GET", "/v2/health/ready", "ready", protected=False),
    RouteSpec("GET", "/v2", "server_metadata"),
    RouteSpec("GET", _MODEL + "/ready", "model_ready"),
    RouteSpec("GET", _VERSIONED + "/ready", "model_ready"),
    RouteSpec("GET", _MODEL, "model_metadata"),
    RouteSpec("GET", _VERSIONED, "model_metadata"),
    RouteSpec("POST", "/v1/models/{name}:predict", "v1_predict", timed=True, protocol="v1"),
    RouteSpec("POST", "/v2/repository/index", "repository_index", timed=True),
    RouteSpec("POST", "/v2/repository/models/{name}/load", "repository_load", timed=True, repository=True),
    RouteSpec("POST", "/v2/repository/models/{name}/unload", "repository_unload", timed=True, repository=True),
    RouteSpec("GET", "/metrics", "metrics"),
    RouteSpec("GET", "/openapi.json", "openapi"),
)
"""Every REST route, in matching order."""


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


_REJECTIONS: dict[int, RateLimitedLog] = {}


def _log_failure(request: Request, status: int, exc: BaseException) -> None:
    if status >= 500 and status not in (503, 504):
        log.error("%s %s -> %d: %s", request.method, request.url.path, status, exc, exc_info=status == 500)
        return
    # Refusals come in floods under overload or attack: one line per status every few seconds.
    limiter = _REJECTIONS.get(status)
    if limiter is None:
        limiter = _REJECTIONS[status] = RateLimitedLog(log, interval_s=5.0)
    # The scope's path, not request.url: building the URL object costs a refusal ~10 us (measured: a
    # fifth of an in-app 503), paid on every refusal even when the line is suppressed.
    limiter.info("%s %s -> %d: %s", request.method, request.scope["path"], status, exc)


def endpoint(fn: Handler, route: RouteSpec, settings: RestSettings, dataplane: DataPlane | None = None) -> Handler:
    """Wrap a handler: request id, Host and content-type checks, bearer token, timeout, errors as JSON.

    With a ``dataplane``, answers during the SIGTERM drain carry ``Connection: close``; the app
    counts inference answers around this wrapper (:class:`_Counted`).
    """
    token = settings.token
    hosts = settings.allowed_hosts
    check_host = route.protected and "*" not in hosts
    check_type = route.method == "POST"
    timeout = settings.request_timeout_s if route.timed else None

    async def wrapper(request: Request) -> Response:
        arrival = request.scope.get(ARRIVAL_KEY) or time.perf_counter()
        request.state.arrival = arrival
        headers = request.headers
        rid = request_id(headers.get("x-request-id"))
        request_id_var.set(rid)
        try:
            if check_host and not host_allowed(headers.get("host"), hosts):
                raise HostNotAllowed(f"this server does not answer for host {echo(headers.get('host', ''))}")
            if check_type and _media_type(request) in BROWSER_FORM_TYPES:
                raise UnsupportedMediaType(
                    f"content type {echo(_media_type(request))} is refused (a web page can send it cross-site); "
                    "send application/json or application/octet-stream"
                )
            if route.protected and token is not None and not bearer_ok(headers.get("authorization"), token):
                raise Unauthorized("missing or invalid bearer token (send 'Authorization: Bearer <token>')")
            if timeout is not None:
                limit_s = _caller_deadline(request, timeout)
                try:
                    async with asyncio.timeout(limit_s):
                        response = await fn(request)
                except TimeoutError:
                    raise RequestTimeout(f"request not completed within {limit_s:g} s") from None
            else:
                response = await fn(request)
        except Exception as exc:
            response = _error(exc)
            _log_failure(request, response.status_code, exc)
        response.headers["x-request-id"] = rid
        if dataplane is not None and dataplane.draining:
            response.headers["connection"] = "close"  # clients reconnect elsewhere during the drain
        return response

    return wrapper


class _Counted:
    """ASGI wrapper of an inference route: counts each answer once, after its last body chunk was sent.

    The clock stops just before that chunk goes to the socket (encoding and sending the answer
    included): taken after the write, it would also hold the time the client it wakes, often on the
    same core, runs before the server gets the core back.
    """

    def __init__(self, app: ASGIApp, dataplane: DataPlane, protocol: str, log_requests: bool) -> None:
        self.app = app
        self.dataplane = dataplane
        self.protocol = protocol
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the route, then record its answer (status, latency from arrival, model labels)."""
        status = 500
        written = 0.0

        async def send_stamped(message: Message) -> None:
            nonlocal status, written
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                written = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, send_stamped)
        finally:  # an exception that escaped the route is answered 500 by Starlette: counted as such
            self._record(scope, status, written)

    def _record(self, scope: Scope, status: int, written: float) -> None:
        state = scope.get("state") or {}
        arrival = state.get("arrival") or scope.get(ARRIVAL_KEY)
        seconds = None if arrival is None else (written or time.perf_counter()) - arrival
        p = scope.get("path_params") or {}
        name, version = p.get("name", ""), p.get("version")
        self.dataplane.record_answer(name, version, self.protocol, status, seconds, state.get("labels"))
        if self.log_requests:
            log_request(name, version, self.protocol, status, seconds or 0.0, state.get("rows"))


def build_rest_app(
    dataplane: DataPlane, settings: RestSettings, lifespan: Lifespan[Starlette] | None = None
) -> Starlette:
    """Return the Starlette application serving ``dataplane``: :data:`ROUTES` over :class:`RestHandlers`."""
    handlers = RestHandlers(dataplane, settings)
    routes = []
    for spec in ROUTES:
        if spec.repository and not settings.repository_api:
            continue
        handler = endpoint(getattr(handlers, spec.handler), spec, settings, dataplane)
        if spec.protocol is None:
            routes.append(Route(spec.path, handler, methods=[spec.method]))
        else:
            counted = _Counted(request_response(handler), dataplane, spec.protocol, settings.log_requests)
            routes.append(Route(spec.path, counted, methods=[spec.method]))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _json({"error": exc.detail}, exc.status_code, dict(exc.headers or {}))

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _json({"error": "internal server error"}, 500)

    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan,
    )


def _caller_deadline(request: Request, timeout: float) -> float:
    """The request timeout, shortened to the caller's remaining deadline (``x-parity-timeout-ms``) if sooner."""
    # A composition sends what is left of its own deadline: work past it would be thrown away.
    raw = request.headers.get("x-parity-timeout-ms")
    if raw is None:
        return timeout
    try:
        return min(timeout, max(0.001, int(raw) / 1000.0))
    except ValueError:
        return timeout
