"""Typed skew report: features, windows, replay and join sections, JSON form and exit codes."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from parity._io import atomic_write_json
from parity.skew._data import SchemaProblem
from parity.skew._thresholds import SEVERITIES, Severity, worst

__all__ = [
    "REPORT_FORMAT",
    "SCHEMA_PATH",
    "ColumnStats",
    "DataSummary",
    "FeatureReport",
    "FeatureWindow",
    "Histogram",
    "JoinFeature",
    "JoinReport",
    "Metric",
    "MetricStatus",
    "ReplayExample",
    "ReplayReport",
    "SkewReport",
    "WindowReport",
    "validate_report",
]

REPORT_FORMAT = "parity.skew/1"

MetricStatus = Literal["judged", "insufficient", "not_judged", "unavailable"]
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def _num(v: float | None) -> float | None:
    """Return a JSON-safe float (NaN/inf -> None)."""
    return None if v is None or not math.isfinite(v) else float(v)


@dataclass
class Metric:
    """One metric of one feature: raw value, noise-corrected value (the one judged), levels and severity."""

    name: str
    value: float | None
    adjusted: float | None
    noise: float | None
    warn: float | None
    alert: float | None
    severity: Severity = "ok"
    status: MetricStatus = "judged"
    note: str = ""

    @property
    def score(self) -> float:
        """Adjusted value relative to the alert level, for ordering features within a severity."""
        if self.status != "judged" or self.adjusted is None or not self.alert:
            return 0.0
        return self.adjusted / self.alert

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "name": self.name,
            "value": _num(self.value),
            "adjusted": _num(self.adjusted),
            "noise": _num(self.noise),
            "warn": self.warn,
            "alert": self.alert,
            "severity": self.severity,
            "status": self.status,
            "note": self.note,
        }


@dataclass
class Histogram:
    """Shares of the non-null values per training bin (under/overflow included), both sides."""

    labels: list[str]
    reference: list[float]
    current: list[float]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"labels": self.labels, "reference": self.reference, "current": self.current}


@dataclass
class ColumnStats:
    """Summary of one side of a feature."""

    rows: int
    nulls: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    unseen: int | None = None
    unseen_examples: list[str] = field(default_factory=list)
    true_rate: float | None = None

    @property
    def null_rate(self) -> float | None:
        """Fraction of rows that are null."""
        return self.nulls / self.rows if self.rows else None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "rows": self.rows,
            "nulls": self.nulls,
            "null_rate": _num(self.null_rate),
            "mean": _num(self.mean),
            "std": _num(self.std),
            "min": _num(self.min),
            "max": _num(self.max),
            "unseen": self.unseen,
            "unseen_examples": list(self.unseen_examples),
            "true_rate": _num(self.true_rate),
        }


@dataclass
class FeatureWindow:
    """One feature in one time window."""

    severity: Severity
    metrics: dict[str, Metric]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (metric name -> value, adjusted, severity, status)."""
        return {
            "severity": self.severity,
            "metrics": {
                n: {"value": _num(m.value), "adjusted": _num(m.adjusted), "severity": m.severity, "status": m.status}
                for n, m in self.metrics.items()
            },
        }


@dataclass
class WindowReport:
    """Every feature's metrics over one ``--by`` window."""

    start: str
    end: str
    rows: int
    severity: Severity
    features: dict[str, FeatureWindow]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "start": self.start,
            "end": self.end,
            "rows": self.rows,
            "severity": self.severity,
            "features": {n: f.to_dict() for n, f in self.features.items()},
        }


@dataclass
class FeatureReport:
    """One input, output or unexpected column: metrics, schema problems and both sides' summaries."""

    name: str
    role: Literal["input", "output", "extra"]
    kind: Literal["numeric", "categorical", "boolean"] | None
    severity: Severity = "ok"
    ignored: bool = False
    metrics: list[Metric] = field(default_factory=list)
    schema: list[SchemaProblem] = field(default_factory=list)
    reference: ColumnStats | None = None
    current: ColumnStats | None = None
    histogram: Histogram | None = None

    @property
    def score(self) -> float:
        """Largest metric score, for ordering within a severity."""
        return max((m.score for m in self.metrics), default=0.0) + (10.0 if self.schema else 0.0)

    def metric(self, name: str) -> Metric | None:
        """Return the metric called ``name``, if computed."""
        return next((m for m in self.metrics if m.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "name": self.name,
            "role": self.role,
            "kind": self.kind,
            "severity": self.severity,
            "ignored": self.ignored,
            "metrics": [m.to_dict() for m in self.metrics],
            "schema": [p.to_dict() for p in self.schema],
            "reference": None if self.reference is None else self.reference.to_dict(),
            "current": None if self.current is None else self.current.to_dict(),
            "histogram": None if self.histogram is None else self.histogram.to_dict(),
        }


@dataclass
class ReplayExample:
    """One replayed row whose outputs differ from the logged ones (or that could not be replayed)."""

    request_id: str | None
    row: int | None
    model_version: int | None
    outputs: dict[str, dict[str, Any]]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "request_id": self.request_id,
            "row": self.row,
            "model_version": self.model_version,
            "outputs": self.outputs,
            "error": self.error,
        }


@dataclass
class ReplayReport:
    """Logged inputs re-run through the model of their version, compared with the logged outputs."""

    rows: int = 0
    replayed: int = 0
    mismatched: int = 0
    errors: int = 0
    severity: Severity = "ok"
    metric: Metric | None = None
    outputs: dict[str, int] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    examples: list[ReplayExample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        """Mismatched (or unreplayable) rows over replayed rows."""
        return (self.mismatched + self.errors) / self.rows if self.rows else None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "rows": self.rows,
            "replayed": self.replayed,
            "mismatched": self.mismatched,
            "errors": self.errors,
            "rate": _num(self.rate),
            "severity": self.severity,
            "metric": None if self.metric is None else self.metric.to_dict(),
            "outputs": dict(self.outputs),
            "versions": self.versions,
            "examples": [e.to_dict() for e in self.examples],
            "notes": list(self.notes),
        }


@dataclass
class JoinFeature:
    """Value agreement of one feature between serving rows and the offline copy."""

    name: str
    compared: int
    mismatched: int
    severity: Severity
    metric: Metric
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        """Mismatched over compared rows."""
        return self.mismatched / self.compared if self.compared else None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "name": self.name,
            "compared": self.compared,
            "mismatched": self.mismatched,
            "rate": _num(self.rate),
            "severity": self.severity,
            "metric": self.metric.to_dict(),
            "examples": self.examples,
        }


@dataclass
class JoinReport:
    """Serving rows joined to an offline copy by an id column, per-feature mismatch rates."""

    key: str
    offline: str
    serving_rows: int = 0
    offline_rows: int = 0
    matched: int = 0
    duplicate_offline_keys: int = 0
    severity: Severity = "ok"
    features: list[JoinFeature] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "key": self.key,
            "offline": self.offline,
            "serving_rows": self.serving_rows,
            "offline_rows": self.offline_rows,
            "matched": self.matched,
            "unmatched_serving_rows": self.serving_rows - self.matched,
            "duplicate_offline_keys": self.duplicate_offline_keys,
            "severity": self.severity,
            "features": [f.to_dict() for f in self.features],
            "notes": list(self.notes),
        }


@dataclass
class DataSummary:
    """What was read: path, kind, files, rows in the window, window bounds and lake versions."""

    path: str
    kind: str
    files: int
    rows: int
    since: str | None = None
    until: str | None = None
    by: str | None = None
    versions: list[int] = field(default_factory=list)
    processes: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return dict(vars(self))


@dataclass
class SkewReport:
    """Training-serving skew of one model on one window of serving data."""

    model: str | None
    version: int | None
    reference_rows: int
    data: DataSummary
    created: str
    features: list[FeatureReport]
    thresholds: dict[str, Any]
    windows: list[WindowReport] = field(default_factory=list)
    replay: ReplayReport | None = None
    join: JoinReport | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status(self) -> Literal["ok", "no_data"]:
        """ "no_data" when no serving row fell in the window."""
        return "no_data" if self.data.rows == 0 else "ok"

    @property
    def severity(self) -> Severity:
        """Worst severity over features, replay and join."""
        parts: list[Severity] = [f.severity for f in self.features if not f.ignored]
        parts += [s.severity for s in (self.replay, self.join) if s is not None]
        return worst(parts)

    def counts(self) -> dict[str, int]:
        """Number of features per severity."""
        out: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
        for f in self.features:
            if not f.ignored:
                out[f.severity] += 1
        return out

    def feature(self, name: str) -> FeatureReport:
        """Return the feature called ``name`` (outputs are ``output.<name>``)."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"no feature {name!r} in the report; features: {[f.name for f in self.features]}")

    def flagged(self, at_least: Severity = "warn") -> list[str]:
        """Names of the features at or above ``at_least``."""
        return [f.name for f in self.features if not f.ignored and _RANK[f.severity] >= _RANK[at_least]]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form described by ``report.schema.json``."""
        return {
            "format": REPORT_FORMAT,
            "model": self.model,
            "version": self.version,
            "created": self.created,
            "seconds": round(self.seconds, 3),
            "status": self.status,
            "severity": self.severity,
            "counts": self.counts(),
            "reference_rows": self.reference_rows,
            "data": self.data.to_dict(),
            "features": [f.to_dict() for f in self.features],
            "windows": [w.to_dict() for w in self.windows],
            "replay": None if self.replay is None else self.replay.to_dict(),
            "join": None if self.join is None else self.join.to_dict(),
            "thresholds": self.thresholds,
            "notes": list(self.notes),
        }

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON form atomically and return the path."""
        atomic_write_json(path, self.to_dict())
        return Path(path)

    def dumps(self) -> str:
        """Return the JSON form as indented text."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)


SCHEMA_PATH = Path(__file__).with_name("report.schema.json")


def validate_report(data: dict[str, Any]) -> None:
    """Check a report's JSON form against ``report.schema.json`` (raises jsonschema.ValidationError)."""
    import jsonschema

    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
