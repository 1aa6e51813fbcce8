"""Admission control: how many requests one process holds per model version (``--max-inflight``).

A request takes a slot when its adapter first sees it and gives it back once it is answered; past
the limit it is refused at once with :class:`~parity.server._errors.Overloaded` (503 with
``Retry-After`` over REST, ``UNAVAILABLE`` over gRPC). The REST adapter takes the slot before it
reads or decodes the body, so the limit bounds every request the process has started on, the
ones waiting for the event loop to decode them included, not only those waiting for the model
(decoding a request is most of its cost, and a request small enough to run inline holds the loop
from decode to answer, so counted only around the model run the limit is never reached). gRPC
decodes in its own threads and takes the slot in :meth:`DataPlane.infer
<parity.server._dataplane.DataPlane.infer>`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager

from parity.server._errors import Overloaded

__all__ = ["Admission"]


class Admission:
    """Per-key (model version) in-flight counters bounded by one limit (used on the event loop only: no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self._held: dict[Hashable, int] = {}

    def held(self, key: Hashable) -> int:
        """Slots ``key`` holds now (the ``parity_requests_in_flight`` gauge)."""
        return self._held.get(key, 0)

    def take(self, key: Hashable, model: str) -> None:
        """Take a slot for ``key``, or raise Overloaded naming ``model`` when all are held."""
        held = self._held.get(key, 0)
        if held >= self.limit:
            raise Overloaded(f"model {model!r} has {self.limit} requests in flight (the limit); retry shortly")
        self._held[key] = held + 1

    def give(self, key: Hashable) -> None:
        """Give back a slot taken with :meth:`take`."""
        left = self._held[key] - 1
        if left:
            self._held[key] = left
        else:
            del self._held[key]  # unloaded versions leave no entry behind

    @contextmanager
    def slot(self, key: Hashable, model: str) -> Iterator[None]:
        """Hold a slot for ``key`` for the duration of the block (Overloaded if none is free)."""
        self.take(key, model)
        try:
            yield
        finally:
            self.give(key)
