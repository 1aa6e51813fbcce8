"""The HTTP/1.1 connection protocol: uvicorn's httptools protocol with limits on slow and idle clients.

uvicorn bounds neither how long a client may take to send its headers or its body, nor how many
header bytes it may send, and its ``limit_concurrency`` answers 503 to everything, health probes
included, once idle sockets fill it. :class:`GuardedHttpProtocol` adds:

* a header timeout: from the connection's start (or a request's first byte) until its headers are
  complete; a client that sends nothing, or drips header bytes, gets ``408`` and is closed;
* a body timeout: from the end of the headers until the declared body has arrived (``408``);
* a header size cap (``431`` above ``max_header_bytes``);
* health probes (``/v2/health/live``, ``/v2/health/ready``) bypass the connection limit, so a
  kubelet keeps getting answers while idle sockets hold every slot (requests still in flight are
  bounded: probes get their own ``HEALTH_RESERVE`` of tasks above the limit).

Timers are armed only when a phase spans several reads: a request that arrives in one read (the
common case) costs no timer at all. Settings travel on the uvicorn ``Config`` as ``parity_http``
(an :class:`HttpLimits`), which survives the pickling of ``--workers N``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["ARRIVAL_KEY", "HEALTH_PATHS", "HEALTH_RESERVE", "GuardedHttpProtocol", "HttpLimits"]

ARRIVAL_KEY = "parity.arrival"
"""ASGI scope key: ``time.perf_counter()`` when the request's first byte was parsed."""

HEALTH_PATHS = frozenset({b"/v2/health/live", b"/v2/health/ready"})
HEALTH_RESERVE = 64
"""In-flight health probes allowed above the concurrency limit."""


@dataclass(frozen=True)
class HttpLimits:
    """Per-connection limits of :class:`GuardedHttpProtocol`."""

    header_timeout_s: float = 5.0
    body_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024


_DEFAULT = HttpLimits()


def _plain(status: bytes, message: str) -> bytes:
    body = message.encode()
    head = b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    return head + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body


_TIMEOUT = _plain(b"408 Request Timeout", "request not received in time")
_TOO_LARGE = _plain(b"431 Request Header Fields Too Large", "request headers too large")


class GuardedHttpProtocol(HttpToolsProtocol):
    """httptools protocol with header/body timeouts, a header size cap and health probes beside the limit."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        limits: HttpLimits = getattr(config, "parity_http", _DEFAULT)
        self._limits = limits
        self._in_headers = True  # bytes that arrive now belong to a request's headers
        self._begun = False  # a request's first bytes arrived, its headers are not complete
        self._in_body = False
        self._header_bytes = 0  # raw bytes read while in headers (a header still being sent counts too)
        self._header_total = 0  # URL + header bytes parsed so far
        self._too_large = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_phase = ""

    # ------------------------------------------------------------------ timers

    def _arm(self, phase: str, seconds: float) -> None:
        if self._timer is not None:
            if self._timer_phase == phase:
                return  # a phase's clock starts once: dripping bytes does not reset it
            self._timer.cancel()
        self._timer_phase = phase
        self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_phase = ""

    def _expired(self) -> None:
        phase, self._timer, self._timer_phase = self._timer_phase, None, ""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        # Say why, unless a response to this request already started (the app answered before the body).
        if phase != "body" or (cycle is not None and not cycle.response_started):
            self.transport.write(_TIMEOUT)
        if cycle is not None:
            cycle.keep_alive = False
        self.transport.close()

    def _update_timers(self) -> None:
        if self._begun:
            self._arm("headers", self._limits.header_timeout_s)
        elif self._in_body:
            self._arm("body", self._limits.body_timeout_s)
        elif self._timer is not None and self._timer_phase != "idle":
            self._disarm()

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the connection; it must send a request's headers within the header timeout."""
        super().connection_made(transport)
        self._arm("idle", self._limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the timer with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, enforcing the header cap, then (re)arm the timer of the current phase."""
        self._unset_keepalive_if_required()
        if self._in_headers:
            self._header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self._too_large:
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        if self._in_headers and self._header_bytes > self._limits.max_header_bytes:
            self.transport.write(_TOO_LARGE)
            self.transport.close()
            return
        if self.transport.is_closing():
            return
        self._update_timers()

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        """A new request starts: its headers are being read."""
        self._begun = True
        self._disarm()  # the idle clock stops, the header clock starts (in data_received)
        super().on_message_begin()
        # Latency metrics and deadlines count from the request's first byte, not from routing.
        self.scope[ARRIVAL_KEY] = time.perf_counter()  # type: ignore[literal-required]

    def on_url(self, url: bytes) -> None:
        """Collect the URL, counting it against the header cap."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Collect a header, counting it against the header cap."""
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._header_total += size
        if self._header_total > self._limits.max_header_bytes:
            self._too_large = True
            raise ValueError("request headers exceed the cap")  # httptools turns it into HttpParserError

    def on_headers_complete(self) -> None:
        """Headers done: start the request (health probes bypass the connection limit)."""
        self._in_headers = self._begun = False
        self._header_bytes = self._header_total = 0
        path = self.url.split(b"?", 1)[0]
        if path in HEALTH_PATHS and self.limit_concurrency is not None:
            limit = self.limit_concurrency
            # Idle sockets must not starve probes; in-flight probes are still bounded.
            self.limit_concurrency = None if len(self.tasks) < limit + HEALTH_RESERVE else 0
            try:
                super().on_headers_complete()
            finally:
                self.limit_concurrency = limit
        else:
            super().on_headers_complete()
        # A body is still to come unless the message already completed in this read.
        self._in_body = True

    def on_message_complete(self) -> None:
        """The whole body arrived."""
        self._in_body = False
        self._in_headers = True
        super().on_message_complete()
