"""`parity compose check|explain|replay|reference|serve` through the real Typer app, over a stub-only composition.

No server is needed: the composition's endpoints are stubs, its decisions and shadow calls are
written to a real lake by a real runner, and the commands read them back.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from parity.cli import app
from parity.lake import LakeWriter
from tests.compose.stub_rules import build

STUBS = Path(__file__).parent / "stub_rules.py"
SPEC = f"{STUBS}:composition"

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two requests of the stub composition (scores 2, 4 -> low; 6, 8 -> high) and their shadow calls."""
    root = tmp_path_factory.mktemp("stub-lake") / "lake"
    comp = build(5.0)
    writer = LakeWriter(root, flush_interval_s=60)
    run = comp.runner(lake=writer)

    async def go() -> None:
        for i, xs in enumerate([[1.0, 2.0], [3.0, 4.0]]):
            await run.run([{"x": v} for v in xs], request_id=f"req-{i}")
        await run.drain()
        await run.aclose()

    asyncio.run(go())
    writer.close()
    return root


def test_check_prints_each_target_and_json_has_the_declaration() -> None:
    text = invoke("compose", "check", SPEC)
    assert text.exit_code == 0, text.output
    assert "composition stubbed v3: OK" in text.stdout
    lines = [line for line in text.stdout.splitlines() if "scorer" in line]
    assert len(lines) == 2 and "primary" in lines[0] and "shadow" in lines[1] and all("stub" in x for x in lines)

    doc = json.loads(invoke("compose", "check", SPEC, "--json").stdout)
    assert doc["validated"] == {"scorer": {"primary": None, "shadow": None}}  # stubs declare no metadata
    declared = doc["composition"]
    assert (declared["name"], declared["version"], declared["prefetch"]) == ("stubbed", 3, ["scorer"])
    scorer = declared["endpoints"]["scorer"]
    assert scorer["targets"] == {"primary": "stub 'doubler'", "shadow": "stub 'tripler'"}
    assert scorer["reads"] == ["score"] and scorer["fallback"] is None and scorer["required"] is True
    assert [o["name"] for o in declared["signature"]["outputs"]] == ["decision", "score"]


def test_explain_prints_rows_downstreams_decision_and_shadow(lake: Path) -> None:
    shown = invoke("compose", "explain", "req-1", "--lake", str(lake))
    assert shown.exit_code == 0, shown.output
    assert "request req-1: composition stubbed v3" in shown.stdout
    assert 'row 0 inputs: {"x": 3.0}' in shown.stdout and 'row 1 inputs: {"x": 4.0}' in shown.stdout
    assert 'decision: {"decision": "high", "score": 6.0}' in shown.stdout
    assert 'decision: {"decision": "high", "score": 8.0}' in shown.stdout
    assert "stub 'doubler'" in shown.stdout and "primary" in shown.stdout
    # The shadow (3x) is shown beside what the primary (2x) answered.
    shadow = next(line for line in shown.stdout.splitlines() if line.startswith("shadow "))
    assert "stubbed.shadow.scorer" in shadow and "9.0" in shadow and "12.0" in shadow and "6.0" in shadow

    doc = json.loads(invoke("compose", "explain", "req-0", "--lake", str(lake), "--json").stdout)
    low = [{"decision": "low", "score": 2.0}, {"decision": "low", "score": 4.0}]
    assert [r["decision"] for r in doc["rows"]] == low
    assert [s["outputs"] for s in doc["shadows"]] == [[{"score": 3.0}, {"score": 6.0}]]


def test_replay_text_report_and_fail_on_change(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    same = invoke("compose", "replay", SPEC, "--lake", str(lake), "--fail-on-change")
    assert same.exit_code == 0, same.output
    assert "replayed 2 request(s), 4 row(s) of stubbed: 0 decision(s) would change (0.0%)" in same.stdout
    assert "examples" not in same.stdout

    # Cut at 3: only the row with score 4 (logged low) becomes high.
    monkeypatch.setenv("STUB_THRESHOLD", "3.0")
    changed = invoke("compose", "replay", SPEC, "--lake", str(lake), "--fail-on-change")
    assert changed.exit_code == 10, changed.output
    assert "4 row(s) of stubbed: 1 decision(s) would change (25.0%)" in changed.stdout
    assert "decision: 1 row(s) change" in changed.stdout
    example = next(line for line in changed.stdout.splitlines() if "req-0" in line)
    assert '"decision": "low"' in example and '"decision": "high"' in example
    # Without --fail-on-change a change is reported, not an error.
    assert invoke("compose", "replay", SPEC, "--lake", str(lake)).exit_code == 0
    # Only version 3 was logged: another version replays nothing.
    none = json.loads(invoke("compose", "replay", SPEC, "--lake", str(lake), "--version", "4", "--json").stdout)
    assert (none["requests"], none["rows"], none["changed_rows"], none["changed_share"]) == (0, 0, 0, 0.0)


def test_reference_profiles_inputs_downstream_outputs_and_decisions(tmp_path: Path) -> None:
    data = tmp_path / "ref.csv"
    pd.DataFrame({"x": [0.5, 1.0, 2.0, 3.0, 4.0, 5.0]}).to_csv(data, index=False)
    out = tmp_path / "ref.json"
    made = invoke("compose", "reference", SPEC, "--data", str(data), "--out", str(out))
    assert made.exit_code == 0, made.output
    assert f"wrote {out} (6 reference rows)" in made.stderr.replace("\n", "")
    doc = json.loads(out.read_text())
    assert doc["name"] == "stubbed"
    text = json.dumps(doc)
    for name in ("x", "scorer.score", "decision"):
        assert f'"{name}"' in text
    parquet = tmp_path / "ref.parquet"
    pd.DataFrame({"x": [1.0, 9.0]}).to_parquet(parquet)
    again = invoke("compose", "reference", SPEC, "--data", str(parquet), "--out", str(out))
    assert again.exit_code == 0 and "(2 reference rows)" in again.stderr


def test_serve_rejects_a_certificate_without_its_key_before_listening(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not used")
    bad = invoke("compose", "serve", SPEC, "--tls-cert", str(cert), "--port", "1")
    assert bad.exit_code == 2, bad.output
    assert "tls_cert and tls_key" in bad.output


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("stub_rules.py", ["expected MODULE:OBJECT", "'stub_rules.py'"]),
        (":composition", ["expected MODULE:OBJECT"]),
        ("no/such/rules.py:composition", ["'no/such/rules.py'", "does not exist"]),
        ("parity_no_such_module_xyz:composition", ["cannot import composition module", "parity_no_such_module_xyz"]),
        (f"{STUBS}:nope", ["has no attribute 'nope'"]),
        (f"{STUBS}:not_a_composition", ["is a int", "not a parity.compose.Composition"]),
    ],
)
def test_a_bad_composition_spec_is_one_error_line(spec: str, words: list[str]) -> None:
    bad = invoke("compose", "check", spec)
    assert bad.exit_code == 8, bad.output  # DeclarationError: a parity error
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in bad.output
    for w in words:
        assert w in lines[0]


def test_a_factory_and_a_dotted_module_name_load() -> None:
    from parity.compose import Composition, load_composition

    made = load_composition(f"{STUBS}:factory")
    assert isinstance(made, Composition) and made.name == "stubbed"
    dotted = load_composition("tests.compose.stub_rules:composition")
    assert isinstance(dotted, Composition) and list(dotted.endpoints) == ["scorer"]


def test_an_endpoint_the_rule_skips_is_logged_as_nulls_and_shown_as_not_called(tmp_path: Path) -> None:
    from parity.compose import Composition, Stub
    from parity.schema import ColumnSpec, OutputSpec

    comp = Composition("gated", inputs=[ColumnSpec("x", "FP64", False)], outputs=[OutputSpec("y", "FP64")])
    comp.model("score", Stub(lambda c: {"s": c["x"] * 2.0}, name="score"))
    comp.model("review", Stub(lambda c: {"who": ["alice"] * len(c["x"]), "n": [3] * len(c["x"])}, name="review"))

    @comp.rule
    async def rule(request: dict[str, Any], models: Any) -> dict[str, Any]:
        score = await models.call("score")
        if float(score["s"][0]) > 5:  # only high scores go to review
            review = await models.call("review")
            return {"y": score["s"] + review["n"]}
        return {"y": score["s"]}

    writer = LakeWriter(tmp_path / "lake", flush_interval_s=60)
    run = comp.runner(lake=writer)

    async def go() -> None:
        await run.run({"x": 4.0}, request_id="high")  # both endpoints answer: their types are known from here
        await run.run({"x": 1.0}, request_id="low")  # review is skipped
        await run.aclose()

    asyncio.run(go())
    writer.close()
    shown = invoke("compose", "explain", "low", "--lake", str(tmp_path / "lake"), "--json")
    assert shown.exit_code == 0, shown.output
    row = json.loads(shown.stdout)["rows"][0]
    assert row["decision"] == {"y": 2.0} and row["downstreams"]["score"]["outputs"] == {"s": 2.0}
    review = row["downstreams"]["review"]
    assert review["route"] == "" and review["outputs"] == {"who": None, "n": None}  # nulls, whatever the type
    text = invoke("compose", "explain", "low", "--lake", str(tmp_path / "lake"))
    assert "not called" in text.stdout
    high = json.loads(invoke("compose", "explain", "high", "--lake", str(tmp_path / "lake"), "--json").stdout)
    assert high["rows"][0]["downstreams"]["review"]["outputs"] == {"who": "alice", "n": 3}
    assert high["rows"][0]["decision"] == {"y": 11.0}
