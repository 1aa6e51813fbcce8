"""``skew_report``: profile serving data under the reference binning, compare, replay and join."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from parity.artifact import Artifact
from parity.errors import ProfileError
from parity.profile import Profile
from parity.registry import Registry
from parity.skew._compare import feature_report, window_entry
from parity.skew._data import (
    BY_SECONDS,
    Expected,
    SchemaProblem,
    Source,
    auto_processes,
    check_schema,
    open_source,
    parse_time,
    profile_source,
)
from parity.skew._errors import SkewDataError
from parity.skew._join import join_report
from parity.skew._reference import Reference
from parity.skew._replay import replay_report
from parity.skew._report import DataSummary, FeatureReport, SkewReport, WindowReport
from parity.skew._thresholds import SEVERITIES, Thresholds, worst

__all__ = ["load_reference", "skew_report"]

ReferenceLike = Artifact | Reference | Profile | str | os.PathLike[str]
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_ROLE = {"input": 0, "output": 1, "extra": 2}


def load_reference(reference: ReferenceLike, *, registry: Registry | None = None, trusted: bool = False) -> Reference:
    """Return the reference of an artifact, a registry ref or directory, a Profile, or a profile JSON file."""
    if isinstance(reference, Reference):
        return reference
    if isinstance(reference, Artifact):
        return Reference.from_artifact(reference)
    if isinstance(reference, Profile):
        return Reference(reference)
    path = Path(reference)
    if path.suffix == ".json" and path.is_file():
        return Reference.from_file(path)
    return Reference.from_artifact((registry or Registry()).load(reference, trusted=trusted))


def _thresholds(thresholds: Thresholds | str | os.PathLike[str] | None, min_rows: int | None) -> Thresholds:
    if isinstance(thresholds, Thresholds):
        th = thresholds
    else:
        th = Thresholds.load(thresholds) if thresholds else Thresholds()
    return th.with_min_rows(min_rows) if min_rows is not None else th


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def skew_report(
    reference: ReferenceLike,
    data: str | os.PathLike[str] | Profile,
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    by: Literal["day", "hour"] | None = None,
    thresholds: Thresholds | str | os.PathLike[str] | None = None,
    min_rows: int | None = None,
    replay: bool = False,
    join: str | None = None,
    offline: str | os.PathLike[str] | None = None,
    processes: int | None = None,
    registry: Registry | None = None,
    trusted: bool = False,
    model_version: int | None = None,
    batch_size: int = 65_536,
    backend: Literal["pyarrow", "dask", "spark"] = "pyarrow",
    progress: Callable[[int], None] | None = None,
) -> SkewReport:
    """Compare serving data at ``data`` with the training reference; see the package docs for every metric."""
    start = time.perf_counter()
    ref = load_reference(reference, registry=registry, trusted=trusted)
    th = _thresholds(thresholds, min_rows)
    lo, hi = parse_time(since, "`since`"), parse_time(until, "`until`")
    if lo is not None and hi is not None and lo >= hi:
        raise SkewDataError(f"`since` ({_iso(lo)}) must be before `until` ({_iso(hi)})")
    if by is not None and by not in BY_SECONDS:
        raise SkewDataError(f"`by` must be one of {sorted(BY_SECONDS)}, got {by!r}")
    if (join is None) != (offline is None):
        raise SkewDataError("`join` (a key column) and `offline` (a path) go together: give both or neither")
    if replay and ref.artifact is None:
        raise SkewDataError("`replay=True` needs a model artifact as the reference, not a bare profile")
    if backend not in ("pyarrow", "dask", "spark"):
        raise SkewDataError(f"backend must be 'pyarrow', 'dask' or 'spark', got {backend!r}")
    if isinstance(data, Profile):
        if replay or join or by or lo or hi:
            raise SkewDataError(
                "a precomputed serving Profile as `data` supports no `replay`, `join`, `by`, `since` or `until`"
            )
        src, total, procs = _profile_source(data), data, 1
        windows: dict[datetime, Profile] = {}
        expected = [c for c in ref.expected(lake=False) if c.role == "input" or c.data in data.columns]
        usable, problems = _profile_columns(expected, data)
    else:
        text = [c.data for c in ref.expected(lake=False) if c.expect == "string"]
        src = open_source(data, model=ref.name, since=lo, until=hi, model_version=model_version, text_columns=text)
        expected = ref.expected(lake=src.kind == "lake")
        if ref.outputs is not None and src.kind != "lake" and not any(c.startswith("output.") for c in src.columns):
            expected = [c for c in expected if c.role == "input"]
        ignore = [*th.ignore_columns, *([join] if join else [])]
        usable, problems = check_schema(src, expected, ignore=ignore, outputs_optional=src.kind != "lake")
        procs = auto_processes(processes, src)
        total, windows = profile_source(
            src, usable, since=lo, until=hi, by=by, processes=procs, batch_size=batch_size, backend=backend
        )
    if progress is not None:
        progress(total.rows)
    features = _features(ref, expected, usable, problems, total, th)
    report = SkewReport(
        model=ref.name,
        version=ref.version,
        reference_rows=ref.inputs.rows,
        data=DataSummary(
            str(src.path),
            src.kind,
            len(src.files),
            total.rows,
            _iso(lo),
            _iso(hi),
            by,
            sorted(set(src.versions.values())),
            procs,
        ),
        created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        features=features,
        thresholds=th.to_dict(),
        notes=list(src.notes),
    )
    if ref.outputs is not None and not any(c.role == "output" for c in expected):
        report.notes.append("the data has no output.<name> columns: predictions were not compared")
    if total.rows == 0:
        report.notes.append("no data: no serving row in the window; nothing was compared")
    if by is not None:
        step = timedelta(seconds=BY_SECONDS[by])
        by_data = {c.data: c for c in usable}
        for t, prof in windows.items():
            entries = {
                by_data[d].feature: window_entry(ref.column(by_data[d]), col, th.rules(by_data[d].feature))
                for d, col in prof.columns.items()
            }
            sev = worst(e.severity for e in entries.values())
            report.windows.append(WindowReport(_iso(t) or "", _iso(t + step) or "", prof.rows, sev, entries))
    if replay:
        assert ref.artifact is not None
        report.replay = replay_report(
            src, ref.artifact, th.rules("replay").levels.get("replay_mismatch"), registry=registry,
            trusted=trusted, since=lo, until=hi, batch_size=batch_size,
        )  # fmt: skip
    if join is not None and offline is not None:
        inputs = [c for c in expected if c.role == "input"]
        report.join = join_report(
            src, inputs, join, offline, {c.feature: th.rules(c.feature) for c in inputs},
            since=lo, until=hi, batch_size=batch_size,
        )  # fmt: skip
    report.seconds = time.perf_counter() - start
    return report


def _profile_source(data: Profile) -> Source:
    """Describe a precomputed serving profile as a source."""
    return Source(Path("<profile>"), "profile", [], {}, data.rows)


def _profile_columns(expected: list[Expected], data: Profile) -> tuple[list[Expected], list[SchemaProblem]]:
    """Check a precomputed profile's columns against the reference binning."""
    usable, problems = [], []
    for c in expected:
        if c.data not in data.columns:
            problems.append(SchemaProblem("missing_column", c.feature, f"column {c.data!r} is not in the profile", 1))
        elif data.spec.columns[c.data] != c.spec:
            raise ProfileError(
                f"column {c.data!r} of the serving profile was binned with another spec; profile with "
                "Reference.spec() of this reference"
            )
        else:
            usable.append(c)
    return usable, problems


def _features(
    ref: Reference,
    expected: list[Expected],
    usable: list[Expected],
    problems: list[SchemaProblem],
    total: Profile,
    th: Thresholds,
) -> list[FeatureReport]:
    """Build and sort the per-feature reports, unexpected columns included."""
    ok = {c.data for c in usable}
    out: list[FeatureReport] = []
    for col in expected:
        mine = [p for p in problems if p.column == col.feature and p.kind != "new_column"]
        cur = total.columns.get(col.data) if col.data in ok else None
        try:
            ref_col = ref.column(col)
        except KeyError as e:  # a malformed reference: name the column rather than fail obscurely
            raise ProfileError(f"the reference profile has no column {col.feature!r}") from e
        out.append(feature_report(col, ref_col, cur, th.rules(col.feature), mine, th.schema))
    for p in problems:
        if p.kind == "new_column":
            rules = th.rules(p.column)
            sev = "ok" if rules.ignore else th.schema["new_column"]
            out.append(FeatureReport(p.column, "extra", None, sev, rules.ignore, schema=[p]))
    out.sort(key=lambda f: (-_RANK[f.severity], -f.score, _ROLE[f.role], f.name))
    return out
