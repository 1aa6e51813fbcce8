"""Where serving data comes from: CSV directories, empty ones, one lake version, a window without --by, and a CSV
whose column changes type part-way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import parity
from parity.errors import SchemaError
from parity.skew import SkewDataError, skew_report
from tests.skew.helpers import T0, frame, write_lake


def test_a_directory_of_csv_files_is_read_as_csv(churn: parity.Artifact, tmp_path: Path) -> None:
    (tmp_path / "day1").mkdir()
    frame(300, 1).to_csv(tmp_path / "day1" / "a.csv", index=False)
    frame(200, 2).to_csv(tmp_path / "b.csv", index=False)
    report = skew_report(churn, tmp_path)
    assert (report.data.kind, report.data.files, report.data.rows) == ("csv", 2, 500)
    assert report.status != "no_data" and {f.name for f in report.features} >= {"x", "plan"}


def test_a_directory_without_data_files_names_what_it_looked_for(churn: parity.Artifact, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no data here")
    with pytest.raises(SkewDataError, match=f"no Parquet or CSV files found under {tmp_path}"):
        skew_report(churn, tmp_path)


def test_one_model_version_of_a_lake_and_a_window_without_windows(churn: parity.Artifact, tmp_path: Path) -> None:
    write_lake(tmp_path, churn, frame(300, 3), version=1, step_s=60.0, rows_per_request=50)  # 6 requests
    write_lake(tmp_path, churn, frame(200, 4), version=2, step_s=60.0, rows_per_request=50)
    only_two = skew_report(churn, tmp_path, model_version=2)
    assert only_two.data.rows == 200
    none = skew_report(churn, tmp_path, model_version=7)
    assert none.data.rows == 0 and any("version 7" in n for n in none.notes)
    # Requests at T0, T0+60, ...: [T0+60, T0+180) holds the 2nd and 3rd request of each version.
    window = skew_report(churn, tmp_path, since=_iso(T0 + 60), until=_iso(T0 + 180))
    assert window.data.rows == 2 * 2 * 50 and window.windows == []


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()


def test_a_csv_column_that_turns_to_text_past_the_first_block(churn: parity.Artifact, tmp_path: Path) -> None:
    """Types are inferred from the first 4 MiB: text further down is a SchemaError saying what to do."""
    n = 120_000
    rng = np.random.default_rng(0)
    xs = rng.normal(50.0, 10.0, n)
    lines = ["x,amount,plan,region,active"] + [f"{x:.6f},{x * 1.5:.6f},basic,north,true" for x in xs]
    lines.append("oops,1.0,basic,north,true")
    path = tmp_path / "serving.csv"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 4 << 20
    with pytest.raises(SchemaError, match="cannot be read with consistent column types") as info:
        skew_report(churn, path)
    assert "convert to Parquet" in str(info.value)
