"""Adaptive batching: merged runs, exact row hand-back, isolation of failures."""

from __future__ import annotations

import asyncio
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
        await b.close()
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
