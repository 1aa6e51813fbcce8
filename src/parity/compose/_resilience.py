"""Resilience of downstream calls: retry policy with jittered backoff, and a circuit breaker.

Retries happen only on failures that say nothing about the request (a connection error, a 503)
and never past the request's deadline. The breaker counts consecutive failures per downstream:
``closed`` lets calls through, ``open`` fails them at once for ``reset_s`` seconds, then
``half_open`` lets one trial call through whose outcome closes or re-opens the breaker.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Literal

from parity.errors import DeclarationError

__all__ = ["BREAKER_STATES", "Breaker", "BreakerState", "Retry"]

BreakerState = Literal["closed", "open", "half_open"]
BREAKER_STATES: tuple[BreakerState, ...] = ("closed", "open", "half_open")


@dataclass(frozen=True)
class Retry:
    """Retry policy: up to ``attempts`` calls in all, sleeping a jittered exponential backoff between."""

    attempts: int = 3
    backoff_s: float = 0.02
    max_backoff_s: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise DeclarationError(f"Retry.attempts must be >= 1; got {self.attempts}", field="attempts")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise DeclarationError(
                f"Retry backoffs must be >= 0; got backoff_s={self.backoff_s}, max_backoff_s={self.max_backoff_s}",
                field="backoff_s",
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based): full jitter over the exponential cap."""
        # Full jitter spreads the retries of many clients so they do not hit a recovering server together.
        cap = min(self.max_backoff_s, self.backoff_s * (2 ** (attempt - 1)))
        return random.uniform(0.0, cap)


class Breaker:
    """Circuit breaker of one downstream: opens after ``failures`` consecutive failures."""

    def __init__(self, failures: int = 5, reset_s: float = 2.0) -> None:
        if failures < 1:
            raise DeclarationError(f"breaker failures must be >= 1; got {failures}", field="breaker_failures")
        self.failures = failures
        self.reset_s = reset_s
        self._state: BreakerState = "closed"
        self._consecutive = 0
        self._opened_at = 0.0
        self._trial = False  # a half-open trial call is under way
        self._lock = threading.Lock()
        self.opened = 0
        """How many times the breaker opened (for metrics)."""

    @property
    def state(self) -> BreakerState:
        """Current state; an open breaker past its reset time reads as half-open."""
        with self._lock:
            if self._state == "open" and time.monotonic() - self._opened_at >= self.reset_s:
                return "half_open"
            return self._state

    def allow(self) -> bool:
        """True if a call may go out now (claims the one trial slot when half-open)."""
        with self._lock:
            if self._state == "closed":
                return True
            if self._state == "open":
                if time.monotonic() - self._opened_at < self.reset_s:
                    return False
                self._state = "half_open"
                self._trial = False
            if self._trial:
                return False
            self._trial = True
            return True

    def success(self) -> None:
        """Record a call the downstream answered."""
        with self._lock:
            self._state = "closed"
            self._consecutive = 0
            self._trial = False

    def failure(self) -> None:
        """Record a call the downstream failed (connection, 5xx, timeout)."""
        with self._lock:
            self._consecutive += 1
            if self._state == "half_open" or self._consecutive >= self.failures:
                if self._state != "open":
                    self.opened += 1
                self._state = "open"
                self._opened_at = time.monotonic()
                self._trial = False
