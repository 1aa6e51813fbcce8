"""The parity check: the exported artifact must answer exactly what the Python model answers.

Cases: a sample of training rows (one large batch), every row again one at a time for a few
rows, and generated edge cases: each nullable column null and all of them at once, unseen
categories, empty strings, extreme numbers (0, +/-1e9), and raw values at and within a hair
(float32/float64 neighbours and 1e-9 relative) of every split threshold of tree models, mapped
back through the preprocessing to raw input space. Numeric outputs must agree within
``tolerance`` (relative above 1 in magnitude); labels must be equal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from parity.codec import encode_frame
from parity.errors import ParityMismatchError
from parity.schema import ColumnSpec, Signature

__all__ = ["ParityReport", "compare_outputs", "edge_cases", "null_case", "null_column", "run_parity_check"]

UNSEEN = "__parity_unseen__"
MAX_THRESHOLD_VALUES = 4000  # per column: keeps the check fast on large forests
Predict = Callable[[pd.DataFrame], dict[str, np.ndarray]]


@dataclass
class OutputDiff:
    """Worst disagreement on one output."""

    max_abs_diff: float = 0.0
    max_rel_diff: float = 0.0
    mismatches: int = 0
    worst_case: str | None = None
    worst_row: int | None = None


@dataclass
class ParityReport:
    """Outcome of a parity check, stored in the manifest."""

    passed: bool
    tolerance: float
    rows_checked: int
    cases: dict[str, int]
    outputs: dict[str, OutputDiff]
    precision: str
    runtime: str
    skipped: dict[str, str] = field(default_factory=dict)
    failure: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest form."""
        return {
            "passed": self.passed,
            "tolerance": self.tolerance,
            "rows_checked": self.rows_checked,
            "cases": dict(self.cases),
            "outputs": {k: vars(v).copy() for k, v in self.outputs.items()},
            "precision": self.precision,
            "runtime": self.runtime,
            "skipped": dict(self.skipped),
            "failure": self.failure,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParityReport:
        """Read the manifest form."""
        return cls(
            passed=bool(d["passed"]),
            tolerance=float(d["tolerance"]),
            rows_checked=int(d["rows_checked"]),
            cases=dict(d["cases"]),
            outputs={k: OutputDiff(**v) for k, v in d["outputs"].items()},
            precision=d["precision"],
            runtime=d["runtime"],
            skipped=dict(d.get("skipped", {})),
            failure=d.get("failure"),
        )


def _near(values: np.ndarray) -> np.ndarray:
    """Each value, its float64 and float32 neighbours, and +/-1e-9 relative."""
    v = values[np.isfinite(values)]
    f32 = v.astype(np.float32)
    parts = [
        v,
        np.nextafter(v, np.inf),
        np.nextafter(v, -np.inf),
        v * (1 + 1e-9),
        v * (1 - 1e-9),
        f32.astype(np.float64),
        np.nextafter(f32, np.float32(np.inf)).astype(np.float64),
        np.nextafter(f32, np.float32(-np.inf)).astype(np.float64),
    ]
    return np.unique(np.concatenate(parts))


def edge_cases(
    base: pd.DataFrame, signature: Signature, raw_thresholds: Mapping[str, np.ndarray]
) -> dict[str, pd.DataFrame]:
    """Generate the named edge-case frames from sample rows ``base``."""
    n = min(len(base), 16)
    cases: dict[str, pd.DataFrame] = {}
    nullable = [c for c in signature.inputs if c.nullable]
    for spec in nullable:
        cases[f"null:{spec.name}"] = null_case(base, spec, n)
    if len(nullable) > 1:
        frame = base.iloc[:n].reset_index(drop=True).copy()
        for spec in nullable:
            frame[spec.name] = null_column(frame[spec.name], spec)
        cases["null:all"] = frame
    for spec in signature.inputs:
        if spec.datatype == "BYTES":
            cases[f"unseen:{spec.name}"] = _set(base, n, spec.name, UNSEEN)
            cases[f"empty:{spec.name}"] = _set(base, n, spec.name, "")
        elif spec.datatype in ("FP64", "FP32", "INT64", "INT32"):
            extremes = [0, 1_000_000_000, -1_000_000_000]
            cases[f"extreme:{spec.name}"] = _set_many(base, spec.name, extremes)
    for column, values in raw_thresholds.items():
        spec = signature.input(column)
        near = _near(np.asarray(values, dtype=np.float64))
        if spec.datatype in ("INT64", "INT32"):
            near = np.unique(np.concatenate([np.floor(near), np.ceil(near)]))
            near = near[np.abs(near) < 2**53]
        if len(near) > MAX_THRESHOLD_VALUES:
            near = np.random.default_rng(0).choice(near, MAX_THRESHOLD_VALUES, replace=False)
        cases[f"threshold:{column}"] = _set_many(base, column, list(near))
    return cases


def null_column(col: pd.Series, spec: ColumnSpec) -> pd.Series:
    """``col`` with every value missing, spelled as the training data spelled it (see ColumnSpec.missing)."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype) or spec.datatype == "BYTES":
        marker = spec.missing_value
        values = np.empty(len(col), dtype=object)
        values[:] = [marker] * len(col)
        return pd.Series(values, dtype=dtype, index=col.index)
    if pd.api.types.is_extension_array_dtype(dtype):
        return pd.Series(pd.NA, index=col.index, dtype=dtype)  # Int64, Float64, boolean: pd.NA
    if pd.api.types.is_bool_dtype(dtype):
        return pd.Series(np.full(len(col), np.nan), index=col.index)  # a bool column with nulls is 0/1/NaN
    return pd.Series(np.full(len(col), np.nan), index=col.index, dtype=dtype if dtype.kind == "f" else "float64")


def null_case(base: pd.DataFrame, spec: ColumnSpec, n: int = 16) -> pd.DataFrame:
    """The first ``n`` rows of ``base`` with column ``spec.name`` missing."""
    frame = base.iloc[: min(n, len(base))].reset_index(drop=True).copy()
    frame[spec.name] = null_column(frame[spec.name], spec)
    return frame


def _set(base: pd.DataFrame, n: int, column: str, value: Any) -> pd.DataFrame:
    frame = base.iloc[:n].reset_index(drop=True).copy()
    dtype = frame[column].dtype
    if isinstance(dtype, pd.CategoricalDtype) and value not in dtype.categories:
        # A value outside the fitted categories must stay that value, not become NaN.
        dtype = pd.CategoricalDtype([*dtype.categories, value], ordered=dtype.ordered)
    frame[column] = pd.Series([value] * n, dtype=dtype)
    return frame


def _set_many(base: pd.DataFrame, column: str, values: list[Any]) -> pd.DataFrame:
    frame = base.iloc[np.arange(len(values)) % len(base)].reset_index(drop=True).copy()
    dtype = frame[column].dtype
    if pd.api.types.is_extension_array_dtype(dtype):
        arr: Any = pd.array(np.asarray(values, dtype=np.float64))
        try:
            frame[column] = pd.Series(arr, dtype=dtype)
        except (TypeError, ValueError):  # e.g. 0.5 into Int64: the spec is FP64 then, keep floats
            frame[column] = pd.Series(np.asarray(values, dtype=np.float64))
        return frame
    arr = np.asarray(values)
    if dtype.kind in "iu" and arr.dtype.kind == "f" and not np.array_equal(np.floor(arr), arr):
        frame[column] = pd.Series(arr)  # a nullable integer column travels as FP64: keep the fractions
        return frame
    frame[column] = pd.Series(arr.astype(dtype) if dtype.kind in "iuf" else values, dtype=dtype)
    return frame


def compare_outputs(
    expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray], tolerance: float
) -> dict[str, tuple[float, float, int, int | None]]:
    """Per output: (max abs diff, max relative diff, mismatching rows, worst row)."""
    result = {}
    for name, exp in expected.items():
        act = np.asarray(actual[name])
        exp = np.asarray(exp)
        if exp.dtype.kind in "f" or act.dtype.kind == "f":
            e = exp.astype(np.float64)
            a = act.astype(np.float64)
            with np.errstate(invalid="ignore"):  # inf - inf and inf / inf: handled just below
                same = (e == a) | (np.isnan(e) & np.isnan(a))
                diff = np.where(same, 0.0, np.abs(e - a))
                # A NaN or infinity on one side only is a mismatch, never a match (fmax ignores NaN).
                diff = np.where(np.isnan(diff), np.inf, diff)
                rel = np.where(np.isinf(diff), np.inf, diff / np.fmax(1.0, np.abs(e)))
            bad = rel > tolerance
            worst = int(np.argmax(rel)) if len(rel) else None
            result[name] = (float(diff.max(initial=0.0)), float(rel.max(initial=0.0)), int(bad.sum()), worst)
        else:
            bad = np.asarray(exp != act)
            worst = int(np.flatnonzero(bad)[0]) if bad.any() else None
            result[name] = (float(bad.any()), float(bad.any()), int(bad.sum()), worst)
    return result


def run_parity_check(
    reference: Predict,
    candidate: Predict,
    cases: Mapping[str, pd.DataFrame],
    *,
    tolerance: float,
    precision: str,
    runtime: str,
    raise_on_failure: bool = True,
) -> tuple[ParityReport, dict[str, dict[str, np.ndarray]]]:
    """Run both sides on every case; return the report and the reference outputs per case."""
    outputs: dict[str, OutputDiff] = {}
    counts: dict[str, int] = {}
    skipped: dict[str, str] = {}
    expected_by_case: dict[str, dict[str, np.ndarray]] = {}
    failure: str | None = None
    for case, frame in cases.items():
        try:
            expected = reference(frame)
        except Exception as exc:
            skipped[case] = f"the Python model raised {type(exc).__name__}: {str(exc)[:200]}"
            continue
        actual = candidate(frame)
        expected_by_case[case] = expected
        counts[case] = len(frame)
        for name, (abs_d, rel_d, bad, worst) in compare_outputs(expected, actual, tolerance).items():
            diff = outputs.setdefault(name, OutputDiff())
            diff.mismatches += bad
            if rel_d > diff.max_rel_diff or (diff.worst_case is None and bad):
                diff.max_rel_diff, diff.worst_case, diff.worst_row = rel_d, case, worst
            diff.max_abs_diff = max(diff.max_abs_diff, abs_d)
            if bad and failure is None:
                row = _row_summary(frame, worst or 0, case)
                failure = (
                    f"output {name!r} differs in case {case!r}: {bad} of {len(frame)} rows beyond tolerance "
                    f"{tolerance:g} (max diff {abs_d:.3g}); worst row {worst}: {row}; "
                    f"python={np.asarray(expected[name])[worst or 0]!r} "
                    f"exported={np.asarray(actual[name])[worst or 0]!r}"
                )
    report = ParityReport(
        passed=failure is None,
        tolerance=tolerance,
        rows_checked=sum(counts.values()),
        cases=counts,
        outputs=outputs,
        precision=precision,
        runtime=runtime,
        skipped=skipped,
        failure=failure,
    )
    if failure and raise_on_failure:
        raise ParityMismatchError(
            f"parity check failed: {failure}. Fix the model or export, or pass allow_mismatch=True to record it",
            report=report,
        )
    return report, expected_by_case


MAX_SHOWN_COLUMNS = 8


def _row_summary(frame: pd.DataFrame, row: int, case: str) -> str:
    """One row for a message: the column the case is about, else at most MAX_SHOWN_COLUMNS columns."""
    kind, _, column = case.partition(":")
    if kind in ("null", "unseen", "empty", "extreme", "threshold") and column in frame.columns:
        names = [column]
    else:
        names = [str(c) for c in frame.columns[:MAX_SHOWN_COLUMNS]]
    values = frame.iloc[row]
    text = "{" + ", ".join(f"{n!r}: {values[n]!r}" for n in names) + "}"
    hidden = len(frame.columns) - len(names)
    return text + (f" (+{hidden} other columns)" if hidden else "")


def predict_with(signature: Signature, run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]) -> Predict:
    """Wrap a runtime's column predict as a frame predict going through the codec."""

    def predict(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return run(encode_frame(signature, frame))

    return predict
