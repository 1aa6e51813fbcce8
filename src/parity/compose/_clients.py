"""Downstream clients: one small async interface over OIP V2 REST, OIP gRPC and in-process artifacts.

Every client answers ``metadata`` (name, versions, input and output tensors with their OIP
datatypes), ``ready`` and ``infer(columns) -> Reply``. Failures are parity errors:
:class:`Retryable` (a connection error or a 503: nothing says the request was wrong),
:class:`~parity.errors.DownstreamTimeout`, :class:`~parity.errors.DownstreamRejected` (the
downstream refused the input, a 4xx) and :class:`~parity.errors.DownstreamError` (anything else).
Remote clients keep one connection pool per endpoint with keep-alive (an aiohttp
``ClientSession``, one gRPC channel), created on first use inside the running event loop; bearer
tokens and TLS (a CA bundle, or ``False`` to skip verification, and an optional client
certificate) are set per endpoint.
"""

from __future__ import annotations

import asyncio
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from parity.codec import NUMPY_DTYPES, datatype_of, decode_raw
from parity.errors import (
    DeclarationError,
    DownstreamError,
    DownstreamRejected,
    DownstreamTimeout,
    MissingDependencyError,
    ParityError,
    SchemaError,
)
from parity.proto import CONTENTS_FIELD
from parity.schema import MISSING_STRING

if TYPE_CHECKING:
    from parity.artifact import Artifact
    from parity.registry import Registry

__all__ = ["Client", "GrpcClient", "LocalClient", "ModelMeta", "Reply", "RestClient", "Retryable", "StubClient"]


class Retryable(DownstreamError):
    """A failure that says nothing about the request (connection error, 503): safe to retry."""


@dataclass(frozen=True)
class ModelMeta:
    """What a downstream declares: its name, versions and typed input and output tensors."""

    name: str
    versions: tuple[str, ...]
    inputs: dict[str, str]
    """Input name -> OIP datatype, in the model's order."""
    outputs: dict[str, str]


@dataclass
class Reply:
    """Outputs of one downstream call, one array per output, and the version that answered."""

    outputs: dict[str, np.ndarray]
    version: str


class Client(ABC):
    """One downstream model."""

    label: str = ""
    """How errors and logs name the downstream (URL and model, or the artifact ref)."""

    @abstractmethod
    async def metadata(self, timeout: float) -> ModelMeta | None:
        """The model's declared tensors (None when the client cannot tell, e.g. a stub)."""

    @abstractmethod
    async def ready(self, timeout: float) -> bool:
        """True when the downstream takes requests."""

    @abstractmethod
    async def infer(self, columns: Mapping[str, np.ndarray], *, timeout: float, request_id: str) -> Reply:
        """Run the model on typed 1-D columns."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most clients hold nothing
        """Release connections."""


def _json_column(values: np.ndarray, datatype: str) -> Any:
    """A column as JSON-ready data: NaN and MISSING_STRING become null (the OIP way to send a missing value)."""
    if datatype == "BYTES":
        out = values.tolist()
        return [None if v == MISSING_STRING else v for v in out]
    return values  # orjson serialises numpy arrays natively, NaN as null


def _array(values: Any, datatype: str, name: str, label: str) -> np.ndarray:
    """A decoded output list as a typed array (nulls become NaN / MISSING_STRING)."""
    if datatype not in NUMPY_DTYPES:
        raise DownstreamError(f"{label}: output {name!r} has unsupported datatype {datatype!r}")
    if datatype == "BYTES":
        items = [MISSING_STRING if v is None else (v.decode() if isinstance(v, bytes) else str(v)) for v in values]
        return np.array(items, dtype=object)
    try:
        return np.asarray(values, dtype=NUMPY_DTYPES[datatype])
    except (TypeError, ValueError):
        if datatype in ("FP64", "FP32"):
            return np.asarray([np.nan if v is None else v for v in values], dtype=NUMPY_DTYPES[datatype])
        raise DownstreamError(f"{label}: output {name!r} is not readable as {datatype}") from None


def _flat(shape: Any, data: Any) -> Any:
    """OIP allows nested row-major data; flatten one level of nesting for 1-D outputs."""
    if isinstance(data, list) and data and isinstance(data[0], list):
        return [v for row in data for v in row]
    return data


# A downstream answer larger than this is refused rather than buffered.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024


class RestClient(Client):
    """A model behind an Open Inference Protocol V2 REST server (parity, MLServer, Triton, KServe)."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        version: str | None = None,
        token: str | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        max_connections: int = 64,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.parameters = dict(parameters) if parameters else None
        self.model = model
        self.version = version
        self.token = token
        self.verify = verify
        self.cert = cert
        self.max_connections = max_connections
        self.label = f"{model} at {self.url}"
        base = f"{self.url}/v2/models/{model}" + (f"/versions/{version}" if version else "")
        self._meta_url = base
        self._infer_url = base + "/infer"
        self._ready_url = base + "/ready"
        self._session: Any = None
        self._headers = {"content-type": "application/json"}
        if token:
            self._headers["authorization"] = f"Bearer {token}"

    def _ssl(self) -> ssl.SSLContext | bool:
        """The TLS setting of this endpoint: aiohttp's default verification, none, or a context."""
        if not self.url.startswith("https://"):
            return True  # unused on plain HTTP
        if self.verify is True and self.cert is None:
            return True
        try:
            context = ssl.create_default_context(cafile=self.verify if isinstance(self.verify, str) else None)
        except (OSError, ssl.SSLError) as exc:
            raise self._unreadable("verify", "a readable CA bundle", exc) from None
        if self.verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            if isinstance(self.cert, str):
                context.load_cert_chain(self.cert)
            elif self.cert is not None:
                context.load_cert_chain(*self.cert)
        except (OSError, ssl.SSLError) as exc:
            raise self._unreadable("cert", "a readable certificate (and key)", exc) from None
        return context

    def _unreadable(self, field: str, expected: str, exc: BaseException) -> DeclarationError:
        value = getattr(self, field)
        message = f"{self.label}: {field} must be {expected}; {value!r} is not ({exc})"
        return DeclarationError(message, endpoint=self.label, field=field)

    def _http(self) -> Any:
        if self._session is None:
            try:
                import aiohttp
            except ModuleNotFoundError as exc:
                raise MissingDependencyError("REST downstreams need aiohttp: pip install 'parity[compose]'") from exc

            connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=30.0, ssl=self._ssl())
            # The deadline is enforced around each call (asyncio.timeout), not by the session; a
            # model server's cookies mean nothing here, and a shared jar would carry one caller's to the next.
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def _request(
        self, method: str, url: str, *, timeout: float, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One HTTP exchange: (status, body); transport failures become Retryable, the deadline DownstreamTimeout."""
        session = self._http()  # first: it names the extra when aiohttp is missing
        import aiohttp

        async def exchange() -> tuple[int, bytes]:
            async with session.request(method, url, data=body, headers=headers) as response:
                return response.status, await _read_bounded(response, self.label)

        try:
            async with asyncio.timeout(timeout):
                try:
                    return await exchange()
                except aiohttp.ServerDisconnectedError:
                    # A kept-alive connection the server had closed: once more (aiohttp retries only GETs).
                    return await exchange()
        except TimeoutError:
            message = f"{self.label} did not answer within {timeout:.3g} s"
            raise DownstreamTimeout(message, endpoint=self.label) from None
        except aiohttp.ClientSSLError as exc:
            # A certificate or handshake failure does not heal on a retry.
            raise DownstreamError(f"{self.label}: TLS failed ({exc})", endpoint=self.label) from exc
        except (aiohttp.ClientError, OSError) as exc:
            # Connection refused or reset, server gone mid-response: nothing says the request was wrong.
            raise Retryable(f"{self.label} is unreachable ({type(exc).__name__}: {exc})", endpoint=self.label) from exc

    def _checked(self, status: int, content: bytes) -> Any:
        if status == 200:
            try:
                import orjson

                return orjson.loads(content)
            except ValueError as exc:
                raise DownstreamError(f"{self.label} answered invalid JSON", endpoint=self.label) from exc
        detail = _error_text(content)
        if status == 503:
            raise Retryable(f"{self.label} is unavailable (503): {detail}", endpoint=self.label, status=status)
        if 400 <= status < 500:
            raise DownstreamRejected(
                f"downstream {self.label} rejected the request ({status}): {detail}", endpoint=self.label, status=status
            )
        raise DownstreamError(f"{self.label} failed ({status}): {detail}", endpoint=self.label, status=status)

    async def metadata(self, timeout: float) -> ModelMeta:
        """GET /v2/models/{name}: the live tensors."""
        body = self._checked(*await self._request("GET", self._meta_url, timeout=timeout))
        return _meta_from_json(body, self.label)

    async def ready(self, timeout: float) -> bool:
        """GET /v2/models/{name}/ready is 200."""
        try:
            status, _ = await self._request("GET", self._ready_url, timeout=timeout)
        except DownstreamError:
            return False
        return status == 200

    async def infer(self, columns: Mapping[str, np.ndarray], *, timeout: float, request_id: str) -> Reply:
        """POST one JSON V2 infer request."""
        import orjson

        inputs = []
        for name, values in columns.items():
            datatype = datatype_of(values)
            tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [len(values)]}
            tensor["data"] = _json_column(values, datatype)
            if datatype == "BYTES":
                tensor["parameters"] = _TEXT  # UTF-8 text, not raw bytes (MLServer's codecs read this)
            inputs.append(tensor)
        request: dict[str, Any] = {"id": request_id, "inputs": inputs}
        if self.parameters:
            request["parameters"] = self.parameters
        body = orjson.dumps(request, option=orjson.OPT_SERIALIZE_NUMPY)
        # The remaining deadline travels with the call, so a parity downstream can give up when the caller has.
        headers = {"x-request-id": request_id, "x-parity-timeout-ms": str(max(1, int(timeout * 1000)))}
        payload = self._checked(
            *await self._request("POST", self._infer_url, timeout=timeout, body=body, headers=headers)
        )
        outputs = {}
        for out in payload.get("outputs", ()):
            name = str(out.get("name"))
            data = _flat(out.get("shape"), out.get("data", []))
            outputs[name] = _array(data, str(out.get("datatype")), name, self.label)
        return Reply(outputs, str(payload.get("model_version") or ""))

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_bounded(response: Any, label: str) -> bytes:
    """The whole response body, refusing one over MAX_RESPONSE_BYTES (declared or streamed)."""
    length = response.content_length
    if length is not None:
        if length > MAX_RESPONSE_BYTES:
            raise DownstreamError(f"{label}: response of {length} bytes exceeds {MAX_RESPONSE_BYTES}", endpoint=label)
        return bytes(await response.read())
    chunks, total = [], 0
    async for chunk in response.content.iter_any():
        total += len(chunk)
        if total > MAX_RESPONSE_BYTES:
            raise DownstreamError(f"{label}: response exceeds {MAX_RESPONSE_BYTES} bytes", endpoint=label)
        chunks.append(chunk)
    return b"".join(chunks)


def _error_text(content: bytes) -> str:
    try:
        import orjson

        body = orjson.loads(content)
        if isinstance(body, dict) and "error" in body:
            return str(body["error"])[:500]
    except ValueError:
        pass
    return content[:200].decode("utf-8", "replace")


def _meta_from_json(body: Any, label: str) -> ModelMeta:
    try:
        return ModelMeta(
            name=str(body["name"]),
            versions=tuple(str(v) for v in body.get("versions") or ()),
            inputs={t["name"]: t["datatype"] for t in body.get("inputs", [])},
            outputs={t["name"]: t["datatype"] for t in body.get("outputs", [])},
        )
    except (KeyError, TypeError) as exc:
        raise DownstreamError(f"{label}: model metadata is not OIP V2 ({exc})", endpoint=label) from exc


_TEXT = {"content_type": "str"}
# gRPC codes that mean "the request was wrong" (the 4xx family); UNAVAILABLE is the retryable 503.
_REJECTED = {"INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "OUT_OF_RANGE", "RESOURCE_EXHAUSTED",
             "UNAUTHENTICATED", "PERMISSION_DENIED", "ALREADY_EXISTS"}  # fmt: skip


class GrpcClient(Client):
    """A model behind an Open Inference Protocol gRPC server (``inference.GRPCInferenceService``)."""

    def __init__(
        self,
        target: str,
        model: str,
        *,
        version: str | None = None,
        token: str | None = None,
        tls: bool = False,
        root_certificates: str | None = None,
    ) -> None:
        self.target = target.removeprefix("grpc://")
        self.model = model
        self.version = version or ""
        self.token = token
        self.tls = tls or root_certificates is not None
        self.root_certificates = root_certificates
        self.label = f"{model} at grpc://{self.target}"
        self._channel: Any = None
        self._stub: Any = None
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()

    def _rpc(self) -> Any:
        if self._stub is None:
            import grpc

            from parity.proto import open_inference_grpc_pb2_grpc as pb_grpc

            options = [("grpc.keepalive_time_ms", 30_000), ("grpc.max_receive_message_length", -1)]
            if self.tls:
                roots = None
                if self.root_certificates:
                    with open(self.root_certificates, "rb") as f:
                        roots = f.read()
                creds = grpc.ssl_channel_credentials(root_certificates=roots)
                self._channel = grpc.aio.secure_channel(self.target, creds, options=options)
            else:
                self._channel = grpc.aio.insecure_channel(self.target, options=options)
            self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)
        return self._stub

    async def _call(self, method: str, request: Any, timeout: float, metadata: tuple[tuple[str, str], ...]) -> Any:
        import grpc

        try:
            return await getattr(self._rpc(), method)(request, timeout=timeout, metadata=self._metadata + metadata)
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            detail = exc.details() or code
            if code == "DEADLINE_EXCEEDED":
                raise DownstreamTimeout(
                    f"{self.label} did not answer within {timeout:.3g} s", endpoint=self.label
                ) from None
            if code == "UNAVAILABLE":
                raise Retryable(f"{self.label} is unavailable: {detail}", endpoint=self.label, status=503) from None
            if code in _REJECTED:
                raise DownstreamRejected(
                    f"downstream {self.label} rejected the request ({code}): {detail}", endpoint=self.label, status=400
                ) from None
            raise DownstreamError(f"{self.label} failed ({code}): {detail}", endpoint=self.label) from None

    async def metadata(self, timeout: float) -> ModelMeta:
        """ModelMetadata RPC."""
        from parity.proto import open_inference_grpc_pb2 as pb

        meta = await self._call(
            "ModelMetadata", pb.ModelMetadataRequest(name=self.model, version=self.version), timeout, ()
        )
        return ModelMeta(
            meta.name,
            tuple(meta.versions),
            {t.name: t.datatype for t in meta.inputs},
            {t.name: t.datatype for t in meta.outputs},
        )

    async def ready(self, timeout: float) -> bool:
        """ModelReady RPC."""
        from parity.proto import open_inference_grpc_pb2 as pb

        try:
            reply = await self._call(
                "ModelReady", pb.ModelReadyRequest(name=self.model, version=self.version), timeout, ()
            )
        except DownstreamError:
            return False
        return bool(reply.ready)

    async def infer(self, columns: Mapping[str, np.ndarray], *, timeout: float, request_id: str) -> Reply:
        """ModelInfer with typed contents; the deadline travels as gRPC's own timeout."""
        from parity.proto import open_inference_grpc_pb2 as pb

        request = pb.ModelInferRequest(model_name=self.model, model_version=self.version, id=request_id)
        for name, values in columns.items():
            datatype = datatype_of(values)
            tensor = request.inputs.add(name=name, datatype=datatype, shape=[len(values)])
            field = getattr(tensor.contents, CONTENTS_FIELD[datatype])
            if datatype == "BYTES":
                field.extend(str(v).encode() for v in values.tolist())
            else:
                field.extend(values.tolist())
        reply = await self._call("ModelInfer", request, timeout, (("x-request-id", request_id),))
        outputs: dict[str, np.ndarray] = {}
        for i, tensor in enumerate(reply.outputs):
            if reply.raw_output_contents:
                raw = reply.raw_output_contents[i]
                outputs[tensor.name] = _from_raw(raw, tensor.datatype, list(tensor.shape), tensor.name, self.label)
            else:
                items = list(getattr(tensor.contents, CONTENTS_FIELD.get(tensor.datatype, "bytes_contents")))
                outputs[tensor.name] = _array(items, tensor.datatype, tensor.name, self.label)
        return Reply(outputs, reply.model_version)

    async def aclose(self) -> None:
        """Close the channel."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None


def _from_raw(raw: bytes, datatype: str, shape: list[int], name: str, label: str) -> np.ndarray:
    """One raw output tensor (gRPC ``raw_output_contents``) as a typed, writable array."""
    if datatype not in NUMPY_DTYPES:
        raise DownstreamError(f"{label}: output {name!r} has unsupported datatype {datatype!r}", endpoint=label)
    try:
        values = decode_raw(name, datatype, raw, int(np.prod(shape)), kind="output")
    except SchemaError as exc:
        raise DownstreamError(f"{label} answered a malformed tensor: {exc}", endpoint=label) from None
    if isinstance(values, list):
        return np.array(values, dtype=object)
    return values.astype(NUMPY_DTYPES[datatype])  # a copy in memory order: the rules may write to it


class LocalClient(Client):
    """An artifact run in this process (a registry ref or directory, or a loaded Artifact)."""

    def __init__(self, target: str | Artifact, *, registry: Registry | None = None, trusted: bool = False) -> None:
        self.target = target
        self.registry = registry
        self.trusted = trusted
        self._artifact: Artifact | None = None if isinstance(target, str) else target
        self.label = f"in-process {target}" if isinstance(target, str) else f"in-process artifact {target.name!r}"

    def artifact(self) -> Artifact:
        """The loaded artifact (loaded and digest-verified on first use)."""
        if self._artifact is None:
            from parity.registry import Registry

            registry = self.registry or Registry()
            assert isinstance(self.target, str)
            self._artifact = registry.load(self.target, trusted=self.trusted)
        return self._artifact

    async def metadata(self, timeout: float) -> ModelMeta:
        """The artifact's signature."""
        art = self.artifact()
        sig = art.signature
        return ModelMeta(
            art.name,
            (str(art.version or 0),),
            {c.name: c.datatype for c in sig.inputs},
            {o.name: o.datatype for o in sig.outputs},
        )

    async def ready(self, timeout: float) -> bool:
        """Loaded means ready."""
        try:
            self.artifact()
        except ParityError:
            return False
        return True

    async def infer(self, columns: Mapping[str, np.ndarray], *, timeout: float, request_id: str) -> Reply:
        """``Artifact.predict_columns``: the same validated path as every other caller."""
        art = self.artifact()
        try:
            outputs = art.predict_columns(columns)
        except SchemaError as exc:
            raise DownstreamRejected(
                f"downstream {self.label} rejected the request: {exc}", endpoint=self.label, status=400
            ) from exc
        return Reply(dict(outputs), str(art.version or 0))


class StubClient(Client):
    """A user-supplied stand-in for tests: a callable of the columns, or constant outputs per row."""

    def __init__(
        self, stub: Callable[[Mapping[str, np.ndarray]], Any] | Mapping[str, Any], *, name: str = "stub"
    ) -> None:
        self.stub = stub
        self.label = f"stub {name!r}"

    async def metadata(self, timeout: float) -> None:
        """A stub declares nothing: the rules it feeds are checked when they run."""
        return None

    async def ready(self, timeout: float) -> bool:
        """Always ready."""
        return True

    async def infer(self, columns: Mapping[str, np.ndarray], *, timeout: float, request_id: str) -> Reply:
        """Call the stub (awaiting it if it is a coroutine) and type its answer as arrays."""
        rows = len(next(iter(columns.values()))) if columns else 0
        if callable(self.stub):
            try:
                raw = self.stub(columns)
                if asyncio.iscoroutine(raw):
                    raw = await raw
            except ParityError:
                raise
            except Exception as exc:  # the stub stands for a model: its failure is a downstream failure
                raise DownstreamError(f"{self.label} failed: {type(exc).__name__}: {exc}", endpoint=self.label) from exc
        else:
            raw = {k: [v] * rows for k, v in self.stub.items()}
        if hasattr(raw, "to_dict") and hasattr(raw, "columns"):  # a DataFrame
            raw = {str(c): raw[c].to_numpy() for c in raw.columns}
        if not isinstance(raw, Mapping):
            raise DownstreamError(
                f"{self.label} must return a mapping of output name -> values; got {type(raw).__name__}"
            )
        outputs = {}
        for k, v in raw.items():
            arr = np.asarray(v)
            outputs[str(k)] = arr.astype(object) if arr.dtype.kind in "OUS" else arr
        return Reply(outputs, "stub")
