"""Structured JSON logs: one JSON object per line on stderr, with the request id when there is one.

Fields: ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``msg``, ``request_id`` (while handling a
request), ``pid``, any ``extra={...}`` fields given to the log call, and ``exc`` on exceptions.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["JsonFormatter", "configure_logging", "log_request", "request_id_var"]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("parity_request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """Format records as single-line JSON objects."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line of ``record``."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": os.getpid(),
        }
        rid = request_id_var.get()
        if rid is not None:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure_logging(level: str = "info") -> None:
    """Send parity and uvicorn logs to stderr as JSON lines at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning or error")
    for name in ("parity", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler] if name in ("parity", "uvicorn") else []
        logger.setLevel(numeric)
        logger.propagate = name not in ("parity", "uvicorn")


_requests = logging.getLogger("parity.server")


def log_request(
    model: str | None, version: str | None, protocol: str, status: int | str, seconds: float, rows: int | None
) -> None:
    """Write the opt-in per-request line (``--log-requests``); REST and gRPC share its fields."""
    _requests.info(
        "request",
        extra={
            "model": model, "version": version or None, "protocol": protocol, "status": status,
            "latency_ms": round(seconds * 1e3, 3), "rows": rows,
        },
    )  # fmt: skip
