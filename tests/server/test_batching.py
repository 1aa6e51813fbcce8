"""Adaptive batching: merged runs, exact row hand-back, isolation of failures."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping

import numpy as np
import pytest

from parity.server._batching import Batcher
from parity.server._errors import ModelNotReady


class Model:
    """Doubles x; records the size of every run; fails on a negative value."""

    def __init__(self) -> None:
        self.runs: list[int] = []
        self.seen: list[float] = []

    def __call__(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = columns["x"]
        self.runs.append(len(x))
        self.seen.extend(x.tolist())
        if (x < 0).any():
            raise ValueError("negative input")
        return {"y": x * 2.0, "tag": np.array([f"r{int(v)}" for v in x], dtype=object)}


def _cols(*values: float) -> dict[str, np.ndarray]:
    return {"x": np.array(values, dtype=np.float64)}


def test_concurrent_requests_merge_and_get_their_own_rows() -> None:
    model = Model()
    observed: list[tuple[int, int]] = []

    async def main() -> list[dict[str, np.ndarray]]:
        b = Batcher(model, max_batch_size=64, max_batch_delay_ms=5, on_batch=lambda r, n: observed.append((r, n)))
        return await asyncio.gather(*(b.submit(_cols(i, i + 0.5), 2) for i in range(40)))

    results = asyncio.run(main())
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out["y"], [2 * i, 2 * i + 1])
        assert list(out["tag"]) == [f"r{i}", f"r{i}"]
    assert max(model.runs) > 2, model.runs
    assert all(rows <= 64 for rows in model.runs)
    assert sum(n for _, n in observed) == 40


def test_large_request_runs_alone_and_batch_size_one_disables() -> None:
    model = Model()

    async def main() -> None:
        b = Batcher(model, max_batch_size=4)
        big = await b.submit(_cols(*range(10)), 10)
        np.testing.assert_array_equal(big["y"], np.arange(10) * 2.0)
        single = Batcher(model, max_batch_size=1)
        await asyncio.gather(*(single.submit(_cols(i), 1) for i in range(5)))

    asyncio.run(main())
    assert model.runs == [10, 1, 1, 1, 1, 1]


def test_failure_stays_with_the_culprit() -> None:
    model = Model()

    async def main() -> list[object]:
        b = Batcher(model, max_batch_size=64, max_batch_delay_ms=5)
        reqs = [b.submit(_cols(-1.0 if i == 3 else float(i)), 1) for i in range(8)]
        return await asyncio.gather(*reqs, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[3], ValueError)
    for i, out in enumerate(results):
        if i != 3:
            assert isinstance(out, dict)
            assert out["y"][0] == 2 * i


def test_close_drains_then_refuses() -> None:
    model = Model()

    async def main() -> None:
        b = Batcher(model, max_batch_size=8, inline_max_rows=0)  # thread path
        pending = [asyncio.ensure_future(b.submit(_cols(i), 1)) for i in range(20)]
        await asyncio.sleep(0)
        assert b.closed is False
        await b.close()
        assert b.closed is True
        assert all(p.done() for p in pending)
        assert [p.result()["y"][0] for p in pending] == [2.0 * i for i in range(20)]
        with pytest.raises(ModelNotReady):
            await b.submit(_cols(1), 1)

    asyncio.run(main())


def test_cancelled_request_is_skipped() -> None:
    model = Model()

    async def main() -> None:
        b = Batcher(model, max_batch_size=8, max_batch_delay_ms=50)
        first = asyncio.ensure_future(b.submit(_cols(1), 1))
        doomed = asyncio.ensure_future(b.submit(_cols(99), 1))
        await asyncio.sleep(0)
        doomed.cancel()
        out = await first
        assert out["y"][0] == 2.0
        await b.close()

    asyncio.run(main())
    assert 99.0 not in model.seen


def test_inline_limit_adapts_to_model_speed() -> None:
    def slow(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Burn 3 ms of CPU: the batcher adapts to the model's CPU time, not to wall time.
        end = time.thread_time() + 0.003
        while time.thread_time() < end:
            pass
        return {"y": columns["x"]}

    async def main() -> tuple[int, int]:
        slow_b = Batcher(slow, max_batch_size=1, inline_max_rows=64, inline_budget_ms=1)
        fast_b = Batcher(Model(), max_batch_size=1, inline_max_rows=1, inline_budget_ms=1000)
        for i in range(10):
            await slow_b.submit(_cols(i), 1)
            await fast_b.submit(_cols(i), 1)
        return slow_b.inline_max_rows, fast_b.inline_max_rows

    slow_limit, fast_limit = asyncio.run(main())
    assert slow_limit == 0  # a slow model runs in threads: the event loop stays responsive
    assert fast_limit == 4  # grows while runs of about the limit's size stay well under budget


def test_an_empty_request_after_the_inline_limit_fell_to_zero_is_answered() -> None:
    async def main() -> dict[str, np.ndarray]:
        model = Model()
        b = Batcher(model, max_batch_size=1, inline_max_rows=0, inline_budget_ms=1000)
        # 0 rows with an inline limit of 0: the adaptation must not divide by the row count.
        return await b.submit(_cols(), 0)

    out = asyncio.run(main())
    assert out["y"].shape == (0,)


def test_small_runs_stay_on_the_event_loop_and_large_ones_go_to_a_thread() -> None:
    loop_thread = threading.get_ident()
    threads: list[tuple[int, bool]] = []

    def model(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        threads.append((len(columns["x"]), threading.get_ident() == loop_thread))
        return {"y": columns["x"]}

    async def main() -> None:
        # A fresh batcher per run: the limit adapts after each run. max_batch_size=1: each runs alone.
        for rows in (1, 8, 9):
            b = Batcher(model, max_batch_size=1, inline_max_rows=8, inline_budget_ms=500)
            await b.submit(_cols(*range(rows)), rows)
        never = Batcher(model, max_batch_size=1, inline_max_rows=64, inline_budget_ms=0)
        await never.submit(_cols(1), 1)
        assert never.inline_max_rows == 0

    asyncio.run(main())
    # 1 and 8 rows are within the limit of 8 (inline); 9 rows are not (thread); budget 0: always a thread.
    assert threads == [(1, True), (8, True), (9, False), (1, False)]


def test_a_lone_request_waits_one_loop_turn_not_the_whole_delay() -> None:
    model = Model()

    async def main() -> None:
        b = Batcher(model, max_batch_size=64, max_batch_delay_ms=600_000)
        lone = asyncio.ensure_future(b.submit(_cols(3), 1))
        # Counted in event-loop turns, not time: nobody else joins, so the batch runs at once.
        for _ in range(20):
            await asyncio.sleep(0)
            if lone.done():
                break
        assert lone.done(), "a lone request waited for company that never came"
        assert lone.result()["y"][0] == 6.0

    asyncio.run(main())
    assert model.runs == [1]


@pytest.mark.parametrize(("max_batch_size", "requests", "runs"), [(4, 10, [4, 4, 2]), (2, 4, [2, 2])])
def test_batches_fill_up_to_max_batch_size_and_never_beyond(
    max_batch_size: int, requests: int, runs: list[int]
) -> None:
    model = Model()

    async def main() -> list[dict[str, np.ndarray]]:
        b = Batcher(model, max_batch_size=max_batch_size, max_batch_delay_ms=50)
        return await asyncio.gather(*(b.submit(_cols(i), 1) for i in range(requests)))

    results = asyncio.run(main())
    assert model.runs == runs  # every request queued before the worker ran: full batches, in order
    assert [out["y"][0] for out in results] == [2.0 * i for i in range(requests)]


def test_close_after_a_request_that_ran_alone_returns() -> None:
    model = Model()

    async def main() -> None:
        b = Batcher(model, max_batch_size=4)
        await b.submit(_cols(*range(6)), 6)  # >= max_batch_size: runs alone, not through the queue
        closer = asyncio.ensure_future(b.close())
        for _ in range(5):  # counted in loop turns: nothing is running, so close has nothing to wait for
            await asyncio.sleep(0)
        assert closer.done(), "close() waits for a request that already has its answer"
        await closer

    asyncio.run(main())
    assert model.runs == [6]


def test_a_large_request_does_not_queue_behind_a_running_batch() -> None:
    order: list[str] = []
    gate = threading.Event()

    def model(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = columns["x"]
        if x[0] < 0:  # the slow batch: done only once the large request has run
            gate.wait(5)  # a bound only for the failing case: the large request queued behind it
            order.append("batch")
        else:
            order.append(f"alone:{len(x)}")
            gate.set()
        return {"y": x}

    async def main() -> None:
        b = Batcher(model, max_batch_size=4, max_batch_delay_ms=0, inline_max_rows=0)  # runs in threads
        slow = asyncio.ensure_future(b.submit(_cols(-1), 1))
        await asyncio.sleep(0)
        big = await b.submit(_cols(*range(6)), 6)
        assert big["y"].tolist() == list(range(6))
        await slow

    asyncio.run(main())
    assert order == ["alone:6", "batch"]


def test_close_waits_for_a_request_running_alone_while_the_queue_is_empty() -> None:
    gate = threading.Event()

    def model(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if len(columns["x"]) >= 4:
            gate.wait(5)  # a bound only for the failing case
        return {"y": columns["x"]}

    async def main() -> None:
        b = Batcher(model, max_batch_size=4, inline_max_rows=0)  # runs in threads
        big = asyncio.ensure_future(b.submit(_cols(*range(6)), 6))  # runs alone, blocked on the gate
        await asyncio.sleep(0)
        await b.submit(_cols(1), 1)  # a queued request: its worker ends while the large one still runs
        closer = asyncio.ensure_future(b.close())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not closer.done(), "close() returned while an accepted request had no answer yet"
        gate.set()
        assert (await big)["y"].tolist() == list(range(6))
        await closer

    asyncio.run(main())


def test_queue_depth_counts_the_requests_waiting_for_a_batch() -> None:
    gate = threading.Event()
    started = threading.Event()

    def model(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        started.set()
        gate.wait(5)  # a bound only for the failing case
        return {"y": columns["x"]}

    async def main() -> None:
        b = Batcher(model, max_batch_size=8, max_batch_delay_ms=0, inline_max_rows=0)
        assert b.queue_depth == 0
        first = asyncio.ensure_future(b.submit(_cols(0), 1))
        await asyncio.to_thread(started.wait, 5)  # the first batch is running (blocked)
        later = [asyncio.ensure_future(b.submit(_cols(i), 1)) for i in range(1, 4)]
        await asyncio.sleep(0)
        assert b.queue_depth == 3
        gate.set()
        await asyncio.gather(first, *later)
        assert b.queue_depth == 0

    asyncio.run(main())


@pytest.mark.parametrize(
    ("delay_ms", "max_batch_size", "runs"),
    [
        (600_000, 64, [12]),  # company keeps arriving: the batch keeps waiting for it
        (600_000, 4, [4, 4, 4]),  # ... until it is full
        (0, 64, [1] * 12),  # no delay: a batch never waits for company
    ],
)
def test_a_trickle_of_requests_fills_batches_while_it_lasts(
    delay_ms: float, max_batch_size: int, runs: list[int]
) -> None:
    model = Model()

    async def main() -> None:
        b = Batcher(model, max_batch_size=max_batch_size, max_batch_delay_ms=delay_ms)
        tasks = []
        for i in range(12):  # one new request per event-loop turn
            tasks.append(asyncio.ensure_future(b.submit(_cols(i), 1)))
            await asyncio.sleep(0)
        outs = await asyncio.gather(*tasks)
        assert [o["y"][0] for o in outs] == [2.0 * i for i in range(12)]

    asyncio.run(main())
    assert model.runs == runs
