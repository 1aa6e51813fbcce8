"""REST adapter: Open Inference Protocol V2 (+ Triton binary tensors), KServe V1 records, repository
extension, metrics and OpenAPI, as raw Starlette routes over the :class:`DataPlane`.

Every handler is wrapped by :func:`_endpoint`, which takes the request id (``X-Request-ID`` or a
new one, echoed back), checks the bearer token, applies the request timeout to POST handlers
and turns exceptions into ``{"error": "..."}`` with the status of :func:`status_for`. Bodies are
read with a byte limit (``Content-Length`` checked first, streamed bytes counted too). No
pydantic, no pandas: orjson in, orjson out.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Lifespan

from parity.codec import records_to_columns
from parity.errors import ParityError
from parity.server._dataplane import DataPlane
from parity.server._errors import BadRequest, PayloadTooLarge, RequestTimeout, Unauthorized, status_for
from parity.server._logging import request_id_var
from parity.server._openapi import openapi_document
from parity.server._tensors import InferRequest, encode_outputs, loads_json, parse_infer_request

__all__ = ["HEADER_LENGTH", "RestSettings", "build_rest_app"]

log = logging.getLogger("parity.server")

HEADER_LENGTH = "inference-header-content-length"
_JSON = "application/json"
Handler = Callable[[Request], Awaitable[Response]]


class RestSettings:
    """Transport settings of the REST adapter."""

    def __init__(
        self, *, token: str | None = None, max_request_bytes: int = 32 * 1024 * 1024, request_timeout_s: float = 30.0
    ) -> None:
        self.token = token.encode() if token else None
        self.max_request_bytes = max_request_bytes
        self.request_timeout_s = request_timeout_s


def _new_id() -> str:
    """A random 128-bit request id (os.urandom is cheaper than uuid4 on the hot path)."""
    return os.urandom(16).hex()


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=_JSON, headers=headers)


def _error(exc: BaseException) -> Response:
    status = status_for(exc).http
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    # Unexpected failures are logged with their traceback; the client learns nothing internal.
    message = (str(exc) or type(exc).__name__) if isinstance(exc, ParityError) else "internal server error"
    try:
        return _json({"error": message}, status, headers)
    except orjson.JSONEncodeError:  # a message quoting a string orjson refuses (e.g. a lone surrogate)
        return _json({"error": message.encode("utf-8", "backslashreplace").decode("utf-8")}, status, headers)


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


def build_rest_app(
    dataplane: DataPlane, settings: RestSettings, lifespan: Lifespan[Starlette] | None = None
) -> Starlette:
    """Return the Starlette application serving ``dataplane``."""
    dp = dataplane
    token = settings.token
    limit = settings.max_request_bytes
    timeout = settings.request_timeout_s

    def _endpoint(fn: Handler, *, protected: bool = True, timed: bool = False) -> Handler:
        async def wrapper(request: Request) -> Response:
            rid = request.headers.get("x-request-id", "")[:128] or _new_id()
            request_id_var.set(rid)
            try:
                if protected and token is not None:
                    _check_token(request, token)
                if timed:
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
                status = response.status_code
                if status >= 500:
                    log.error("%s %s -> %d: %s", request.method, request.url.path, status, exc, exc_info=status == 500)
                else:
                    log.info("%s %s -> %d: %s", request.method, request.url.path, status, exc)
            response.headers["x-request-id"] = rid
            return response

        return wrapper

    # ------------------------------------------------------------------ health and metadata

    async def live(request: Request) -> Response:
        return _json({"live": True}) if dp.live() else _json({"live": False}, 503)

    async def ready(request: Request) -> Response:
        return _json({"ready": True}) if dp.ready() else _json({"ready": False}, 503)

    async def server_metadata(request: Request) -> Response:
        return _json(dp.server_metadata())

    async def model_metadata(request: Request) -> Response:
        p = request.path_params
        return _json(dp.model_metadata(p["name"], p.get("version")))

    async def model_ready(request: Request) -> Response:
        p = request.path_params
        ok = dp.model_ready(p["name"], p.get("version"))
        # OIP: 200 means ready, a 4xx means not ready.
        return _json({"name": p["name"], "ready": ok}, 200 if ok else 400)

    # ------------------------------------------------------------------ inference

    async def decode_infer(request: Request, name: str, version: str | None) -> InferRequest:
        handle = dp.handle(name, version)
        body = await read_body(request, limit)
        raw_length = request.headers.get(HEADER_LENGTH)
        header_length: int | None = None
        if raw_length is not None:
            try:
                header_length = int(raw_length)
            except ValueError:
                raise BadRequest(f"invalid Inference-Header-Content-Length {raw_length!r}") from None
        return parse_infer_request(body, header_length, handle.signature)

    async def infer(request: Request) -> Response:
        p = request.path_params
        name, version = p["name"], p.get("version")
        try:
            req = await decode_infer(request, name, version)
        except Exception as exc:  # failures inside dp.infer are counted there
            dp.record_error(name, "rest", exc)
            raise
        rid = request_id_var.get() or _new_id()
        result = await dp.infer(name, version, req.columns, request_id=rid, protocol="rest")
        requested = req.outputs or [(o, req.binary_output) for o in result.outputs]
        header: dict[str, Any] = {"model_name": result.model_name, "model_version": result.model_version}
        if req.id is not None:
            header["id"] = req.id
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

    async def decode_v1(request: Request, name: str) -> dict[str, list[Any]]:
        handle = dp.handle(name)
        body = await read_body(request, limit)
        payload = loads_json(body)
        instances = payload.get("instances") if isinstance(payload, dict) else None
        if not isinstance(instances, list) or not instances:
            raise BadRequest('the request body must be {"instances": [{column: value, ...}, ...]}')
        return records_to_columns(handle.signature, instances, reject_extra=True)

    async def v1_predict(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            columns = await decode_v1(request, name)
        except Exception as exc:
            dp.record_error(name, "v1", exc)
            raise
        rid = request_id_var.get() or _new_id()
        result = await dp.infer(name, None, columns, request_id=rid, protocol="v1")
        keys = list(result.outputs)
        values = [result.outputs[k].tolist() for k in keys]
        body: dict[str, Any] = {"predictions": [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]}
        if result.parameters:
            body["parameters"] = result.parameters
        return _json(body)

    # ------------------------------------------------------------------ repository extension

    async def repository_index(request: Request) -> Response:
        body = await read_body(request, limit)
        ready_only = False
        if body.strip():
            payload = loads_json(body)
            ready_only = isinstance(payload, dict) and bool(payload.get("ready", False))
        index = dp.repository_index()
        if ready_only:
            index = [m for m in index if m["state"] == "READY"]
        return _json(index)

    async def repository_load(request: Request) -> Response:
        await read_body(request, limit)
        await dp.load(request.path_params["name"])
        return _json({})

    async def repository_unload(request: Request) -> Response:
        await read_body(request, limit)
        await dp.unload(request.path_params["name"])
        return _json({})

    # ------------------------------------------------------------------ operations

    async def metrics(request: Request) -> Response:
        return Response(dp.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    openapi_body = orjson.dumps(openapi_document())

    async def openapi(request: Request) -> Response:
        return Response(openapi_body, media_type=_JSON)

    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    # Starlette tries routes in order: the hot ones first.
    routes = [
        Route(model + "/infer", _endpoint(infer, timed=True), methods=["POST"]),
        Route(versioned + "/infer", _endpoint(infer, timed=True), methods=["POST"]),
        Route("/v2/health/live", _endpoint(live, protected=False), methods=["GET"]),
        Route("/v2/health/ready", _endpoint(ready, protected=False), methods=["GET"]),
        Route("/v2", _endpoint(server_metadata), methods=["GET"]),
        Route(model + "/ready", _endpoint(model_ready), methods=["GET"]),
        Route(versioned + "/ready", _endpoint(model_ready), methods=["GET"]),
        Route(model, _endpoint(model_metadata), methods=["GET"]),
        Route(versioned, _endpoint(model_metadata), methods=["GET"]),
        Route("/v1/models/{name}:predict", _endpoint(v1_predict, timed=True), methods=["POST"]),
        Route("/v2/repository/index", _endpoint(repository_index, timed=True), methods=["POST"]),
        Route("/v2/repository/models/{name}/load", _endpoint(repository_load), methods=["POST"]),
        Route("/v2/repository/models/{name}/unload", _endpoint(repository_unload), methods=["POST"]),
        Route("/metrics", _endpoint(metrics), methods=["GET"]),
        Route("/openapi.json", _endpoint(openapi), methods=["GET"]),
    ]

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


def _check_token(request: Request, token: bytes) -> None:
    auth = request.headers.get("authorization", "")
    scheme, _, given = auth.partition(" ")
    # Compare even on a wrong scheme so timing reveals nothing about the token.
    ok = hmac.compare_digest(given.strip().encode(), token)
    if not ok or scheme.lower() != "bearer":
        raise Unauthorized("missing or invalid bearer token (send 'Authorization: Bearer <token>')")
