"""Lineage of compositions over stubs: every decision and shadow call lands in the lake from the first request.

A stub declares no metadata, so the types of its outputs are known only once it answered. The
lake record must not wait for that: a decision made before some stub ever answered is logged
with the columns known so far (the lake's readers fill the rest with nulls). And logging a
decision waits for room in the lake's queue without holding the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np

from parity.compose import Composition, Stub
from parity.errors import LakeFullError
from parity.lake import LakeWriter, read_lake
from parity.schema import ColumnSpec, OutputSpec


def _conditional() -> Composition:
    """``a`` is always called, ``b`` only for rows with x > 0 (an async rule calling what it needs)."""
    comp = Composition("cond", inputs=[ColumnSpec("x", "FP64", False)], outputs=[OutputSpec("y", "FP64")])
    comp.model("a", Stub(lambda c: {"s": c["x"] * 2.0}, name="a"), reads=["s"])
    comp.model("b", Stub(lambda c: {"t": c["x"] * 10.0}, name="b"), reads=["t"])

    @comp.rule
    async def rule(request: Any, models: Any) -> dict[str, Any]:
        a = await models.call("a")
        if float(request["x"][0]) <= 0:
            return {"y": a["s"]}
        b = await models.call("b")
        return {"y": a["s"] + b["t"]}

    return comp


def test_decisions_are_logged_before_every_stub_answered(tmp_path: Path) -> None:
    comp = _conditional()
    lake = LakeWriter(tmp_path / "lake", flush_interval_s=60)
    runner = comp.runner(lake=lake)

    async def go() -> list[float]:
        ys = []
        for rid, x in (("r0", -1.0), ("r1", 1.0), ("r2", -2.0)):
            decision = await runner.run({"x": x}, request_id=rid)
            ys.append(float(decision["y"][0]))
        await runner.aclose()
        return ys

    assert asyncio.run(go()) == [-2.0, 12.0, -4.0]
    lake.close()
    rows = sorted(read_lake(tmp_path / "lake", model="cond").to_pylist(), key=lambda r: r["request_id"])
    assert [r["request_id"] for r in rows] == ["r0", "r1", "r2"]  # r0 came before stub b ever answered
    assert [r["output.y"] for r in rows] == [-2.0, 12.0, -4.0]
    assert [r["a.s"] for r in rows] == [-2.0, 2.0, -4.0]
    assert [r["b.t"] for r in rows] == [None, 10.0, None]  # b not called: null, not dropped
    assert [r["lineage.b.route"] for r in rows] == ["", "primary", ""]


def test_shadow_calls_are_logged_before_the_shadow_stub_first_answered(tmp_path: Path) -> None:
    comp = Composition("sh", inputs=[ColumnSpec("x", "FP64", False)], outputs=[OutputSpec("y", "FP64")])
    calls = {"n": 0}

    def flaky(columns: dict[str, np.ndarray]) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("candidate warming up")
        return {"y": columns["x"] * 3.0}

    comp.model("m", Stub(lambda c: {"y": c["x"] * 2.0}, name="primary"), shadow=Stub(flaky, name="candidate"))

    @comp.rule
    def rule(request: Any, models: Any) -> dict[str, Any]:
        return {"y": models["m"]["y"]}

    lake = LakeWriter(tmp_path / "lake", flush_interval_s=60)
    runner = comp.runner(lake=lake)

    async def go() -> None:
        for rid, x in (("r0", 1.0), ("r1", 2.0)):
            await runner.run({"x": x}, request_id=rid)
            await runner.drain()
        await runner.aclose()

    asyncio.run(go())
    lake.close()
    shadows = sorted(read_lake(tmp_path / "lake", model="sh.shadow.m").to_pylist(), key=lambda r: r["request_id"])
    assert [r["request_id"] for r in shadows] == ["r0", "r1"]  # the failed first call is logged too
    assert "candidate warming up" in shadows[0]["lineage.shadow.error"]
    assert [r["primary.y"] for r in shadows] == [2.0, 4.0]
    assert [r.get("output.y") for r in shadows] == [None, 6.0]


def test_a_full_lake_holds_neither_the_event_loop_nor_the_request_past_its_deadline(tmp_path: Path) -> None:
    """overflow="block": a decision waits for room without blocking the loop, then fails at its deadline."""
    comp = Composition("full", inputs=[ColumnSpec("x", "FP64", False)], outputs=[OutputSpec("y", "FP64")],
                       deadline_s=0.5)  # fmt: skip
    comp.model("m", Stub(lambda c: {"y": c["x"]}, name="m"))
    comp.rule(lambda request, models: {"y": models["m"]["y"]})
    # Two rows fit; the rows stay queued until their file is written 60 s from now.
    lake = LakeWriter(tmp_path / "lake", flush_interval_s=60, max_queue_rows=2, overflow="block")
    runner = comp.runner(lake=lake)
    outcome: dict[str, Any] = {}

    async def go() -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.get_running_loop().create_task(ticker())
        for rid in ("r0", "r1"):
            await runner.run({"x": 1.0}, request_id=rid)
        try:
            await runner.run({"x": 1.0}, request_id="r2")
        except Exception as exc:  # what the third request got
            outcome["error"] = exc
        outcome["ticks"] = ticks
        task.cancel()
        await runner.aclose()

    worker = threading.Thread(target=lambda: asyncio.run(go()), daemon=True)
    worker.start()
    worker.join(10.0)
    lake.close(timeout=5.0)
    assert not worker.is_alive(), "the composition blocked on the full lake"
    assert isinstance(outcome.get("error"), LakeFullError), outcome
    assert outcome["ticks"] >= 10  # the loop kept running while the decision waited for room
    assert sorted(r["request_id"] for r in read_lake(tmp_path / "lake", model="full").to_pylist()) == ["r0", "r1"]
