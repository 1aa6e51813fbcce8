"""Compositions in-process: unit-testing rules with artifacts or stubs, split, shadow, start-up validation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parity.compose import (
    Composition,
    DeclarationError,
    DownstreamError,
    Fallback,
    Local,
    Remote,
    Split,
    Stub,
)
from parity.lake import LakeWriter, read_lake
from parity.schema import ColumnSpec, OutputSpec
from tests._servers import ServerProcess
from tests.compose.conftest import RULES, Models, model_server
from tests.compose.rules_app import build


def test_unit_testing_a_rule_in_process(models: Models) -> None:
    """The documented pattern: run the composition against the artifacts, no server involved."""
    comp = build("http://unused:1", "grpc://unused:1")
    rows = [{"age": 30.0, "income": 80.0, "plan": "pro"}, {"age": None, "income": 20.0, "plan": None}]
    decision = comp.run(rows, models={"churn": models.churn, "spend": models.spend})
    churn = models.churn.predict_columns({k: [r[k] for r in rows] for k in ("age", "income", "plan")})
    spend = models.spend.predict_columns({k: [r[k] for r in rows] for k in ("age", "plan")})
    for i, got in enumerate(decision.rows()):
        p, s = float(churn["probability"][i]), float(spend["prediction"][i])
        want = ("retain" if s > 50 else "call") if p > 0.5 else "ignore"
        assert got == {"decision": want, "value": pytest.approx(s * (1 - p))}
    assert decision.calls["churn"].version == "1" and not decision.fallback_used
    comp.close()


def test_stubs_and_fallbacks_in_process() -> None:
    comp = build("http://unused:1", "grpc://unused:1")
    calls: list[dict[str, Any]] = []

    def churn(columns: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        calls.append(columns)
        return {"probability": [0.9] * len(columns["age"]), "label": ["yes"] * len(columns["age"])}

    def broken(columns: dict[str, np.ndarray]) -> dict[str, Any]:
        raise ConnectionError("spend is down")

    d = comp.run({"age": 50.0, "income": 10.0, "plan": "basic"}, models={"churn": churn, "spend": {"prediction": 80.0}})
    assert d.rows() == [{"decision": "retain", "value": pytest.approx(8.0)}]
    assert set(calls[0]) == {"age", "income", "plan"}  # each model gets the inputs it declares
    d = comp.run({"age": 50.0, "income": 10.0, "plan": "basic"}, models={"churn": churn, "spend": broken})
    assert d.rows() == [{"decision": "call", "value": 0.0}]
    assert d.parameters["composition_fallback"] == "spend=default" and d.calls["spend"].route == "fallback"
    assert "spend is down" in d.calls["spend"].error
    no_fallback = build("http://unused:1", "grpc://unused:1", spend_fallback=False)
    with pytest.raises(DownstreamError, match="spend"):
        no_fallback.run({"age": 50.0, "income": 10.0, "plan": "basic"}, models={"churn": churn, "spend": broken})
    comp.close()
    no_fallback.close()


def _split_comp(share: float, key: str | None) -> Composition:
    comp = Composition(
        "router",
        inputs=[ColumnSpec("customer", "BYTES", False), ColumnSpec("x", "FP64", False)],
        outputs=[OutputSpec("version", "BYTES")],
    )
    a = Stub({"which": "a"}, name="a")
    b = Stub({"which": "b"}, name="b")
    comp.model("m", Split(a, b, share=share, key=key))

    @comp.rule
    def rule(request: Any, models: Any) -> dict[str, Any]:
        return {"version": models["m"]["which"]}

    return comp


@pytest.mark.parametrize("key", ["customer", None])
def test_split_share_over_2000_requests_and_sticky_keys(key: str | None) -> None:
    comp = _split_comp(0.3, key)
    routes = {}
    for i in range(2000):
        routes[f"c{i}"] = comp.run({"customer": f"c{i}", "x": float(i)}).rows()[0]["version"]
    share = sum(v == "b" for v in routes.values()) / len(routes)
    assert abs(share - 0.3) <= 0.03, share
    if key is not None:
        for cid in list(routes)[:300]:  # the same key always lands on the same version
            assert comp.run({"customer": cid, "x": -1.0}).rows()[0]["version"] == routes[cid]
    comp.close()


def _shadow_comp(tmp: Path, queue: int = 256) -> tuple[Composition, dict[str, int]]:
    comp = Composition(
        "shadowed",
        inputs=[ColumnSpec("x", "FP64", False)],
        outputs=[OutputSpec("y", "FP64")],
        shadow_queue=queue,
    )
    state = {"finished": 0}

    async def slow_candidate(columns: dict[str, np.ndarray]) -> dict[str, Any]:
        await asyncio.sleep(2.0)
        state["finished"] += 1
        return {"y": columns["x"] * 100}

    comp.model("m", Stub(lambda c: {"y": c["x"] * 2}, name="primary"), shadow=Stub(slow_candidate, name="candidate"),
               timeout_s=5.0)  # fmt: skip

    @comp.rule
    def rule(request: Any, models: Any) -> dict[str, Any]:
        return {"y": models["m"]["y"]}

    return comp, state


def test_shadow_is_logged_and_never_changes_the_response_or_waits_for_it(tmp_path: Path) -> None:
    comp, state = _shadow_comp(tmp_path)
    lake = LakeWriter(tmp_path / "lake", flush_interval_s=60)
    runner = comp.runner(lake=lake)

    async def go() -> None:
        decision = await runner.run({"x": 3.0}, request_id="r1")
        # The response is back while the 2 s shadow is still sleeping: it did not wait for it.
        assert state["finished"] == 0
        assert decision.rows() == [{"y": 6.0}] and "shadow" not in decision.parameters["composition_routes"]
        await runner.drain()
        assert state["finished"] == 1
        await runner.aclose()

    asyncio.run(go())
    lake.close()
    table = read_lake(tmp_path / "lake", model="shadowed.shadow.m").to_pylist()
    assert [(r["request_id"], r["primary.y"], r["output.y"]) for r in table] == [("r1", 6.0, 300.0)]
    decisions = read_lake(tmp_path / "lake", model="shadowed").to_pylist()
    assert [(r["request_id"], r["output.y"], r["m.y"]) for r in decisions] == [("r1", 6.0, 6.0)]


def test_a_slow_shadow_cannot_pile_up(tmp_path: Path) -> None:
    comp, _ = _shadow_comp(tmp_path, queue=2)
    runner = comp.runner()

    async def go() -> dict[str, int]:
        for i in range(10):
            await runner.run({"x": float(i)})
        stats = dict(runner.shadow_stats)
        await runner.aclose()
        return stats

    stats = asyncio.run(go())
    assert stats["dropped"] >= 7 and stats["queued"] <= 3


@pytest.fixture(scope="module")
def churn_server(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = model_server(models, "churn", tmp_path_factory.mktemp("compose-check"))
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.terminate()


def _comp(url: str, columns: list[ColumnSpec], *, model: str = "churn", **kw: Any) -> Composition:
    comp = Composition("checked", inputs=columns, outputs=[OutputSpec("d", "FP64")])
    comp.model("risk", Remote(url, model), **kw)
    comp.rule(per_row=True)(lambda row, out: {"d": out["risk"]["probability"]})
    return comp


GOOD = [ColumnSpec("age", "FP64", True), ColumnSpec("income", "FP64", True), ColumnSpec("plan", "BYTES", True)]


@pytest.mark.parametrize(
    ("inputs", "kw", "field", "words"),
    [
        (GOOD, {"model": "churnn"}, None, ["unknown or unreachable", "churnn", "404"]),
        (GOOD[:2], {}, "plan", ["never supplied", "'plan'"]),
        ([GOOD[0], ColumnSpec("income", "INT64", True), GOOD[2]], {}, "income", ["datatype mismatch", "FP64", "INT64"]),
        (GOOD, {"reads": ["probability", "score"]}, "score", ["reads output 'score'", "no such output"]),
        (GOOD, {"inputs": {"region": "plan"}}, "region", ["'region'", "no such input"]),
        (GOOD, {"fallback": Fallback(default={"label": "no"}), "reads": ["probability"]}, "probability", ["fallback"]),
    ],
)
def test_start_up_validation_names_endpoint_and_field(
    churn_server: ServerProcess, inputs: list[ColumnSpec], kw: dict[str, Any], field: str | None, words: list[str]
) -> None:
    comp = _comp(churn_server.url, inputs, **kw)
    with pytest.raises(DeclarationError) as info:
        comp.check()
    assert info.value.endpoint == "risk" and info.value.field == field
    assert "endpoint 'risk'" in str(info.value)
    for w in words:
        assert w in str(info.value)


def test_validation_against_an_artifact_signature_and_an_unreachable_server(models: Models) -> None:
    comp = Composition("checked", inputs=GOOD[:2], outputs=[OutputSpec("d", "FP64")])
    comp.model("risk", Local(models.churn))
    comp.model("gone", Remote("http://127.0.0.1:9", "x"))
    comp.rule(per_row=True)(lambda row, out: {"d": 0.0})
    with pytest.raises(DeclarationError) as info:
        comp.check(timeout_s=1.0)
    text = str(info.value)
    assert "endpoint 'risk'" in text and "'plan'" in text and "never supplied" in text
    assert "endpoint 'gone'" in text and "unreachable" in text
    with pytest.raises(DeclarationError, match="not declared"):
        comp.run({"age": 1.0, "income": 2.0}, models={"nope": models.churn})


def test_compose_check_cli(churn_server: ServerProcess, tmp_path: Path) -> None:
    env = {"TEST_CHURN_URL": churn_server.url, "TEST_SPEND_URL": "grpc://127.0.0.1:9"}
    import os

    run = subprocess.run(
        [sys.executable, "-m", "parity.cli", "compose", "check", f"{RULES}:composition", "--timeout", "1"],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=60,
    )  # fmt: skip
    assert run.returncode == 8
    assert "endpoint 'spend'" in run.stderr and "unreachable" in run.stderr
