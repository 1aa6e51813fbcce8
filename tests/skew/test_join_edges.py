"""Joins by key beyond the happy path: a CSV offline copy, keys of different types, a feature missing or of
another type on one side, no key in common, an unreadable offline file; and bad thresholds files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import parity
from parity.skew import SkewDataError, Thresholds, ThresholdsError, skew_report
from tests.skew.helpers import frame


def _serving(tmp_path: Path, n: int = 200) -> Path:
    serving = frame(n, 21)
    serving.insert(0, "customer_id", list(range(n)))  # integer keys
    path = tmp_path / "serving.parquet"
    pq.write_table(pa.Table.from_pandas(serving, preserve_index=False), path)
    return path


def test_a_csv_offline_copy_with_text_keys_joins_integer_serving_keys(churn: parity.Artifact, tmp_path: Path) -> None:
    s = _serving(tmp_path)
    offline = pq.read_table(s).to_pandas()
    offline["customer_id"] = [f"{i}" for i in offline["customer_id"]]
    offline["customer_id"] = "k" + offline["customer_id"]  # text keys: never equal to the integers
    offline.to_csv(tmp_path / "offline.csv", index=False)
    report = skew_report(churn, s, join="customer_id", offline=tmp_path / "offline.csv")
    j = report.join
    assert j is not None and (j.serving_rows, j.offline_rows, j.matched) == (200, 200, 0)
    assert "no serving row matched an offline row by 'customer_id'" in j.notes

    same = pq.read_table(s).to_pandas()
    same["customer_id"] = same["customer_id"].astype(str)  # the same keys, as text in a CSV
    same = same.drop(columns=["region"])  # a feature only the serving side has
    same.loc[:9, "x"] = same.loc[:9, "x"] + 1.0
    same.to_csv(tmp_path / "same.csv", index=False)
    j = skew_report(churn, s, join="customer_id", offline=tmp_path / "same.csv").join
    assert j is not None and j.matched == 200
    rates = {f.name: (f.compared, f.mismatched) for f in j.features}
    assert rates["x"] == (200, 10) and rates["plan"] == (200, 0)
    assert "region" not in rates and any("not compared (missing on one side): ['region']" in n for n in j.notes)


def test_a_feature_of_another_type_offline_is_compared_as_text(churn: parity.Artifact, tmp_path: Path) -> None:
    s = _serving(tmp_path)
    offline = pq.read_table(s).to_pandas()
    offline["active"] = offline["active"].map({True: "true", False: "no"})  # text where serving has booleans
    pq.write_table(pa.Table.from_pandas(offline, preserve_index=False), tmp_path / "offline.parquet")
    j = skew_report(churn, s, join="customer_id", offline=tmp_path / "offline.parquet").join
    assert j is not None
    active = next(f for f in j.features if f.name == "active")
    # Cast to text both sides: "true" == "true", but False was written "no" offline.
    assert active.mismatched == int((~pq.read_table(s).column("active").to_pandas()).sum())


def test_an_unreadable_offline_file_is_named(churn: parity.Artifact, tmp_path: Path) -> None:
    s = _serving(tmp_path)
    (tmp_path / "offline.parquet").write_bytes(b"PAR1 broken PAR1")
    with pytest.raises(SkewDataError, match="cannot read"):
        skew_report(churn, s, join="customer_id", offline=tmp_path / "offline.parquet")


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        (None, "cannot read thresholds file"),
        ("[metrics]\npsi = false\n", "[metrics] psi = false is only allowed per feature"),
        ("[schema]\nignore_columns = 'id'\n", "[schema] ignore_columns must be a list of column names"),
        ("[schema]\nnew_kolumn = 'warn'\n", "unknown key [schema] 'new_kolumn'; known:"),
        ("[features.x]\nignore = 'yes'\n", "ignore must be true or false, got 'yes'"),
    ],
)
def test_bad_thresholds_files_name_the_key(tmp_path: Path, toml: str | None, words: str) -> None:
    path = tmp_path / "t.toml"
    if toml is not None:
        path.write_text(toml)
    with pytest.raises(ThresholdsError) as info:
        Thresholds.load(path)
    assert words in str(info.value)


def test_the_html_report_shows_the_join_and_schema_problems(churn: parity.Artifact, tmp_path: Path) -> None:
    from parity.skew import write_html

    s = _serving(tmp_path)
    offline = pq.read_table(s).to_pandas()
    offline.loc[:19, "plan"] = "legacy"
    pq.write_table(pa.Table.from_pandas(offline, preserve_index=False), tmp_path / "offline.parquet")
    serving = pq.read_table(s).drop_columns(["amount"])  # a schema problem: a column the model needs
    pq.write_table(serving, s)
    report = skew_report(churn, s, join="customer_id", offline=tmp_path / "offline.parquet")
    write_html(report, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert "Join with offline data" in html and "<code>customer_id</code>: 200 of 200 serving rows matched" in html
    assert "20/200" in html and "&#x27;legacy&#x27;" in html  # the plan row with an escaped example
    amount = next(f for f in report.features if f.name == "amount")
    assert amount.schema and amount.schema[0].kind == "missing_column"
    assert amount.schema[0].message.replace("'", "&#x27;") in html
