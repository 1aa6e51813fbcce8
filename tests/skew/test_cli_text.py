"""``parity skew``'s terminal report for replay, join, ignored and unseen features; skew_report's argument errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

import parity
from parity.cli import app
from parity.codec import encode_frame
from parity.errors import ProfileError
from parity.profile import ProfileSpec, profile_frame
from parity.skew import Reference, SkewDataError, skew_report
from tests.skew.helpers import fit_artifact, frame, write_lake

runner = CliRunner()


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def mixed_up_lake(tmp_path_factory: pytest.TempPathFactory, churn: parity.Artifact) -> Path:
    """Version 0 rows whose logged outputs came from another model (flipped labels), and 3 rows with null `active`."""
    root = tmp_path_factory.mktemp("mixup")
    other = fit_artifact(flip=True, n=800)
    write_lake(root, churn, frame(200, 5), version=0,
               predict=lambda part: other.runtime.predict(encode_frame(other.signature, part)))  # fmt: skip
    (path,) = root.rglob("*.parquet")
    table = pq.read_table(path)
    nulls = pa.array([None if i in (3, 4, 5) else v for i, v in enumerate(table["active"].to_pylist())], pa.bool_())
    pq.write_table(table.set_column(table.schema.get_field_index("active"), "active", nulls), path)
    return root


def test_replay_text_report_names_mismatches_and_rejected_rows(art_dir: Path, mixed_up_lake: Path) -> None:
    res = run("skew", str(art_dir), "--data", str(mixed_up_lake), "--replay")
    assert res.exit_code == 0, res.output
    replay = next(line for line in res.stdout.splitlines() if line.startswith("Replay "))
    assert "200 rows" in replay and "3 rejected" in replay and "ALERT" in replay
    examples = [line.strip() for line in res.stdout.splitlines() if line.strip().startswith("request req-0-")]
    assert len(examples) == 5  # the terminal shows the first five
    assert any("input rejected by the model's signature" in e and "active" in e for e in examples)
    assert any("logged vs" in e and "replayed" in e for e in examples)

    doc = json.loads(run("skew", str(art_dir), "--data", str(mixed_up_lake), "--replay", "--json", "-").stdout)
    assert doc["replay"]["errors"] == 3 and doc["replay"]["rows"] == 200
    assert doc["replay"]["mismatched"] > 100  # flipped labels on most of the 197 valid rows


def test_replay_of_a_version_missing_from_the_registry_uses_the_given_artifact(
    churn: parity.Artifact, art_dir: Path, tmp_path: Path
) -> None:
    write_lake(tmp_path / "lake", churn, frame(100, 6), version=5)
    registry = tmp_path / "registry"  # empty: churn:5 is not in it
    res = run("--registry", str(registry), "skew", str(art_dir), "--data", str(tmp_path / "lake"), "--replay")
    assert res.exit_code == 0, res.output
    assert "note: version 5 is not in the registry: replayed with the given artifact instead" in " ".join(
        res.stdout.split()
    )
    assert "100 rows, 0 mismatched, 0 rejected" in res.stdout


def test_replay_of_a_csv_file_is_refused(churn: parity.Artifact, tmp_path: Path) -> None:
    csv = tmp_path / "serving.csv"
    frame(50, 1).to_csv(csv, index=False)
    with pytest.raises(SkewDataError, match="reads Parquet serving logs"):
        skew_report(churn, csv, replay=True)


def test_join_text_report_shows_each_differing_feature_with_an_example(art_dir: Path, tmp_path: Path) -> None:
    n = 400
    serving = frame(n, 8)
    serving.insert(0, "customer_id", [f"c{i:04d}" for i in range(n)])
    offline = serving.copy()
    offline.loc[:39, "plan"] = "legacy"  # 10% differ
    pq.write_table(pa.Table.from_pandas(serving, preserve_index=False), tmp_path / "s.parquet")
    pq.write_table(pa.Table.from_pandas(offline, preserve_index=False), tmp_path / "o.parquet")
    res = run("skew", str(art_dir), "--data", str(tmp_path / "s.parquet"), "--join", "customer_id",
              "--offline", str(tmp_path / "o.parquet"))  # fmt: skip
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    assert "Join by 'customer_id': 400 of 400 serving rows matched" in text
    assert "plan: 40/400 differ, e.g. key 'c0000'" in text and "vs 'legacy'" in text
    assert "x: " not in text.split("Join by")[1]  # features that agree get no line


def test_an_ignored_feature_is_noted_and_never_flagged(art_dir: Path, tmp_path: Path) -> None:
    df = frame(2000, 12)
    df.loc[:, "plan"] = "enterprise"  # every value unseen: an alert unless ignored
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "d.parquet")
    toml = tmp_path / "t.toml"
    toml.write_text("[features.plan]\nignore = true\n")
    res = run("skew", str(art_dir), "--data", str(tmp_path / "d.parquet"), "--thresholds", str(toml),
              "--fail-on", "warn")  # fmt: skip
    assert res.exit_code == 0, res.output
    plan = next(line for line in res.stdout.splitlines() if line.startswith("│ plan"))
    assert "ignored by the" in plan and "alert" not in plan
    assert run("skew", str(art_dir), "--data", str(tmp_path / "d.parquet"), "--fail-on", "alert").exit_code == 11


def test_more_features_than_the_terminal_shows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    wide = pd.DataFrame({f"f{i:02d}": rng.normal(size=500) for i in range(45)})
    profile_frame(wide).save(tmp_path / "ref.json")
    pq.write_table(pa.Table.from_pandas(wide, preserve_index=False), tmp_path / "d.parquet")
    res = run("skew", str(tmp_path / "ref.json"), "--data", str(tmp_path / "d.parquet"))
    assert res.exit_code == 0, res.output
    assert "5 more feature(s) in the JSON/HTML report" in res.stdout


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"since": "2024-06-02", "until": "2024-06-01"}, "`since` (2024-06-02T00:00:00Z) must be before `until`"),
        ({"by": "week"}, "`by` must be one of ['day', 'hour'], got 'week'"),
        ({"backend": "polars"}, "backend must be 'pyarrow', 'dask' or 'spark', got 'polars'"),
    ],
)
def test_bad_skew_arguments_name_the_argument(
    churn: parity.Artifact, tmp_path: Path, kwargs: dict[str, str], words: str
) -> None:
    pq.write_table(pa.Table.from_pandas(frame(50, 1), preserve_index=False), tmp_path / "d.parquet")
    with pytest.raises(SkewDataError) as info:
        skew_report(churn, tmp_path / "d.parquet", **kwargs)  # type: ignore[arg-type]
    assert words in str(info.value)


def test_a_precomputed_serving_profile_as_data(churn: parity.Artifact, tmp_path: Path) -> None:
    ref = Reference.from_artifact(churn)
    serving = frame(1500, 13)
    serving.loc[:, "x"] = serving["x"] + 30.0  # a shift the report must flag
    spec = ProfileSpec({k: v for k, v in ref.spec().columns.items() if k in ("x", "amount", "plan", "region")})
    profile = profile_frame(serving.drop(columns=["active"]), spec)
    report = skew_report(ref, profile)
    assert report.data.kind == "profile" and report.data.rows == 1500
    by_name = {f.name: f for f in report.features}
    assert by_name["x"].severity == "alert" and by_name["amount"].severity == "ok"
    assert [p.kind for p in by_name["active"].schema] == ["missing_column"]
    assert "not in the profile" in by_name["active"].schema[0].message
    # A bare profile as the reference (no artifact) profiles too, but cannot replay.
    bare = skew_report(ref.inputs, profile)
    assert {f.name for f in bare.features} >= {"x", "amount"}
    with pytest.raises(SkewDataError, match="needs a model artifact"):
        skew_report(ref.inputs, tmp_path, replay=True)
    with pytest.raises(SkewDataError, match="supports no `replay`, `join`, `by`"):
        skew_report(ref, profile, by="day")
    other = profile_frame(serving)  # binned from the serving data itself, not the reference's spec
    with pytest.raises(ProfileError, match="binned with another spec"):
        skew_report(ref, other)


def test_a_saved_reference_json_is_accepted_by_path(churn: parity.Artifact, tmp_path: Path) -> None:
    churn.profile.save(tmp_path / "ref.json")
    data = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pandas(frame(300, 14), preserve_index=False), data)
    seen: list[int] = []
    report = skew_report(str(tmp_path / "ref.json"), data, progress=seen.append)
    assert seen == [300] and report.data.rows == 300
    assert {f.name for f in report.features} == {"x", "amount", "plan", "region", "active"}


def test_replay_of_an_empty_window_or_switched_off(churn: parity.Artifact, tmp_path: Path) -> None:
    write_lake(tmp_path / "lake", churn, frame(100, 15), version=0)
    empty = skew_report(churn, tmp_path / "lake", replay=True, since="2031-01-01", until="2031-02-01").replay
    assert empty is not None and empty.rows == 0 and empty.rate is None
    assert (empty.metric.status, empty.metric.note, empty.severity) == ("unavailable", "no rows to replay", "ok")
    toml = tmp_path / "t.toml"
    toml.write_text("[features.replay]\nreplay_mismatch = false\n")
    off = skew_report(churn, tmp_path / "lake", replay=True, thresholds=toml).replay
    assert off is not None and off.rows == 100 and off.mismatched == 0
    assert off.metric.status == "not_judged" and off.severity == "ok"
