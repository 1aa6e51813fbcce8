"""The parity comparison itself: tolerance boundaries, NaN on either side, every output kind."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from parity.checks import UNSEEN, compare_outputs, edge_cases, null_column, run_parity_check
from parity.errors import ParityMismatchError
from parity.schema import ColumnSpec, Signature

TOL = 1e-6

# One float output of each kind a model has: a probability in [0, 1], a regression value above 1
# in magnitude (relative tolerance), a negative one, and a float32 output (XGBoost-style).
FLOAT_KINDS = {
    "probability": np.array([0.25, 0.5, 0.75]),
    "prediction": np.array([1500.0, 2.5, -3.0]),
    "negative": np.array([-0.5, -2000.0, -1.0]),
    "float32": np.array([0.125, 0.5, 0.875], dtype=np.float32),
}


def _one(expected: np.ndarray, actual: np.ndarray, tol: float = TOL) -> tuple[float, float, int, int | None]:
    return compare_outputs({"y": expected}, {"y": actual}, tol)["y"]


@pytest.mark.parametrize("factor", [2.0, 0.5])
@pytest.mark.parametrize("value", [0.5, -0.25, 0.0, 1.0])
def test_absolute_tolerance_boundary_below_one(value: float, factor: float) -> None:
    # |expected| <= 1: the tolerance is absolute.
    actual = value + factor * TOL
    abs_d, rel_d, bad, worst = _one(np.array([0.1, value]), np.array([0.1, actual]))
    assert abs_d == pytest.approx(factor * TOL, rel=1e-6)
    assert rel_d == pytest.approx(factor * TOL, rel=1e-6)
    assert bad == (1 if factor > 1 else 0)
    assert worst == 1


@pytest.mark.parametrize("factor", [2.0, 0.5])
@pytest.mark.parametrize("value", [1000.0, -5e6, 3.0])
def test_relative_tolerance_boundary_above_one(value: float, factor: float) -> None:
    # |expected| > 1: the tolerance is relative, so the absolute diff may exceed it and still pass.
    actual = value * (1 + factor * TOL)
    abs_d, rel_d, bad, _ = _one(np.array([value]), np.array([actual]))
    assert abs_d == pytest.approx(abs(value) * factor * TOL, rel=1e-6)
    assert rel_d == pytest.approx(factor * TOL, rel=1e-6)
    assert bad == (1 if factor > 1 else 0)
    if factor < 1:
        assert abs_d > TOL  # passing here relies on the relative rule


def test_exactly_at_tolerance_passes_and_counts_every_bad_row() -> None:
    exp = np.array([0.0, 0.0, 10.0, 0.0, 0.0])
    act = np.array([0.5e-6, 3e-6, 10.0, -3e-6, 0.0])  # rows 1 and 3 beyond 1e-6
    abs_d, rel_d, bad, worst = _one(exp, act)
    assert rel_d == abs_d  # |expected| <= 1 everywhere
    assert bad == 2 and worst in (1, 3) and abs_d == pytest.approx(3e-6)
    assert _one(np.array([0.0]), np.array([2.0**-20]), tol=2.0**-20)[2] == 0  # equal to tol: not beyond


@pytest.mark.parametrize("kind", sorted(FLOAT_KINDS))
@pytest.mark.parametrize("side", ["expected", "actual"])
def test_nan_against_a_number_is_a_mismatch(kind: str, side: str) -> None:
    exp = FLOAT_KINDS[kind].copy()
    act = exp.copy()
    (exp if side == "expected" else act)[1] = np.nan
    abs_d, rel_d, bad, worst = compare_outputs({kind: exp}, {kind: act}, TOL)[kind]
    assert bad == 1 and worst == 1
    assert abs_d == np.inf and rel_d == np.inf


@pytest.mark.parametrize("kind", sorted(FLOAT_KINDS))
def test_nan_on_both_sides_and_infinities_agree(kind: str) -> None:
    exp = FLOAT_KINDS[kind].copy()
    exp[0] = np.nan
    exp[2] = np.inf
    abs_d, rel_d, bad, worst = compare_outputs({kind: exp}, {kind: exp.copy()}, TOL)[kind]
    assert (abs_d, rel_d, bad) == (0.0, 0.0, 0)
    assert worst == 0  # argmax of all-zero diffs


def test_inf_against_a_number_is_a_mismatch() -> None:
    assert _one(np.array([1.0, np.inf]), np.array([1.0, 5.0]))[2] == 1
    assert _one(np.array([1.0, -np.inf]), np.array([1.0, np.inf]))[2] == 1


@pytest.mark.parametrize(
    ("expected", "actual", "bad"),
    [
        (np.array(["no", "yes", "no"], dtype=object), np.array(["no", "yes", "no"], dtype=object), 0),
        (np.array(["no", "yes", "no"], dtype=object), np.array(["no", "no", "yes"], dtype=object), 2),
        (np.array(["no", np.nan], dtype=object), np.array(["no", "yes"], dtype=object), 1),  # NaN vs a label
        (np.array(["no", "yes"], dtype=object), np.array(["no", np.nan], dtype=object), 1),  # a label vs NaN
        (np.array([2, 0, 1]), np.array([2, 0, 1]), 0),
        (np.array([2, 0, 1]), np.array([2, 1, 1]), 1),
        (np.array([True, False]), np.array([True, True]), 1),
    ],
)
def test_labels_compare_exactly(expected: np.ndarray, actual: np.ndarray, bad: int) -> None:
    abs_d, rel_d, n_bad, worst = _one(expected, actual)
    assert n_bad == bad
    assert (abs_d, rel_d) == ((1.0, 1.0) if bad else (0.0, 0.0))
    assert worst == (int(np.flatnonzero(np.asarray(expected != actual))[0]) if bad else None)


def test_int_labels_against_float_output_use_the_tolerance() -> None:
    # One side float (e.g. a regression head returning ints in Python): compared numerically.
    assert _one(np.array([1, 2]), np.array([1.0, 2.0 + 1e-9]))[2] == 0
    assert _one(np.array([1, 2]), np.array([1.0, 2.5]))[2] == 1
    assert _one(np.array([1.0, 2.0]), np.array([1, 3]))[2] == 1


def test_empty_outputs_compare_clean() -> None:
    assert _one(np.array([], dtype=np.float64), np.array([], dtype=np.float64)) == (0.0, 0.0, 0, None)
    assert _one(np.array([], dtype=object), np.array([], dtype=object)) == (0.0, 0.0, 0, None)


def test_every_output_is_compared() -> None:
    exp = {"label": np.array(["a", "b"], dtype=object), "probability": np.array([0.1, 0.9])}
    act = {"label": np.array(["a", "b"], dtype=object), "probability": np.array([0.1, 0.9 + 2 * TOL])}
    result = compare_outputs(exp, act, TOL)
    assert set(result) == {"label", "probability"}
    assert result["label"][2] == 0 and result["probability"][2] == 1


# --- run_parity_check: the report and the failure --------------------------------------------------

SIG = Signature((ColumnSpec("x", "FP64", nullable=True), ColumnSpec("s", "BYTES", nullable=True, categories=("a",))))


def _cases() -> dict[str, pd.DataFrame]:
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "s": ["a", "a", None, "a"]})
    return {"rows": frame, "single:0": frame.iloc[[0]].reset_index(drop=True)}


def _reference(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    p = frame["x"].to_numpy(dtype=np.float64) / 10
    return {"label": np.where(p > 0.15, "yes", "no").astype(object), "probability": p}


def _shifted(delta: float, nan_row: int | None = None) -> Any:
    def candidate(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        out = _reference(frame)
        out["probability"] = out["probability"] + delta
        if nan_row is not None and nan_row < len(frame):
            out["probability"][nan_row] = np.nan
        return out

    return candidate


def test_run_parity_check_passes_within_half_the_tolerance() -> None:
    report, expected = run_parity_check(
        _reference, _shifted(0.5 * TOL), _cases(), tolerance=TOL, precision="p", runtime="r"
    )
    assert report.passed and report.failure is None
    assert report.rows_checked == 5 and report.cases == {"rows": 4, "single:0": 1}
    assert report.outputs["probability"].mismatches == 0
    assert report.outputs["probability"].max_abs_diff == pytest.approx(0.5 * TOL, rel=1e-6)
    assert report.outputs["probability"].max_rel_diff == pytest.approx(0.5 * TOL, rel=1e-6)
    assert report.outputs["probability"].worst_case is not None
    assert report.outputs["label"].max_abs_diff == 0.0 and report.outputs["label"].max_rel_diff == 0.0
    np.testing.assert_array_equal(expected["rows"]["probability"], [0.0, 0.1, 0.2, 0.3])
    assert report.to_dict()["outputs"]["probability"]["mismatches"] == 0


def test_run_parity_check_fails_at_twice_the_tolerance() -> None:
    with pytest.raises(ParityMismatchError, match=r"output 'probability' differs in case 'rows': 4 of 4 rows") as info:
        run_parity_check(_reference, _shifted(2 * TOL), _cases(), tolerance=TOL, precision="p", runtime="r")
    report = info.value.report
    assert not report.passed
    assert report.outputs["probability"].mismatches == 5
    assert report.outputs["probability"].worst_case == "rows"
    assert "allow_mismatch=True" in str(info.value)


@pytest.mark.parametrize("nan_row", [0, 2])
def test_run_parity_check_fails_on_a_nan_output(nan_row: int) -> None:
    report, _ = run_parity_check(
        _reference,
        _shifted(0.0, nan_row=nan_row),
        _cases(),
        tolerance=TOL,
        precision="p",
        runtime="r",
        raise_on_failure=False,
    )
    assert not report.passed
    assert report.outputs["probability"].worst_row == nan_row
    assert report.outputs["probability"].mismatches == (2 if nan_row == 0 else 1)
    failure = report.failure or ""
    assert f"worst row {nan_row}" in failure and "exported=np.float64(nan)" in failure
    # The message quotes the Python value of the worst row itself, not of row 0 or 1.
    assert f"python=np.float64({nan_row / 10})" in failure
    assert f"worst row {nan_row}: {{'x': np.float64({float(nan_row)}), " in failure  # that row's inputs


def test_run_parity_check_records_a_python_failure_as_skipped() -> None:
    def reference(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        if len(frame) == 1:
            raise ValueError("one row is not enough")
        return _reference(frame)

    report, expected = run_parity_check(reference, _shifted(0.0), _cases(), tolerance=TOL, precision="p", runtime="r")
    assert report.passed and report.cases == {"rows": 4} and set(expected) == {"rows"}
    assert report.skipped == {"single:0": "the Python model raised ValueError: one row is not enough"}


def test_report_round_trips_through_the_manifest_form() -> None:
    report, _ = run_parity_check(
        _reference, _shifted(3 * TOL), _cases(), tolerance=TOL, precision="p", runtime="r", raise_on_failure=False
    )
    again = type(report).from_dict(report.to_dict())
    assert again == report


# --- edge cases ------------------------------------------------------------------------------------


def test_edge_cases_cover_nulls_unseen_empty_extremes_and_thresholds() -> None:
    sig = Signature(
        (
            ColumnSpec("x", "FP64", nullable=True),
            ColumnSpec("n", "INT64", nullable=False),
            ColumnSpec("s", "BYTES", nullable=True, categories=("a", "b")),
        )
    )
    base = pd.DataFrame({"x": np.arange(20, dtype=np.float64), "n": np.arange(20), "s": ["a", "b"] * 10})
    cases = edge_cases(base, sig, {"x": np.array([2.5]), "n": np.array([3.5])})
    assert set(cases) == {
        "null:x", "null:s", "null:all", "unseen:s", "empty:s", "extreme:x", "extreme:n", "threshold:x", "threshold:n",
    }  # fmt: skip
    assert (
        len(cases["null:x"]) == 16
        and cases["null:x"]["x"].isna().all()
        and cases["null:x"]["n"].tolist()[:3] == [0, 1, 2]
    )
    assert cases["null:s"]["s"].isna().all() and cases["null:all"][["x", "s"]].isna().all().all()
    assert not cases["null:all"]["n"].isna().any()
    assert (cases["unseen:s"]["s"] == UNSEEN).all() and (cases["empty:s"]["s"] == "").all()
    assert cases["extreme:x"]["x"].tolist() == [0.0, 1e9, -1e9]
    assert cases["extreme:n"]["n"].tolist() == [0, 1_000_000_000, -1_000_000_000]
    assert cases["extreme:n"]["n"].dtype == np.int64
    near = cases["threshold:x"]["x"].to_numpy()
    assert 2.5 in near and np.nextafter(2.5, np.inf) in near and np.nextafter(2.5, -np.inf) in near
    assert 2.5 * (1 + 1e-9) in near and 2.5 * (1 - 1e-9) in near
    assert float(np.nextafter(np.float32(2.5), np.float32(np.inf))) in near
    assert cases["threshold:n"]["n"].tolist() == [3, 4]  # integer columns: floor and ceil of the neighbours


def test_a_skipped_case_does_not_stop_the_later_ones() -> None:
    def reference(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        if len(frame) == 1:
            raise ValueError("one row is not enough")
        return _reference(frame)

    cases = {"single:0": _cases()["single:0"], "rows": _cases()["rows"]}  # the failing case first
    report, expected = run_parity_check(reference, _shifted(0.0), cases, tolerance=TOL, precision="p", runtime="r")
    assert report.cases == {"rows": 4} and set(expected) == {"rows"} and set(report.skipped) == {"single:0"}


def test_one_nullable_column_has_no_all_nulls_case() -> None:
    sig = Signature((ColumnSpec("x", "FP64", nullable=True), ColumnSpec("n", "INT64", nullable=False)))
    base = pd.DataFrame({"x": np.arange(5, dtype=np.float64), "n": np.arange(5)})
    cases = edge_cases(base, sig, {})
    assert set(cases) == {"null:x", "extreme:x", "extreme:n"}
    assert len(cases["null:x"]) == 5  # min(rows, 16)


def test_worst_case_is_the_first_case_reaching_the_largest_diff() -> None:
    # Two identical cases tie on the diff: the report names the first, where the user would look first.
    frame = _cases()["rows"]
    cases = {"first": frame, "second": frame.copy()}
    report, _ = run_parity_check(
        _reference, _shifted(2 * TOL), cases, tolerance=TOL, precision="p", runtime="r", raise_on_failure=False
    )
    assert report.outputs["probability"].worst_case == "first"
    assert report.outputs["probability"].mismatches == 8


def test_null_column_keeps_the_float_width_and_widens_integers_and_bools() -> None:
    index = pd.RangeIndex(3)
    f32 = null_column(pd.Series(np.ones(3, dtype=np.float32), index=index), ColumnSpec("f", "FP32", nullable=True))
    assert f32.dtype == np.float32 and f32.isna().all()
    ints = null_column(pd.Series(np.arange(3), index=index), ColumnSpec("n", "INT64", nullable=True))
    assert ints.dtype == np.float64 and ints.isna().all()  # int64 cannot hold NaN
    flags = null_column(pd.Series([True, False, True]), ColumnSpec("b", "BOOL", nullable=True))
    assert flags.dtype == np.float64 and flags.isna().all()  # a bool column with nulls is 0/1/NaN
    text = null_column(pd.Series(["a", "b", "a"], dtype=object), ColumnSpec("s", "BYTES", nullable=True))
    assert text.isna().all() and text.dtype == object


def test_threshold_neighbours_of_a_negative_threshold_include_the_float32_one_below() -> None:
    sig = Signature((ColumnSpec("x", "FP64", nullable=False),))
    base = pd.DataFrame({"x": np.arange(4, dtype=np.float64)})
    near = edge_cases(base, sig, {"x": np.array([-2.5])})["threshold:x"]["x"].to_numpy()
    below = float(np.nextafter(np.float32(-2.5), np.float32(-np.inf)))
    above = float(np.nextafter(np.float32(-2.5), np.float32(np.inf)))
    assert below in near and above in near and below < -2.5 < above
    assert np.nextafter(-2.5, -np.inf) in near and np.nextafter(-2.5, np.inf) in near  # float64 neighbours


def test_integer_thresholds_beyond_float_precision_are_dropped() -> None:
    # Above 2^53 a float64 cannot tell neighbouring integers apart: no threshold values there.
    sig = Signature((ColumnSpec("n", "INT64", nullable=False),))
    base = pd.DataFrame({"n": np.arange(4)})
    cases = edge_cases(base, sig, {"n": np.array([1_000_000.5, 1e17])})
    assert cases["threshold:n"]["n"].tolist() == [1_000_000, 1_000_001]


def test_threshold_case_keeps_4000_values_and_samples_beyond() -> None:
    # 500 thresholds make exactly 4000 distinct neighbours: all kept; 501 make 4008: a sample of 4000.
    sig = Signature((ColumnSpec("x", "FP64", nullable=False),))
    base = pd.DataFrame({"x": np.arange(4, dtype=np.float64)})
    thresholds = np.arange(500) + 0.1
    kept = edge_cases(base, sig, {"x": thresholds})["threshold:x"]["x"].to_numpy()
    assert len(kept) == 4000 and np.isin(thresholds, kept).all()
    sampled = edge_cases(base, sig, {"x": np.arange(501) + 0.1})["threshold:x"]["x"].to_numpy()
    assert len(sampled) == 4000 and len(np.unique(sampled)) == 4000
    again = edge_cases(base, sig, {"x": np.arange(501) + 0.1})["threshold:x"]["x"].to_numpy()
    np.testing.assert_array_equal(sampled, again)  # seeded: the same sample every time


def test_every_edge_case_has_the_input_columns_and_a_fresh_index() -> None:
    sig = Signature(
        (
            ColumnSpec("x", "FP64", nullable=True),
            ColumnSpec("s", "BYTES", nullable=True, categories=("a",)),
            ColumnSpec("b", "BOOL", nullable=False),
        )
    )
    base = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0], "s": ["a", "a", "a"], "b": [True, False, True]}, index=pd.Index([10, 20, 30])
    )
    cases = edge_cases(base, sig, {"x": np.array([1.5])})
    # A bool column is neither text nor a number: no unseen/empty/extreme case for it.
    assert set(cases) == {"null:x", "null:s", "null:all", "unseen:s", "empty:s", "extreme:x", "threshold:x"}
    for name, frame in cases.items():
        assert list(frame.columns) == ["x", "s", "b"], name
        assert frame.index.tolist() == list(range(len(frame))), name


def test_null_column_of_an_object_column_of_numbers_is_float_nan() -> None:
    out = null_column(pd.Series([1, None, 2.5], dtype=object), ColumnSpec("x", "FP64", nullable=True))
    assert out.dtype == np.float64 and out.isna().all()


def test_integer_threshold_at_two_to_the_53_stays_below_it() -> None:
    sig = Signature((ColumnSpec("n", "INT64", nullable=False),))
    base = pd.DataFrame({"n": np.arange(4)})
    values = edge_cases(base, sig, {"n": np.array([2.0**53])})["threshold:n"]["n"].tolist()
    assert max(values) == 2**53 - 1 and 2**53 not in values


def test_failure_message_counts_the_columns_it_does_not_show() -> None:
    cols = {f"c{i}": np.arange(4, dtype=np.float64) for i in range(10)}  # 10 columns, 8 shown
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], **cols})

    def candidate(f: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"label": _reference(f)["label"], "probability": _reference(f)["probability"] + 1.0}

    report, _ = run_parity_check(
        _reference, candidate, {"rows": frame}, tolerance=TOL, precision="p", runtime="r", raise_on_failure=False
    )
    assert "{'x': " in (report.failure or "") and "(+3 other columns)" in (report.failure or "")
    report, _ = run_parity_check(
        _reference, candidate, {"threshold:x": frame}, tolerance=TOL, precision="p", runtime="r", raise_on_failure=False
    )
    assert "(+10 other columns)" in (report.failure or "")  # a threshold case shows its own column only
    two, _ = run_parity_check(
        _reference, _shifted(2 * TOL), _cases(), tolerance=TOL, precision="p", runtime="r", raise_on_failure=False
    )
    assert "other columns" not in (two.failure or "")  # every column shown: nothing to count


def test_no_nullable_column_means_no_null_cases() -> None:
    sig = Signature((ColumnSpec("x", "FP64", nullable=False),))
    assert set(edge_cases(pd.DataFrame({"x": [1.0, 2.0]}), sig, {})) == {"extreme:x"}


def test_fractional_thresholds_survive_on_an_integer_typed_sample_of_a_float_input() -> None:
    # The sample rows hold ints, but the input is FP64: a threshold at 2.5 must be tried as 2.5, not 2.
    sig = Signature((ColumnSpec("x", "FP64", nullable=True),))
    near = edge_cases(pd.DataFrame({"x": np.arange(4)}), sig, {"x": np.array([2.5])})["threshold:x"]["x"]
    assert 2.5 in near.tolist() and np.nextafter(2.5, -np.inf) in near.tolist()
