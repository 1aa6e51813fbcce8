"""A minimal keep-alive HTTP/1.1 client for the hot path: POST a JSON body to a plain-HTTP downstream.

Measured on the development machine, one httpx ``AsyncClient.post`` to a parity server costs
~10 ms of client time against ~0.2 ms for the same request written and read on an asyncio
stream; a composition pays that per downstream call. This pool writes the request line, headers
and body in one write, reads the status line and headers (bounded), then a ``Content-Length`` or
chunked body (bounded), and keeps the connection for the next call unless the server said
``Connection: close``. A reused connection the server had already closed is retried once on a
fresh one. TLS endpoints, metadata and readiness go through httpx.
"""

from __future__ import annotations

import asyncio

__all__ = ["MAX_RESPONSE_BYTES", "Http1Pool", "StaleConnection"]

MAX_HEADER_BYTES = 64 * 1024
MAX_RESPONSE_BYTES = 256 * 1024 * 1024


class StaleConnection(ConnectionError):
    """The server closed a kept-alive connection before answering."""


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Http1Pool:
    """Idle keep-alive connections to one ``host:port``; each carries one request at a time."""

    def __init__(self, host: str, port: int, *, max_idle: int = 64) -> None:
        self.host, self.port, self.max_idle = host, port, max_idle
        self._idle: list[Conn] = []
        self._host_header = f"{host}:{port}".encode()

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POST ``body``; return the status and the response body (OSError family on transport failures)."""
        while self._idle:
            conn = self._idle.pop()
            try:
                return await self._exchange(conn, path, body, headers)
            except StaleConnection:
                continue  # closed while idle: try the next one, then a fresh connection
        conn = await asyncio.open_connection(self.host, self.port, limit=MAX_HEADER_BYTES)
        return await self._exchange(conn, path, body, headers)

    async def _exchange(self, conn: Conn, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        reader, writer = conn
        lines = [f"POST {path} HTTP/1.1", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head = b"\r\n".join([line.encode("latin-1") for line in lines] + [b"Host: " + self._host_header, b"", b""])
        started = False
        try:
            writer.write(head + body)
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise StaleConnection("the connection was closed before the response") from None
                raise
            started = True
            status, fields = _parse_head(raw)
            if fields.get("transfer-encoding", "").lower() == "chunked":
                content = await _read_chunked(reader)
            else:
                length = int(fields.get("content-length", "0"))
                if length > MAX_RESPONSE_BYTES:
                    raise ConnectionError(f"response of {length} bytes exceeds {MAX_RESPONSE_BYTES}")
                content = await reader.readexactly(length)
        except BaseException as exc:
            writer.close()
            if isinstance(exc, ConnectionResetError | BrokenPipeError) and not started:
                raise StaleConnection(str(exc)) from exc
            raise
        if fields.get("connection", "").lower() == "close" or len(self._idle) >= self.max_idle:
            writer.close()
        else:
            self._idle.append(conn)
        return status, content

    async def aclose(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()


def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP/1.1 response: {lines[0][:80]!r}")
    fields = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return int(parts[1]), fields


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # the (empty) trailer
            return b"".join(chunks)
        total += size
        if total > MAX_RESPONSE_BYTES:
            raise ConnectionError(f"chunked response exceeds {MAX_RESPONSE_BYTES} bytes")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
