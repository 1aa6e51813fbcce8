"""Warn/alert thresholds per metric, the sample-size minimum, and their per-feature TOML overrides.

A metric is ``warn`` when its noise-corrected value is strictly above ``warn`` and ``alert`` when strictly
above ``alert``. TOML file (every key optional)::

    min_rows = 100                                # values a column needs before it may warn or alert

    [metrics]                                     # defaults for every feature
    psi = { warn = 0.1, alert = 0.25 }

    [schema]                                      # severity of schema problems: "ok", "warn" or "alert"
    new_column = "warn"
    ignore_columns = ["customer_id"]              # extra columns that are expected (ids, targets)

    [features.age]                                # one feature (outputs are named "output.<name>")
    psi = { warn = 0.2, alert = 0.4 }
    null_rate_change = false                      # do not judge this metric for this feature
    min_rows = 500
    ignore = true                                 # leave the feature out of the severity entirely
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeAlias

from parity.skew._errors import ThresholdsError

__all__ = [
    "DEFAULT_LEVELS",
    "DEFAULT_MIN_ROWS",
    "DEFAULT_SCHEMA",
    "METRICS",
    "SEVERITIES",
    "FeatureRules",
    "Level",
    "Severity",
    "Thresholds",
    "worst",
]

Severity: TypeAlias = Literal["ok", "warn", "alert"]
SEVERITIES: tuple[Severity, ...] = ("ok", "warn", "alert")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}

METRICS = (
    "psi",
    "js_distance",
    "linf",
    "unseen_share",
    "out_of_range_share",
    "null_rate_change",
    "replay_mismatch",
    "join_mismatch",
)
SCHEMA_PROBLEMS = ("missing_column", "new_column", "type_change")
DEFAULT_MIN_ROWS = 100


def worst(severities: Any) -> Severity:
    """Return the most severe of an iterable of severities ("ok" when empty)."""
    out: Severity = "ok"
    for s in severities:
        if _RANK[s] > _RANK[out]:
            out = s
    return out


@dataclass(frozen=True)
class Level:
    """The warn and alert thresholds of one metric (None: never reaches that severity)."""

    warn: float | None
    alert: float | None

    def judge(self, value: float) -> Severity:
        """Return the severity of a (noise-corrected) metric value."""
        if self.alert is not None and value > self.alert:
            return "alert"
        return "warn" if self.warn is not None and value > self.warn else "ok"

    def to_dict(self) -> dict[str, float | None]:
        """Return the JSON form."""
        return {"warn": self.warn, "alert": self.alert}


# Reasoning behind each default (also in the package docs):
DEFAULT_LEVELS: dict[str, Level] = {
    # Industry convention (credit scoring): < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift.
    "psi": Level(0.1, 0.25),
    # 0.1 is Evidently's default for JS distance; for small shifts PSI ~ 8 ln2 * JSD_bits = 5.5 * distance^2,
    # so distance 0.2 ~ PSI 0.22, close to the PSI alert level.
    "js_distance": Level(0.1, 0.2),
    # A category's share moving by 10 (20) percentage points. TFDV's example 0.01 suits billions of rows only.
    "linf": Level(0.1, 0.2),
    # Values the model never saw: 1% of rows is worth a look, 5% changes what the model sees materially.
    "unseen_share": Level(0.01, 0.05),
    # Same reasoning for values outside the training range: the model extrapolates on those rows.
    "out_of_range_share": Level(0.01, 0.05),
    # Absolute change of the null fraction: 5 points is Evidently's null-drift rule, 10 points an alert.
    "null_rate_change": Level(0.05, 0.1),
    # Replaying logged inputs must reproduce logged outputs: any mismatch is a bug, 1% an alert.
    "replay_mismatch": Level(0.0, 0.01),
    # An offline copy of the same entities must hold the same values: any mismatch warns, 1% alerts.
    "join_mismatch": Level(0.0, 0.01),
}
DEFAULT_SCHEMA: dict[str, Severity] = {"missing_column": "alert", "new_column": "alert", "type_change": "alert"}


@dataclass(frozen=True)
class FeatureRules:
    """Effective rules of one feature: metric levels (None: not judged), min_rows and ignore."""

    levels: dict[str, Level | None]
    min_rows: int
    ignore: bool = False


@dataclass(frozen=True)
class Thresholds:
    """Default levels per metric, schema severities, min_rows, and per-feature overrides."""

    levels: dict[str, Level] = field(default_factory=lambda: dict(DEFAULT_LEVELS))
    min_rows: int = DEFAULT_MIN_ROWS
    schema: dict[str, Severity] = field(default_factory=lambda: dict(DEFAULT_SCHEMA))
    ignore_columns: tuple[str, ...] = ()
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str | None = None

    def rules(self, feature: str) -> FeatureRules:
        """Return the rules of ``feature`` after its overrides."""
        over = self.features.get(feature, {})
        levels: dict[str, Level | None] = dict(self.levels)
        for metric in METRICS:
            if metric in over:
                levels[metric] = over[metric]
        return FeatureRules(levels, int(over.get("min_rows", self.min_rows)), bool(over.get("ignore", False)))

    def with_min_rows(self, min_rows: int) -> Thresholds:
        """Return a copy with another default ``min_rows``."""
        return replace(self, min_rows=_count(min_rows, "min_rows"))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form recorded in reports."""
        feats = {
            name: {k: (v.to_dict() if isinstance(v, Level) else v) for k, v in over.items()}
            for name, over in self.features.items()
        }
        return {
            "source": self.source,
            "min_rows": self.min_rows,
            "metrics": {m: lv.to_dict() for m, lv in self.levels.items()},
            "schema": dict(self.schema),
            "ignore_columns": list(self.ignore_columns),
            "features": feats,
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Thresholds:
        """Read a TOML thresholds file (see the module docstring)."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise ThresholdsError(f"cannot read thresholds file {p}: {e}") from e
        except tomllib.TOMLDecodeError as e:
            raise ThresholdsError(f"thresholds file {p} is not valid TOML: {e}") from e
        return cls.from_dict(data, source=str(p))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> Thresholds:
        """Build thresholds from the parsed TOML form, naming any unknown key or bad value."""
        where = source or "thresholds"
        _known(data, ("min_rows", "metrics", "schema", "features"), where)
        levels = dict(DEFAULT_LEVELS)
        for metric, value in _table(data.get("metrics", {}), f"{where}: [metrics]").items():
            lv = _level(metric, value, f"{where}: [metrics]", levels)
            if lv is None:
                raise ThresholdsError(f"{where}: [metrics] {metric} = false is only allowed per feature")
            levels[metric] = lv
        schema = dict(DEFAULT_SCHEMA)
        ignore: tuple[str, ...] = ()
        for key, value in _table(data.get("schema", {}), f"{where}: [schema]").items():
            if key == "ignore_columns":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ThresholdsError(f"{where}: [schema] ignore_columns must be a list of column names")
                ignore = tuple(value)
            elif key in SCHEMA_PROBLEMS:
                if value not in SEVERITIES:
                    raise ThresholdsError(f"{where}: [schema] {key} must be one of {list(SEVERITIES)}, got {value!r}")
                schema[key] = value
            else:
                raise ThresholdsError(
                    f"{where}: unknown key [schema] {key!r}; known: {[*SCHEMA_PROBLEMS, 'ignore_columns']}"
                )
        features: dict[str, dict[str, Any]] = {}
        for name, over in _table(data.get("features", {}), f"{where}: [features]").items():
            at = f"{where}: [features.{name}]"
            _known(_table(over, at), (*METRICS, "min_rows", "ignore"), at)
            parsed: dict[str, Any] = {}
            for key, value in over.items():
                if key == "min_rows":
                    parsed[key] = _count(value, f"{at} min_rows")
                elif key == "ignore":
                    if not isinstance(value, bool):
                        raise ThresholdsError(f"{at} ignore must be true or false, got {value!r}")
                    parsed[key] = value
                else:
                    parsed[key] = _level(key, value, at, levels)
            features[str(name)] = parsed
        min_rows = _count(data.get("min_rows", DEFAULT_MIN_ROWS), f"{where}: min_rows")
        return cls(levels, min_rows, schema, ignore, features, source)


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ThresholdsError(f"{where} must be a table, got {type(value).__name__}")
    return value


def _known(data: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ThresholdsError(f"{where}: unknown key(s) {unknown}; known: {list(keys)}")


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ThresholdsError(f"{where} must be a positive integer, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ThresholdsError(f"{where} must be a finite number >= 0, got {value!r}")
    return float(value)


def _level(metric: str, value: Any, where: str, base: Mapping[str, Level]) -> Level | None:
    """Parse ``{warn = x, alert = y}`` (missing keys keep ``base``) or ``false`` (metric not judged)."""
    if metric not in METRICS:
        raise ThresholdsError(f"{where}: unknown metric {metric!r}; known: {list(METRICS)}")
    if value is False:
        return None
    table = _table(value, f"{where} {metric}")
    _known(table, ("warn", "alert"), f"{where} {metric}")
    old = base[metric]
    warn = _number(table["warn"], f"{where} {metric}.warn") if "warn" in table else old.warn
    alert = _number(table["alert"], f"{where} {metric}.alert") if "alert" in table else old.alert
    if warn is not None and alert is not None and warn > alert:
        raise ThresholdsError(f"{where} {metric}: warn ({warn:g}) must not exceed alert ({alert:g})")
    return Level(warn, alert)
