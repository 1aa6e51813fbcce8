"""Mistakes in a composition's declaration, its rule or its stubs: each is one clear error naming what is wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from parity.compose import (
    Composition,
    CompositionError,
    DeclarationError,
    DownstreamError,
    DownstreamTimeout,
    Fallback,
    Local,
    Remote,
    Split,
    Stub,
)
from parity.errors import SchemaError
from parity.schema import ColumnSpec, OutputSpec

X = [ColumnSpec("x", "FP64", False)]
Y = [OutputSpec("y", "FP64")]


def double(columns: dict[str, np.ndarray]) -> dict[str, Any]:
    return {"y": columns["x"] * 2.0}


def comp_with(rule: Callable[..., Any], *, per_row: bool = False, outputs: list[OutputSpec] | None = None,
              **model: Any) -> Composition:  # fmt: skip
    """One endpoint ``m`` (a 2x stub unless ``target`` is given) and ``rule``."""
    comp = Composition("errs", inputs=X, outputs=outputs or Y, deadline_s=model.pop("deadline_s", 2.0))
    comp.model("m", model.pop("target", Stub(double, name="double")), **model)
    comp.rule(per_row=per_row)(rule)
    return comp


def run(comp: Composition, inputs: Any = None) -> Any:
    try:
        return comp.run([{"x": 1.0}, {"x": 2.0}] if inputs is None else inputs)
    finally:
        comp.close()


@pytest.mark.parametrize(
    ("declare", "field", "words"),
    [
        (lambda: Split(Stub(double), Stub(double), share=1.5), "share", ["Split.share", "[0, 1]", "1.5"]),
        (lambda: Fallback(), "fallback", ["exactly one of default"]),
        (lambda: Fallback(default={"y": 0.0}, model=Stub(double)), "fallback", ["exactly one of default"]),
        (lambda: Composition("a/b", inputs=X, outputs=Y), "name", ["'a/b'", "without '/' or '='"]),
        (lambda: Composition("", inputs=X, outputs=Y), "name", ["non-empty"]),
        (lambda: Remote("ftp://host:1", "m").client(), "url", ["http://, https://, grpc://", "'ftp://host:1'"]),
    ],
)
def test_bad_declarations_name_the_field(declare: Callable[[], Any], field: str, words: list[str]) -> None:
    with pytest.raises(DeclarationError) as info:
        declare()
    assert info.value.field == field
    for w in words:
        assert w in str(info.value)


def test_bad_endpoints_name_the_endpoint() -> None:
    comp = Composition("eps", inputs=X, outputs=Y)
    comp.model("m", Stub(double))
    cases: list[tuple[Callable[[], Any], str, str]] = [
        (lambda: comp.model("m", Stub(double)), "m", "declared twice"),
        (lambda: comp.model("not-an-id", Stub(double)), "not-an-id", "must be an identifier"),
        (lambda: comp.model("f", double), "f", "target must be Remote, Local, Stub or Split; got function"),  # type: ignore[arg-type]
        (lambda: comp.model("t", Stub(double), timeout_s=0), "t", "timeout_s must be > 0; got 0"),
    ]
    for declare, endpoint, words in cases:
        with pytest.raises(DeclarationError) as info:
            declare()
        assert info.value.endpoint == endpoint and words in str(info.value)
    assert list(comp.endpoints) == ["m"]  # the failed declarations left nothing behind
    with pytest.raises(DeclarationError, match="has no rule"):
        comp.run({"x": 1.0})
    with pytest.raises(DeclarationError, match="must be an Artifact, a ref, Remote/Local/Stub"):
        comp.run({"x": 1.0}, models={"m": 42})


def test_describe_and_repr_show_split_fallback_model_and_prefetch() -> None:
    comp = Composition("shown", inputs=X, outputs=Y, version=2)
    comp.model("m", Split(Stub(double, name="a"), Stub(double, name="b"), share=0.25, key="x"),
               fallback=Fallback(model=Remote("http://127.0.0.1:9", "spare")), reads=["y"])  # fmt: skip
    comp.model("n", Local("churn@prod"), fallback=Fallback(default={"y": 0.0}))

    @comp.rule(calls=["m"])
    def rule(request: Any, models: Any) -> dict[str, Any]:
        return {"y": models["m"]["y"]}

    assert repr(comp) == "<Composition shown:2 endpoints=['m', 'n']>"
    doc = comp.describe()
    m, n = doc["endpoints"]["m"], doc["endpoints"]["n"]
    assert m["targets"] == {"primary": "stub 'a'", "candidate": "stub 'b'", "fallback": "spare at http://127.0.0.1:9"}
    assert m["split"] == {"share": 0.25, "key": "x"} and m["fallback"] == "model" and m["required"] is False
    assert n["targets"] == {"primary": "in-process churn@prod"} and n["fallback"] == "default" and n["split"] is None
    assert doc["prefetch"] == ["m"]  # calls= overrides "every endpoint"


def test_the_rule_reads_only_what_it_declared_and_calls_only_declared_endpoints() -> None:
    undeclared = comp_with(lambda request, models: {"y": models["m"]["z"]}, reads=["y"])
    with pytest.raises(DeclarationError) as info:
        run(undeclared)
    assert (info.value.endpoint, info.value.field) == ("m", "z") and "add it to reads=[...]" in str(info.value)

    unknown = comp_with(lambda request, models: {"y": models["nope"]["y"]})
    with pytest.raises(DeclarationError, match=r"unknown endpoint 'nope'; declared: \['m'\]"):
        run(unknown)

    async def lazy(request: Any, models: Any) -> dict[str, Any]:
        assert "m" not in models  # an async rule over the whole request calls what it needs itself
        return {"y": models["m"]["y"]}

    with pytest.raises(DeclarationError, match="was not called before the rule"):
        run(comp_with(lazy))

    async def calls_unknown(request: Any, models: Any) -> dict[str, Any]:
        await models.call("ghost")
        return {"y": 0.0}

    with pytest.raises(DeclarationError, match="unknown endpoint 'ghost'"):
        run(comp_with(calls_unknown))

    async def calls_itself(request: Any, models: Any) -> dict[str, Any]:
        out = await models.call("m")
        return {"y": out["y"] + 1.0}

    assert run(comp_with(calls_itself)).rows() == [{"y": 3.0}, {"y": 5.0}]


@pytest.mark.parametrize(
    ("rule", "per_row", "words"),
    [
        (lambda request, models: [{"y": 1.0}], False, "returned 1 row(s) for a request of 2"),
        (lambda request, models: [{"y": 1.0}, 2.0], False, "must return dicts per row; got float"),
        (lambda request, models: 3.0, False, "must return a mapping of output -> values or a list of row dicts"),
        (lambda request, models: {"z": [1.0, 2.0]}, False, "returned no output 'y'; declared outputs: ['y']"),
        (lambda request, models: {"y": [1.0, 2.0, 3.0]}, False, "returned 3 value(s) of 'y' for 2 row(s)"),
        (lambda request, models: {"y": ["a", "b"]}, False, "output 'y': the rule's values are not FP64"),
        (lambda row, out: 7, True, "must return dicts per row; got int"),
    ],
)
def test_a_rule_answer_of_the_wrong_shape_says_what_is_wrong(rule: Any, per_row: bool, words: str) -> None:
    with pytest.raises(CompositionError) as info:
        run(comp_with(rule, per_row=per_row))
    assert words in str(info.value)


def test_an_async_per_row_rule_and_a_scalar_output_for_every_row() -> None:
    async def per_row(row: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
        return {"y": out["m"]["y"] - row["x"], "label": None if row["x"] > 1 else "one"}

    outputs = [OutputSpec("y", "FP64"), OutputSpec("label", "BYTES")]
    assert run(comp_with(per_row, per_row=True, outputs=outputs)).rows() == [
        {"y": 1.0, "label": "one"},
        {"y": 2.0, "label": None},
    ]
    assert run(comp_with(lambda request, models: {"y": 0.5})).rows() == [{"y": 0.5}, {"y": 0.5}]


def test_inputs_are_checked_before_any_model_is_called() -> None:
    calls: list[Any] = []
    comp = comp_with(
        lambda request, models: {"y": models["m"]["y"]}, target=Stub(lambda c: calls.append(c) or {"y": c["x"]})
    )
    try:
        with pytest.raises(SchemaError) as info:
            comp.run({"x": 1.0, "extra": 2.0})
        assert info.value.column == "extra" and "takes ['x']" in str(info.value)
        with pytest.raises(SchemaError, match="records, a column mapping or a DataFrame; got int"):
            comp.run(5)
        with pytest.raises(SchemaError, match="'x'"):
            comp.run([{"x": "not a number"}])
        assert calls == []
        frame = comp.run(pd.DataFrame({"x": [1.5, 2.5]}))
        assert frame.rows() == [{"y": 1.5}, {"y": 2.5}] and list(frame["y"]) == [1.5, 2.5]
    finally:
        comp.close()


def test_a_fallback_model_answers_when_the_primary_fails_and_both_failing_names_both() -> None:
    def down(columns: dict[str, np.ndarray]) -> dict[str, Any]:
        raise ConnectionError("primary is down")

    def spare_down(columns: dict[str, np.ndarray]) -> dict[str, Any]:
        raise RuntimeError("spare is down too")

    rule = lambda request, models: {"y": models["m"]["y"]}  # noqa: E731
    spared = comp_with(rule, target=Stub(down, name="primary"), fallback=Fallback(model=Stub(double, name="spare")))
    d = run(spared)
    assert d.rows() == [{"y": 2.0}, {"y": 4.0}]
    assert (d.calls["m"].route, d.calls["m"].fallback) == ("fallback", "model")
    assert d.parameters["composition_fallback"] == "m=model" and "primary is down" in d.calls["m"].error

    both = comp_with(rule, target=Stub(down, name="primary"), fallback=Fallback(model=Stub(spare_down, name="spare")))
    with pytest.raises(DownstreamError) as info:
        run(both)
    assert info.value.endpoint == "m"
    assert "primary is down" in str(info.value) and "its fallback model failed too" in str(info.value)
    assert "spare is down too" in str(info.value)


def test_stub_answers_that_are_not_outputs_are_downstream_errors() -> None:
    rule = lambda request, models: {"y": models["m"]["y"]}  # noqa: E731
    with pytest.raises(DownstreamError, match="must return a mapping of output name -> values; got list"):
        run(comp_with(rule, target=Stub(lambda c: [1, 2], name="lister")))
    with pytest.raises(DownstreamError, match="returned no output 'y'"):
        run(comp_with(rule, target=Stub({"z": 1.0}, name="wrong"), reads=["y"]))
    # A DataFrame answer is read column by column.
    framed = comp_with(rule, target=Stub(lambda c: pd.DataFrame({"y": c["x"] + 10}), name="frame"))
    assert run(framed).rows() == [{"y": 11.0}, {"y": 12.0}]


def test_computed_inputs_must_be_passed_and_have_a_value_per_row() -> None:
    seen: list[dict[str, Any]] = []

    def model(columns: dict[str, np.ndarray]) -> dict[str, Any]:
        seen.append({k: v.tolist() for k, v in columns.items()})
        return {"y": columns["bonus"] + 0.5}

    def build(extra: Any) -> Composition:
        async def rule(request: Any, models: Any) -> dict[str, Any]:
            out = await models.call("m", inputs=extra)
            return {"y": out["y"]}

        return comp_with(rule, target=Stub(model, name="m"), inputs={"bonus": "x"}, computed=["bonus"])

    assert run(build({"m": {"bonus": [10.0, 20.0]}})).rows() == [{"y": 10.5}, {"y": 20.5}]
    assert seen[-1] == {"bonus": [10.0, 20.0]}  # the computed value replaces the mapped input
    assert run(build({"m": {"bonus": 100.0}})).rows() == [{"y": 100.5}, {"y": 100.5}]  # one value for every row
    with pytest.raises(DeclarationError) as info:
        run(build(None))
    assert (info.value.endpoint, info.value.field) == ("m", "bonus") and "was not passed" in str(info.value)
    with pytest.raises(CompositionError, match=r"endpoint 'm': 'bonus' has 3 value\(s\) for 2 row\(s\)"):
        run(build({"m": {"bonus": [1.0, 2.0, 3.0]}}))


def test_a_rule_slower_than_the_deadline_is_a_timeout() -> None:
    async def slow(request: Any, models: Any) -> dict[str, Any]:
        await asyncio.Event().wait()  # never set: only the deadline ends it
        return {"y": 0.0}

    with pytest.raises(DownstreamTimeout, match=r"did not decide within its deadline of 0\.05 s"):
        run(comp_with(slow, deadline_s=0.05))


def test_a_stub_slower_than_its_timeout_is_a_timeout_naming_the_endpoint() -> None:
    async def hangs(columns: dict[str, np.ndarray]) -> dict[str, Any]:
        await asyncio.Event().wait()
        return {"y": columns["x"]}

    rule = lambda request, models: {"y": models["m"]["y"]}  # noqa: E731
    with pytest.raises(DownstreamTimeout) as info:
        run(comp_with(rule, target=Stub(hangs, name="hangs"), timeout_s=0.05))
    assert info.value.endpoint == "m" and "did not answer within 0.05 s" in str(info.value)
    # With a default fallback the timeout is answered by the default instead.
    d = run(comp_with(rule, target=Stub(hangs, name="hangs"), timeout_s=0.05, fallback=Fallback(default={"y": -1.0})))
    assert d.rows() == [{"y": -1.0}, {"y": -1.0}] and "did not answer" in d.calls["m"].error


def test_run_inside_an_event_loop_points_to_arun() -> None:
    comp = comp_with(lambda request, models: {"y": models["m"]["y"]})

    async def go() -> Any:
        with pytest.raises(DeclarationError, match=r"use `await composition\.arun"):
            comp.run({"x": 1.0})
        return await comp.arun([{"x": 3.0}])

    try:
        assert asyncio.run(go()).rows() == [{"y": 6.0}]
    finally:
        comp.close()


def test_failing_shadows_are_counted_and_never_change_the_answer() -> None:
    def broken(columns: dict[str, np.ndarray]) -> dict[str, Any]:
        raise RuntimeError("candidate crashed")

    comp = comp_with(lambda request, models: {"y": models["m"]["y"]}, shadow=Stub(broken, name="candidate"))
    runner = comp.runner()

    async def go() -> list[Any]:
        answers = [(await runner.run({"x": x})).rows() for x in (1.0, 2.0)]
        await runner.drain()
        await runner.aclose()
        return answers

    assert asyncio.run(go()) == [[{"y": 2.0}], [{"y": 4.0}]]
    assert runner.shadow_stats == {"queued": 2, "ok": 0, "failed": 2, "dropped": 0}
    # Composition.drain waits for the shadows of in-process runs too.
    try:
        assert comp.run({"x": 3.0}).rows() == [{"y": 6.0}]
        comp.drain()
    finally:
        comp.close()


def test_check_names_undeclared_calls_and_inputs_before_any_call() -> None:
    comp = Composition("checked", inputs=X, outputs=Y)
    comp.model("m", Stub(double), inputs={"x": "amount"})

    @comp.rule(calls=["m", "ghost"])
    def rule(request: Any, models: Any) -> dict[str, Any]:
        return {"y": models["m"]["y"]}

    with pytest.raises(DeclarationError) as info:
        comp.check()
    text = str(info.value)
    assert "the rule calls endpoint 'ghost', which is not declared; declared: ['m']" in text
    assert "endpoint 'm': inputs maps to composition input 'amount', which is not declared" in text


def test_retry_and_breaker_settings_are_declaration_errors_naming_the_field() -> None:
    from parity.compose import Breaker, Retry

    cases: list[tuple[Callable[[], Any], str, str]] = [
        (lambda: Retry(attempts=0), "attempts", "Retry.attempts must be >= 1; got 0"),
        (lambda: Retry(backoff_s=-0.1), "backoff_s", "Retry backoffs must be >= 0; got backoff_s=-0.1"),
        (lambda: Breaker(failures=0), "breaker_failures", "breaker failures must be >= 1; got 0"),
    ]
    for make, field, words in cases:
        with pytest.raises(DeclarationError) as info:
            make()
        assert info.value.field == field and words in str(info.value)
    # At declaration, naming the endpoint: not later, when the first run builds the breaker.
    comp = Composition("breakers", inputs=X, outputs=Y)
    with pytest.raises(DeclarationError) as info:
        comp.model("m", Stub(double), breaker_failures=0)
    assert (info.value.endpoint, info.value.field) == ("m", "breaker_failures")
    assert "endpoint 'm': breaker_failures must be >= 1; got 0" in str(info.value)


def test_a_half_open_breaker_lets_exactly_one_trial_call_through() -> None:
    from parity.compose import Breaker

    breaker = Breaker(failures=2, reset_s=0.0)  # reset at once: open reads as half-open
    breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.opened == 1 and breaker.state == "half_open"
    assert breaker.allow() is True  # the one trial
    assert breaker.allow() is False  # a second caller waits for the trial's outcome
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()
