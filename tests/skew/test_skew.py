"""Planted shifts are flagged on exactly their feature; unshifted samples stay quiet; windows merge exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from parity.cli._skew_render import exit_code
from parity.profile import Profile, ProfileSpec, profile_frame, profile_parquet
from parity.skew import Reference, SkewDataError, skew_report, validate_report
from parity.skew._data import open_source, profile_source
from tests.skew.helpers import frame

KINDS: dict[str, Any] = {"x": "numeric", "amount": "numeric", "plan": "categorical", "region": "categorical"}
KINDS["active"] = "boolean"


@pytest.fixture(scope="module")
def reference() -> Reference:
    df = frame(20_000, seed=100)
    return Reference(profile_frame(df, ProfileSpec.from_reference(df, KINDS)), name="churn")


def _write(df: pd.DataFrame, path: Path, **extra: Any) -> Path:
    table = pa.Table.from_pandas(df, preserve_index=False)
    for name, values in extra.items():
        table = table.append_column(name, values)
    pq.write_table(table, path)
    return path


def _shifted(kind: str, seed: int = 7) -> pd.DataFrame:
    df = frame(2000, seed)
    rng = np.random.default_rng(seed + 1)
    if kind == "mean":
        df["x"] = df["x"] + 10.0  # +1 standard deviation
    elif kind == "categories":
        df.loc[rng.random(len(df)) < 0.15, "plan"] = "enterprise"
    elif kind == "nulls":
        df.loc[rng.random(len(df)) < 0.30, "amount"] = np.nan
    elif kind == "type":
        df["region"] = rng.integers(0, 5, len(df))
    return df


@pytest.mark.parametrize(
    ("kind", "feature", "metric"),
    [
        ("mean", "x", "psi"),
        ("categories", "plan", "unseen_share"),
        ("nulls", "amount", "null_rate_change"),
        ("type", "region", None),
    ],
)
def test_each_planted_shift_flags_exactly_its_feature(
    reference: Reference, tmp_path: Path, kind: str, feature: str, metric: str | None
) -> None:
    report = skew_report(reference, _write(_shifted(kind), tmp_path / "cur.parquet"))
    assert report.flagged("warn") == [feature], report.dumps()
    flagged = report.feature(feature)
    assert flagged.severity == "alert"
    assert report.features[0].name == feature  # sorted by severity
    if metric is None:
        assert [p.kind for p in flagged.schema] == ["type_change"]
        assert "expected categorical (string), received int64" in flagged.schema[0].message
    else:
        m = flagged.metric(metric)
        assert m is not None and m.severity == "alert"
    validate_report(report.to_dict())


def test_new_and_missing_columns_are_schema_alerts(reference: Reference, tmp_path: Path) -> None:
    df = frame(500, 3).drop(columns=["active"])
    df["surprise"] = 1.0
    report = skew_report(reference, _write(df, tmp_path / "c.parquet"))
    assert set(report.flagged("alert")) == {"active", "surprise"}
    assert report.feature("active").schema[0].kind == "missing_column"
    assert report.feature("surprise").role == "extra"
    assert skew_report(reference, tmp_path / "c.parquet", thresholds=_ignore(tmp_path)).flagged() == ["active"]


def _ignore(tmp_path: Path) -> Path:
    f = tmp_path / "t.toml"
    f.write_text("[schema]\nignore_columns = ['surprise']\n")
    return f


def test_unshifted_samples_raise_no_alert(reference: Reference, tmp_path: Path) -> None:
    """30 seeds x 2000 rows from the training distribution: no alert at default thresholds; warn rate reported."""
    warns = alerts = checks = 0
    for seed in range(30):
        report = skew_report(reference, _write(frame(2000, 1000 + seed), tmp_path / f"s{seed}.parquet"))
        for f in report.features:
            checks += 1
            warns += f.severity == "warn"
            alerts += f.severity == "alert"
    print(f"\nfalse alarms over {checks} feature checks: alert {alerts / checks:.1%}, warn {warns / checks:.1%}")
    assert alerts == 0
    assert warns / checks <= 0.02


def test_few_rows_never_alert(reference: Reference, tmp_path: Path) -> None:
    report = skew_report(reference, _write(_shifted("mean")[:50], tmp_path / "few.parquet"))
    m = report.feature("x").metric("psi")
    assert m is not None and m.status == "insufficient" and m.severity == "ok" and m.value and m.value > 0.25
    assert report.severity == "ok"


def _lake_like(n: int, hours: int, seed: int) -> pa.Table:
    df = frame(n, seed)
    ts = datetime(2024, 6, 1, tzinfo=UTC).timestamp() * 1e6 + np.linspace(0, hours * 3600e6 - 1, n)
    table = pa.Table.from_pandas(df, preserve_index=False)
    return table.append_column("ts", pa.array(ts.astype(np.int64)).cast(pa.timestamp("us", tz="UTC")))


def test_windows_partition_the_stream_exactly(reference: Reference, tmp_path: Path) -> None:
    table = _lake_like(3000, hours=3, seed=5)
    for i, part in enumerate((table.slice(0, 1200), table.slice(1200))):
        pq.write_table(part, tmp_path / f"p{i}.parquet", row_group_size=500)
    src = open_source(tmp_path, model=None)
    cols = [c for c in reference.expected(lake=False)]
    total, windows = profile_source(src, cols, by="hour")
    whole = profile_parquet(tmp_path, reference.spec())
    assert _counts(total) == _counts(whole)
    assert [t.hour for t in windows] == [0, 1, 2]
    assert sum(p.rows for p in windows.values()) == 3000
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    for t, prof in windows.items():
        lo = int(t.timestamp() * 1e6)
        mask = (ts >= lo) & (ts < lo + 3600 * 10**6)
        assert _counts(prof) == _counts(profile_frame(table.filter(pa.array(mask)), reference.spec()))
    report = skew_report(reference, tmp_path, by="hour", since="2024-06-01T01:00:00Z")
    assert [w.start for w in report.windows] == ["2024-06-01T01:00:00Z", "2024-06-01T02:00:00Z"]
    assert report.data.rows == sum(w.rows for w in report.windows) == 2000
    validate_report(report.to_dict())


def _counts(p: Profile) -> dict[str, Any]:
    """Everything but the floating mean/m2 (those agree to rounding, not bit for bit, across partitionings)."""
    d = p.to_dict()
    for c in d["columns"].values():
        c.pop("mean", None)
        c.pop("m2", None)
    return d


def test_empty_window_is_an_explicit_no_data_report(reference: Reference, tmp_path: Path) -> None:
    pq.write_table(_lake_like(100, 1, 1), tmp_path / "d.parquet")
    report = skew_report(reference, tmp_path, since="2030-01-01", until="2030-01-02")
    assert report.status == "no_data" and report.data.rows == 0
    assert any("no data" in n for n in report.notes)
    assert exit_code(report, "alert") == 12 and exit_code(report, None) == 0
    validate_report(report.to_dict())


def test_csv_data(reference: Reference, tmp_path: Path) -> None:
    df = _shifted("nulls")
    df.to_csv(tmp_path / "cur.csv", index=False)
    report = skew_report(reference, tmp_path / "cur.csv")
    assert report.data.kind == "csv" and report.data.rows == 2000
    assert report.flagged() == ["amount"]


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        ("missing", "does not exist"),
        ("corrupt", "cannot read Parquet file"),
        ("no_ts", "need a timestamp column 'ts'"),
        ("bad_time", "is not an ISO time"),
    ],
)
def test_bad_input_raises_clear_errors(reference: Reference, tmp_path: Path, setup: str, needle: str) -> None:
    path = tmp_path / "data.parquet"
    kw: dict[str, Any] = {}
    if setup == "corrupt":
        path.write_bytes(b"PAR1 this is not parquet")
    elif setup in ("no_ts", "bad_time"):
        _write(frame(100, 1), path)
        kw = {"since": "2024-01-01"} if setup == "no_ts" else {"until": "yesterday"}
    with pytest.raises(SkewDataError, match=needle):
        skew_report(reference, path, **kw)


def test_windowed_profiling_in_worker_processes(reference: Reference, tmp_path: Path) -> None:
    table = _lake_like(4000, hours=2, seed=8)
    for i in range(4):
        pq.write_table(table.slice(i * 1000, 1000), tmp_path / f"p{i}.parquet")
    one = skew_report(reference, tmp_path, by="hour", processes=1).to_dict()
    two = skew_report(reference, tmp_path, by="hour", processes=2).to_dict()
    assert two["data"]["processes"] == 2
    for d in (one, two):
        d.pop("created"), d.pop("seconds"), d["data"].pop("processes")
    assert one == two
