"""Adaptive batching: concurrent requests for one model version run as one merged batch.

Each request's columns are already validated and typed. A request joins a queue; one worker
task per model version takes queued requests up to ``max_batch_size`` rows, concatenates their
columns, runs the model ONCE and hands every caller exactly its own rows back (split by row
offsets). A request of ``max_batch_size`` rows or more runs alone, without queueing.

How long a batch waits for company is adaptive: the worker keeps yielding to the event loop
while new requests keep joining, up to ``max_batch_delay_ms`` after it started collecting. A
lone request therefore waits one event-loop turn, not the whole delay, while under load
batches fill with the requests the loop parsed meanwhile (and with those that arrived while the
previous batch ran). Defaults: batching on, ``max_batch_size=64``, ``max_batch_delay_ms=1``;
``max_batch_size=1`` disables batching (every request runs on its own).

Where a batch runs adapts to the model's speed: runs expected to be short run inline on the
event loop (measured on the test pipeline: a 1-row ONNX run costs ~30 us, a 100-row one ~50 us,
while an :func:`asyncio.to_thread` round trip costs ~100 us, and inline runs gave 1.4x the
throughput of threaded ones for 100-row requests), long ones in a worker thread (onnxruntime
releases the GIL, and the loop keeps parsing requests meanwhile). The inline row limit starts at
``inline_max_rows`` and after every run halves when a run of that size took longer than
``inline_budget_ms`` (default 1 ms; ``PARITY_INLINE_BUDGET_MS``, 0 = always a thread) or doubles
when a run of twice the limit, extrapolated linearly from this run, would still fit the budget.
If a merged batch fails, its requests are retried one by one so a failure stays with the request
that caused it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from parity.server._errors import ModelNotReady

__all__ = ["DEFAULT_MAX_BATCH_DELAY_MS", "DEFAULT_MAX_BATCH_SIZE", "INLINE_BUDGET_MS", "INLINE_MAX_ROWS", "Batcher"]

DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_MAX_BATCH_DELAY_MS = 1.0
INLINE_MAX_ROWS = 64
INLINE_BUDGET_MS = float(os.environ.get("PARITY_INLINE_BUDGET_MS", "1.0"))
_INLINE_CEILING = 2048  # larger runs may use several threads, whose CPU time thread_time misses

Columns = Mapping[str, np.ndarray]
Predict = Callable[[Columns], dict[str, np.ndarray]]
BatchObserver = Callable[[int, int], None]


@dataclass(slots=True)
class _Item:
    columns: Columns
    rows: int
    future: asyncio.Future[dict[str, np.ndarray]]
    timing: dict[str, float] | None = None


class Batcher:
    """Merge concurrent requests of one model version into batches and run them serially."""

    def __init__(
        self,
        predict: Predict,
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_batch_delay_ms: float = DEFAULT_MAX_BATCH_DELAY_MS,
        inline_max_rows: int = INLINE_MAX_ROWS,
        inline_budget_ms: float = INLINE_BUDGET_MS,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self._predict = predict
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_batch_delay_s = max(0.0, float(max_batch_delay_ms)) / 1000.0
        self.inline_budget_s = max(0.0, float(inline_budget_ms)) / 1000.0
        self.inline_max_rows = int(inline_max_rows) if self.inline_budget_s > 0 else 0
        self._on_batch = on_batch
        self._pending: deque[_Item] = deque()
        self._pending_rows = 0
        self._worker: asyncio.Task[None] | None = None
        self._running = 0
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch."""
        return len(self._pending)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    async def submit(
        self, columns: Columns, rows: int, timing: dict[str, float] | None = None
    ) -> dict[str, np.ndarray]:
        """Run ``rows`` rows of typed columns, batched with concurrent requests; return their outputs.

        ``timing`` (if given) receives ``start``/``end``: ``time.perf_counter()`` around the model run.
        """
        if self._closed:
            raise ModelNotReady("this model version is being unloaded; retry to reach the active version")
        if self.max_batch_size <= 1 or rows >= self.max_batch_size:
            return await self._run_alone(columns, rows, timing)
        loop = asyncio.get_running_loop()
        item = _Item(columns, rows, loop.create_future(), timing)
        self._pending.append(item)
        self._pending_rows += rows
        self._idle.clear()
        if self._worker is None:
            self._worker = loop.create_task(self._drain())
        return await item.future

    async def close(self) -> None:
        """Refuse new requests and wait until every accepted one has its answer."""
        self._closed = True
        await self._idle.wait()

    # ------------------------------------------------------------------ internals

    def _check_idle(self) -> None:
        if not self._pending and self._worker is None and self._running == 0:
            self._idle.set()

    async def _call(self, columns: Columns, rows: int) -> dict[str, np.ndarray]:
        if rows <= self.inline_max_rows:
            return self._timed(columns, rows)
        return await asyncio.to_thread(self._timed, columns, rows)

    def _timed(self, columns: Columns, rows: int) -> dict[str, np.ndarray]:
        """Run the model and adapt the inline row limit to how long it took (see the module docstring)."""
        # CPU time of this thread, not wall time: on a busy core (gRPC's poller threads, other
        # workers) a 30 us run can be preempted for milliseconds, and wall time would then push
        # every run into a thread for good. onnxruntime runs small batches on the calling thread.
        start = time.thread_time()
        out = self._predict(columns)
        elapsed = time.thread_time() - start
        budget = self.inline_budget_s
        if budget > 0:
            # Plain int updates: a race between two threads only delays the adaptation by a run.
            limit = self.inline_max_rows
            if elapsed > budget and rows <= limit:
                self.inline_max_rows = limit // 2
            elif rows and rows * 2 >= limit and elapsed * 2 * max(limit, 1) / rows < budget:
                # Linear extrapolation: a run of twice the current limit would still fit the budget.
                self.inline_max_rows = min(_INLINE_CEILING, max(1, limit * 2))
        return out

    async def _run_alone(self, columns: Columns, rows: int, timing: dict[str, float] | None) -> dict[str, np.ndarray]:
        self._running += 1
        self._idle.clear()
        try:
            started = time.perf_counter()
            out = await self._call(columns, rows)
            if timing is not None:
                timing["start"], timing["end"] = started, time.perf_counter()
            if self._on_batch is not None:
                self._on_batch(rows, 1)
            return out
        finally:
            self._running -= 1
            self._check_idle()

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                deadline = loop.time() + self.max_batch_delay_s
                # Wait for company only while it keeps arriving (see the module docstring).
                while self._pending_rows < self.max_batch_size and loop.time() < deadline:
                    before = len(self._pending)
                    await asyncio.sleep(0)
                    if len(self._pending) == before:
                        break
                batch = self._take()
                if batch:
                    await self._execute(batch)
        finally:
            self._worker = None
            self._check_idle()

    def _take(self) -> list[_Item]:
        """Pop queued requests up to max_batch_size rows, skipping those whose caller gave up."""
        batch: list[_Item] = []
        rows = 0
        while self._pending:
            item = self._pending[0]
            if item.future.done():  # cancelled (timeout or disconnect): do not run it
                self._pending.popleft()
                self._pending_rows -= item.rows
                continue
            if batch and rows + item.rows > self.max_batch_size:
                break
            self._pending.popleft()
            self._pending_rows -= item.rows
            batch.append(item)
            rows += item.rows
        return batch

    async def _execute(self, batch: list[_Item]) -> None:
        if len(batch) == 1:
            item = batch[0]
            started = time.perf_counter()
            try:
                out = await self._call(item.columns, item.rows)
            except Exception as exc:
                _settle(item, exc=exc)
            else:
                if item.timing is not None:
                    item.timing["start"], item.timing["end"] = started, time.perf_counter()
                _settle(item, out=out)
                if self._on_batch is not None:
                    self._on_batch(item.rows, 1)
            return
        names = list(batch[0].columns)
        merged = {name: np.concatenate([item.columns[name] for item in batch]) for name in names}
        rows = sum(item.rows for item in batch)
        started = time.perf_counter()
        try:
            out = await self._call(merged, rows)
        except Exception:
            # Isolate the failure: rerun each request alone so only the culprit gets the error.
            for item in batch:
                await self._execute([item])
            return
        if self._on_batch is not None:
            self._on_batch(rows, len(batch))
        ended = time.perf_counter()
        start = 0
        for item in batch:
            if item.timing is not None:
                item.timing["start"], item.timing["end"] = started, ended
            end = start + item.rows
            _settle(item, out={name: values[start:end] for name, values in out.items()})
            start = end


def _settle(item: _Item, *, out: dict[str, np.ndarray] | None = None, exc: BaseException | None = None) -> None:
    if item.future.done():
        return
    if exc is not None:
        item.future.set_exception(exc)
    else:
        assert out is not None
        item.future.set_result(out)
