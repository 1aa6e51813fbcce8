"""The keep-alive HTTP/1.1 pool of plain-HTTP downstream calls, against a real socket server on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from parity.compose._http1 import Http1Pool


async def _server(replies: list[bytes], close_after_each: bool) -> tuple[asyncio.Server, list[int]]:
    """A server answering each request with the next canned reply; counts the connections it accepted."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        while replies:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = int(next(x for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")).split(b":")[1])
            await reader.readexactly(length)
            writer.write(replies.pop(0))
            await writer.drain()
            if close_after_each:
                break  # closes without saying so: the client's kept connection goes stale
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, accepted


@pytest.mark.parametrize("close_after_each", [False, True])
def test_content_length_chunked_and_stale_connections(close_after_each: bool) -> None:
    replies = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
    ]

    async def go() -> tuple[list[tuple[int, bytes]], int]:
        server, accepted = await _server(replies, close_after_each)
        port = server.sockets[0].getsockname()[1]
        pool = Http1Pool("127.0.0.1", port)
        got = []
        for _ in range(3):
            got.append(await pool.post("/x", b"{}", {"content-type": "application/json"}))
            await asyncio.sleep(0.01)  # let a closing server's FIN arrive
        await pool.aclose()
        server.close()
        await server.wait_closed()
        return got, len(accepted)

    got, connections = asyncio.run(go())
    assert got == [(200, b"hello"), (200, b"abcde"), (503, b"busy")]
    # One kept-alive connection, or a fresh one after each stale one.
    assert connections == (3 if close_after_each else 1)


def test_a_refused_connection_is_an_os_error() -> None:
    async def go() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        await Http1Pool("127.0.0.1", port).post("/x", b"{}", {})

    with pytest.raises(OSError):
        asyncio.run(go())
