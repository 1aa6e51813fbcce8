"""Row-level checks: replay catches a model-version mix-up and a client-side transformation; join by id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import parity
from parity.codec import encode_frame
from parity.skew import Reference, SkewDataError, Thresholds, skew_report, validate_report
from parity.skew._data import open_source
from parity.skew._join import join_report
from tests.skew.helpers import T0, fit_artifact, frame, write_lake


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, churn: parity.Artifact) -> parity.Registry:
    reg = parity.Registry(tmp_path_factory.mktemp("registry"))
    assert reg.push(churn).version == 1
    assert reg.push(fit_artifact(flip=True)).version == 2  # another model under the same name
    return reg


def test_clean_lake_replays_exactly(churn: parity.Artifact, tmp_path: Path) -> None:
    write_lake(tmp_path, churn, frame(600, 1), version=0)
    report = skew_report(churn, tmp_path, replay=True)
    assert report.replay is not None
    assert (report.replay.rows, report.replay.mismatched, report.replay.severity) == (600, 0, "ok")
    assert report.replay.versions["0"]["model"].startswith("the given artifact")


def test_replay_catches_a_model_version_mixup(registry: parity.Registry, tmp_path: Path) -> None:
    v1, v2 = registry.load("churn:1"), registry.load("churn:2")
    df = frame(1000, 2)
    # Rows logged as version 1 whose outputs were really computed by version 2 ...
    write_lake(tmp_path, v1, df, version=1, predict=lambda part: v2.runtime.predict(encode_frame(v2.signature, part)))
    # ... and honest version-2 rows, replayed with churn:2 from the registry.
    write_lake(tmp_path, v2, frame(400, 3), version=2, start=T0 + 86_400)
    report = skew_report(v1, tmp_path, replay=True, registry=registry)
    r = report.replay
    assert r is not None and r.severity == "alert"
    assert r.versions["1"]["model"] == "the given artifact (churn:1)"
    assert r.versions["2"]["model"] == "registry churn:2"
    assert r.versions["2"]["mismatched"] == 0
    assert r.versions["1"]["mismatched"] > 500  # flipped labels, different probabilities
    assert r.mismatched == r.versions["1"]["mismatched"]
    assert len(r.examples) == 10
    ex = r.examples[0]
    assert ex.request_id is not None and ex.request_id.startswith("req-1-") and ex.model_version == 1
    assert set(ex.outputs) <= {"label", "probability"} and "logged" in next(iter(ex.outputs.values()))
    assert report.severity == "alert"
    validate_report(report.to_dict())


def test_replay_catches_a_client_side_transformation(churn: parity.Artifact, tmp_path: Path) -> None:
    df = frame(800, 4)

    def transformed(part: pd.DataFrame) -> dict[str, np.ndarray]:
        scaled = part.assign(amount=part["amount"] / 100.0)  # the client sent cents->dollars, the lake kept cents
        return churn.runtime.predict(encode_frame(churn.signature, scaled))

    write_lake(tmp_path, churn, df, version=0, predict=transformed)
    r = skew_report(churn, tmp_path, replay=True).replay
    assert r is not None and r.severity == "alert" and r.rate is not None and r.rate > 0.1
    assert r.outputs["probability"] >= r.outputs["label"] > 0


def test_replay_needs_logged_outputs(churn: parity.Artifact, tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(frame(50, 1), preserve_index=False), tmp_path / "x.parquet")
    with pytest.raises(SkewDataError, match="needs logged outputs"):
        skew_report(churn, tmp_path, replay=True)


def _join_data(tmp_path: Path) -> tuple[Path, Path]:
    n = 1500
    serving = frame(n, 9)
    serving.insert(0, "customer_id", [f"c{i:05d}" for i in range(n)])
    offline = serving.copy()
    rng = np.random.default_rng(3)
    offline["x"] = offline["x"] * (1 + 1e-12)  # float noise below 1e-9 relative: a match
    bad_amount = rng.random(n) < 0.05
    offline.loc[bad_amount & offline["amount"].notna(), "amount"] += 1.0
    offline.loc[rng.random(n) < 0.02, "plan"] = "legacy"
    extra = frame(100, 10).assign(customer_id=[f"z{i}" for i in range(100)])
    offline = pd.concat([offline.iloc[::-1], extra, offline.iloc[[0]]], ignore_index=True)  # reordered, 1 dup
    s, o = tmp_path / "serving.parquet", tmp_path / "offline.parquet"
    pq.write_table(pa.Table.from_pandas(serving, preserve_index=False), s)
    pq.write_table(pa.Table.from_pandas(offline, preserve_index=False), o, row_group_size=300)
    return s, o


def test_join_reports_per_feature_mismatch(churn: parity.Artifact, tmp_path: Path) -> None:
    s, o = _join_data(tmp_path)
    report = skew_report(churn, s, join="customer_id", offline=o)
    j = report.join
    assert j is not None
    assert (j.serving_rows, j.offline_rows, j.matched, j.duplicate_offline_keys) == (1500, 1601, 1500, 1)
    rates = {f.name: f.rate for f in j.features}
    assert rates["x"] == 0.0 and rates["region"] == 0.0 and rates["active"] == 0.0
    assert rates["amount"] == pytest.approx(0.05, abs=0.015) and rates["plan"] == pytest.approx(0.02, abs=0.01)
    plan = next(f for f in j.features if f.name == "plan")
    assert plan.severity == "alert" and plan.examples[0]["offline"] == "legacy"
    assert "customer_id" not in report.flagged()  # the key is no "new column"
    # The bucketed (spilled to disk) path gives the same answer as the in-memory one.
    ref = Reference.from_artifact(churn)
    inputs = [c for c in ref.expected(False) if c.role == "input"]
    rules = {c.feature: Thresholds().rules(c.feature) for c in inputs}
    src = open_source(s, model=None)
    spilled = join_report(src, inputs, "customer_id", o, rules, since=None, until=None, batch_size=256, bucket_rows=500)
    assert {f.name: (f.compared, f.mismatched) for f in spilled.features} == {
        f.name: (f.compared, f.mismatched) for f in j.features
    }
    assert spilled.duplicate_offline_keys == 1
    validate_report(report.to_dict())


def test_join_key_must_exist(churn: parity.Artifact, tmp_path: Path) -> None:
    s, o = _join_data(tmp_path)
    with pytest.raises(SkewDataError, match="no column 'id'"):
        skew_report(churn, s, join="id", offline=o)
