"""A logger wrapper that emits at most one line per interval and counts what it suppressed."""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """Log through ``logger`` at most once every ``interval_s`` seconds (floods must not flood the log)."""

    def __init__(self, logger: logging.Logger, *, interval_s: float = 10.0) -> None:
        self.logger = logger
        self.interval_s = float(interval_s)
        self._next = 0.0
        self._suppressed = 0
        self._lock = threading.Lock()

    def log(self, level: int, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless a line went out less than ``interval_s`` ago; True if logged."""
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._suppressed += 1
                return False
            self._next = now + self.interval_s
            suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            msg += f" ({suppressed} similar message(s) suppressed)"
        self.logger.log(level, msg, *args)
        return True

    def warning(self, msg: str, *args: object) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, msg, *args)

    def info(self, msg: str, *args: object) -> bool:
        """:meth:`log` at INFO."""
        return self.log(logging.INFO, msg, *args)
