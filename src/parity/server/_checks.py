"""Request checks every adapter applies the same way: bearer token, request id, content type, ``Host``.

REST and gRPC both call these, so a token, an id or a name is judged by one rule on every protocol.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Collection

__all__ = [
    "BROWSER_FORM_TYPES",
    "LOOPBACK_HOSTS",
    "MAX_ECHO_CHARS",
    "MAX_REQUEST_ID_CHARS",
    "bearer_ok",
    "default_allowed_hosts",
    "echo",
    "host_allowed",
    "new_request_id",
    "request_id",
]

MAX_REQUEST_ID_CHARS = 128
"""Longest request id kept (client ids are cut here before they reach logs, responses or the lake)."""
MAX_ECHO_CHARS = 80
"""Longest client-supplied name quoted back in an error message."""
BROWSER_FORM_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
"""Content types a web page may POST cross-site without a CORS preflight (refused with 415)."""
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def new_request_id() -> str:
    """A random 128-bit request id (os.urandom is cheaper than uuid4 on the hot path)."""
    return os.urandom(16).hex()


def request_id(given: str | None) -> str:
    """The request id to use: the client's, cut to MAX_REQUEST_ID_CHARS, or a new one."""
    return given[:MAX_REQUEST_ID_CHARS] if given else new_request_id()


def bearer_ok(authorization: str | None, token: bytes) -> bool:
    """True when ``authorization`` is ``Bearer <token>`` (constant-time comparison)."""
    scheme, _, given = (authorization or "").partition(" ")
    # Compare even on a wrong scheme so timing reveals nothing about the token.
    ok = hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token)
    return ok and scheme.lower() == "bearer"


def echo(name: str) -> str:
    """``repr(name)``, shortened so a huge client-supplied name is never sent back whole."""
    if len(name) <= MAX_ECHO_CHARS:
        return repr(name)
    return f"{name[:MAX_ECHO_CHARS]!r}... ({len(name)} characters)"


def default_allowed_hosts(bind_host: str) -> tuple[str, ...]:
    """The loopback names when bound to loopback; any host otherwise (``("*",)``)."""
    host = bind_host.strip("[]").lower()
    if host in LOOPBACK_HOSTS or host.startswith("127."):
        return (*LOOPBACK_HOSTS, host) if host not in LOOPBACK_HOSTS else LOOPBACK_HOSTS
    return ("*",)


def _host_name(header: str) -> str:
    """The host of a ``Host`` header value, without the port (``[::1]:80`` -> ``::1``)."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(header: str | None, allowed: Collection[str]) -> bool:
    """True when the ``Host`` header names an allowed host (``*`` allows all; ``*.x`` its subdomains)."""
    if "*" in allowed:
        return True
    if header is None:
        return False
    name = _host_name(header)
    return any(p == name or (p.startswith("*.") and name.endswith(p[1:])) for p in allowed)
