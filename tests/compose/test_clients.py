"""Downstream clients on the wire: RestClient (aiohttp) against real sockets on 127.0.0.1, raw gRPC outputs."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from parity.codec import encode_raw
from parity.compose._clients import Reply, RestClient, Retryable, _from_raw
from parity.errors import DeclarationError, DownstreamError, DownstreamRejected, DownstreamTimeout
from tests._servers import make_certificate


def _reply(status: str, body: bytes, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Content-Type: application/json", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


OK = orjson.dumps({"model_version": "3", "outputs": [{"name": "p", "datatype": "FP64", "shape": [1], "data": [0.25]}]})
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(
    b"%x\r\n%s\r\n" % (len(part), part) for part in (OK[:10], OK[10:])
) + b"0\r\n\r\n"  # fmt: skip

CLOSE = b"close"  # a canned "reply" that closes the connection without answering


class CannedServer:
    """An HTTP/1.1 server answering each request with the next canned reply; records connections and heads."""

    def __init__(self, replies: list[bytes], *, close_after_each: bool = False, tls: ssl.SSLContext | None = None):
        self.replies, self.close_after_each, self.tls = replies, close_after_each, tls
        self.connections = 0
        self.heads: list[bytes] = []

    async def __aenter__(self) -> CannedServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = next(
                    (int(x.split(b":")[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")), 0
                )
                await reader.readexactly(length)
                reply = self.replies.pop(0)
                if reply == CLOSE:
                    break
                if not reply:
                    await asyncio.Event().wait()  # never answers: the client's deadline must end the call
                writer.write(reply)
                await writer.drain()
                if self.close_after_each:
                    break  # closes without saying so: the client's kept connection goes stale
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


COLUMNS = {"x": np.array([1.0]), "plan": np.array(["pro"], dtype=object)}


def calls(
    replies: list[bytes], n: int = 1, *, tls: ssl.SSLContext | None = None, close_after_each: bool = False,
    timeout: float = 5.0, **client: Any,
) -> tuple[list[Reply], CannedServer]:  # fmt: skip
    """Serve ``replies``, make ``n`` sequential infer calls through one RestClient; return the replies and server."""

    async def go() -> tuple[list[Reply], CannedServer]:
        async with CannedServer(replies, close_after_each=close_after_each, tls=tls) as srv:
            scheme = "https" if tls else "http"
            rest = RestClient(f"{scheme}://127.0.0.1:{srv.port}", "m", **client)
            got = []
            try:
                for _ in range(n):
                    got.append(await rest.infer(COLUMNS, timeout=timeout, request_id="r1"))
                    if close_after_each:
                        await asyncio.sleep(0.01)  # let the closing server's FIN arrive before the next call
            finally:
                await rest.aclose()
            return got, srv

    return asyncio.run(go())


@pytest.mark.parametrize("close_after_each", [False, True])
def test_keep_alive_reuse_chunked_bodies_and_connections_the_server_closed(close_after_each: bool) -> None:
    replies, srv = calls([_reply("200 OK", OK), CHUNKED, _reply("200 OK", OK)], 3, close_after_each=close_after_each)
    assert [(r.version, r.outputs["p"].tolist()) for r in replies] == [("3", [0.25])] * 3
    # One kept-alive connection, or a fresh one after each the server closed.
    assert srv.connections == (3 if close_after_each else 1)
    assert all(h.startswith(b"POST /v2/models/m/infer HTTP/1.1") for h in srv.heads)


def test_a_kept_connection_closed_before_the_answer_is_retried_on_a_fresh_one() -> None:
    # The kept connection reads the second request and closes without a byte of answer (what a
    # server closing an idle connection looks like): the client carries the call on a fresh one.
    replies, srv = calls([_reply("200 OK", OK), CLOSE, _reply("200 OK", OK)], 2)
    assert [r.outputs["p"].tolist() for r in replies] == [[0.25], [0.25]]
    assert srv.connections == 2


def test_a_server_that_closes_every_attempt_is_retryable() -> None:
    with pytest.raises(Retryable, match="unreachable"):
        calls([CLOSE, CLOSE])


@pytest.mark.parametrize(
    ("reply", "kind", "pattern"),
    [
        (_reply("503 Service Unavailable", b'{"error": "busy"}'), Retryable, r"unavailable \(503\): busy"),
        (_reply("400 Bad Request", b'{"error": "input x: expected FP64"}'), DownstreamRejected,
         r"rejected the request \(400\): input x: expected FP64"),
        (_reply("500 Internal Server Error", b"boom"), DownstreamError, r"failed \(500\): boom"),
        (_reply("200 OK", b"not json"), DownstreamError, "answered invalid JSON"),
    ],
)  # fmt: skip
def test_statuses_map_to_the_composition_errors(reply: bytes, kind: type[Exception], pattern: str) -> None:
    with pytest.raises(DownstreamError, match=pattern) as info:
        calls([reply])
    assert type(info.value) is kind
    assert str(info.value).startswith(("m at http://127.0.0.1", "downstream m at http://127.0.0.1"))


def test_a_server_that_never_answers_is_a_downstream_timeout() -> None:
    with pytest.raises(DownstreamTimeout, match=r"did not answer within 0\.2 s"):
        calls([b""], timeout=0.2)


def test_a_refused_connection_is_retryable() -> None:
    async def go() -> None:
        async with CannedServer([]) as srv:
            port = srv.port
        rest = RestClient(f"http://127.0.0.1:{port}", "m")
        try:
            await rest.infer(COLUMNS, timeout=5.0, request_id="r1")
        finally:
            await rest.aclose()

    with pytest.raises(Retryable, match="unreachable"):
        asyncio.run(go())


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path, Path]:
    """A server TLS context with a self-signed certificate for 127.0.0.1, and that certificate's and key's paths."""
    cert, key = make_certificate(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert, key


def test_tls_with_a_ca_bundle_and_a_bearer_token(tls: tuple[ssl.SSLContext, Path, Path]) -> None:
    replies, srv = calls([_reply("200 OK", OK)], tls=tls[0], token="s3cret", verify=str(tls[1]))
    assert replies[0].outputs["p"].tolist() == [0.25]
    assert b"authorization: bearer s3cret" in srv.heads[0].lower()


def test_tls_without_verification_when_asked(tls: tuple[ssl.SSLContext, Path, Path]) -> None:
    replies, _ = calls([_reply("200 OK", OK)], tls=tls[0], verify=False)
    assert replies[0].outputs["p"].tolist() == [0.25]


def test_tls_verification_failure_is_not_retried(tls: tuple[ssl.SSLContext, Path, Path]) -> None:
    with pytest.raises(DownstreamError, match="TLS failed") as info:
        calls([_reply("200 OK", OK)], tls=tls[0])  # the system CAs do not know the test certificate
    assert not isinstance(info.value, Retryable)


def test_raw_grpc_outputs_decode_through_the_codec_into_writable_arrays() -> None:
    probs = _from_raw(encode_raw(np.array([0.25, 0.75]), "FP64"), "FP64", [2, 1], "p", "m at grpc://h")
    assert probs.dtype == np.float64 and probs.tolist() == [0.25, 0.75]
    probs[0] = 1.0  # a copy: business rules may write to the outputs they get
    labels = _from_raw(encode_raw(np.array(["no", "yes"], dtype=object), "BYTES"), "BYTES", [2], "label", "m")
    assert labels.dtype == object and labels.tolist() == ["no", "yes"]
    with pytest.raises(
        DownstreamError, match=r"m at grpc://h answered a malformed tensor: output 'p': binary data is 8"
    ):
        _from_raw(b"\0" * 8, "FP64", [2], "p", "m at grpc://h")
    with pytest.raises(DownstreamError, match="output 'q' has unsupported datatype 'UINT8'"):
        _from_raw(b"\0", "UINT8", [1], "q", "m")


def test_a_client_certificate_for_mutual_tls(tls: tuple[ssl.SSLContext, Path, Path]) -> None:
    _, cert, key = tls
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(cert))
    server.load_cert_chain(cert, key)
    server.verify_mode = ssl.CERT_REQUIRED  # the test certificate signs itself: it is also the client's CA
    replies, _ = calls([_reply("200 OK", OK)], tls=server, verify=str(cert), cert=(str(cert), str(key)))
    assert replies[0].outputs["p"].tolist() == [0.25]
    with pytest.raises(DownstreamError):
        calls([_reply("200 OK", OK)], tls=server, verify=str(cert))  # no client certificate: refused


@pytest.mark.parametrize("chunked", [False, True])
def test_a_response_over_the_size_bound_is_refused(monkeypatch: pytest.MonkeyPatch, chunked: bool) -> None:
    import parity.compose._clients as clients

    monkeypatch.setattr(clients, "MAX_RESPONSE_BYTES", 20)
    with pytest.raises(DownstreamError, match="exceeds 20") as info:
        calls([CHUNKED if chunked else _reply("200 OK", OK)])
    assert not isinstance(info.value, Retryable)


@pytest.mark.parametrize("field", ["verify", "cert"])
def test_unreadable_tls_files_are_a_declaration_error_naming_the_field(tmp_path: Path, field: str) -> None:
    missing = str(tmp_path / "nowhere.pem")
    rest = RestClient("https://127.0.0.1:9", "m", **{field: missing})
    with pytest.raises(DeclarationError, match=f"{field} must be a readable") as info:
        asyncio.run(rest.ready(1.0))
    assert info.value.field == field and missing in str(info.value)
