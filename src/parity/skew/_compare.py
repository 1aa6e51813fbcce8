"""Compare a reference column profile with a serving one: metrics, noise correction, severity."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np

from parity.profile import BooleanProfile, CategoricalProfile, ColumnProfile, NumericProfile
from parity.skew import _metrics as m
from parity.skew._data import Expected, SchemaProblem
from parity.skew._report import ColumnStats, FeatureReport, FeatureWindow, Histogram, Metric
from parity.skew._thresholds import FeatureRules, Severity, worst

__all__ = ["bins_of", "column_stats", "compare_column", "feature_report", "window_entry"]

_DISTRIBUTION = ("psi", "js_distance", "linf", "unseen_share", "out_of_range_share")


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def quote_category(value: str) -> str:
    """A category as shown to people: quoted, so the empty string and surrounding spaces are visible."""
    return json.dumps(value, ensure_ascii=False)


def bins_of(p: ColumnProfile) -> tuple[np.ndarray, list[str]]:
    """Return the comparison bins of a column (non-null counts) and their labels."""
    if isinstance(p, NumericProfile):
        e = p.spec.edges
        inner = [f"[{_fmt(a)}, {_fmt(b)})" for a, b in itertools.pairwise(e[:-1])]
        inner.append(f"[{_fmt(e[-2])}, {_fmt(e[-1])}]")  # the last inner bin is closed (training max)
        return p.bins.astype(np.int64), [f"< {_fmt(e[0])}", *inner, f"> {_fmt(e[-1])}"]
    if isinstance(p, CategoricalProfile):
        return np.append(p.counts, p.other).astype(np.int64), [*map(quote_category, p.spec.categories), "(other)"]
    false = p.count - p.nulls - p.true
    return np.array([false, p.true], np.int64), ["false", "true"]


def column_stats(p: ColumnProfile) -> ColumnStats:
    """Summarise one side of a column."""
    s = ColumnStats(rows=p.count, nulls=p.nulls)
    if isinstance(p, NumericProfile):
        s.mean, s.std, s.min, s.max = (p.mean if p.finite else None), p.std, p.min, p.max
    elif isinstance(p, CategoricalProfile):
        s.unseen, s.unseen_examples = p.unseen, list(p.unseen_examples)
    elif isinstance(p, BooleanProfile):
        valid = p.count - p.nulls
        s.true_rate = p.true / valid if valid else None
    return s


def _judge(metric: Metric, rules: FeatureRules, enough: bool, n: int) -> Metric:
    """Set the metric's levels, status and severity from the feature's rules."""
    level = rules.levels.get(metric.name)
    if level is not None:
        metric.warn, metric.alert = level.warn, level.alert
    if metric.status == "unavailable":
        return metric
    if level is None:
        metric.status = "not_judged"
    elif not enough:
        metric.status = "insufficient"
        metric.note = (metric.note + "; " if metric.note else "") + f"{n} values < min_rows {rules.min_rows}"
    elif metric.adjusted is not None:
        metric.severity = level.judge(metric.adjusted)
    return metric


def compare_column(ref: ColumnProfile, cur: ColumnProfile, rules: FeatureRules) -> tuple[list[Metric], Histogram]:
    """Return the metrics of one column (see the package docs for formulas) and its histogram."""
    r, labels = bins_of(ref)
    c, _ = bins_of(cur)
    n_ref, n_cur = int(r.sum()), int(c.sum())
    enough = n_cur >= rules.min_rows and n_ref > 0
    occupied = m.occupied_bins(r, c)
    out: list[Metric] = []
    have = n_ref > 0 and n_cur > 0

    def dist(name: str, value: float | None, adjusted: float | None, noise: float | None, note: str = "") -> None:
        if not have:
            out.append(Metric(name, None, None, None, None, None, status="unavailable", note="no values to compare"))
        else:
            out.append(Metric(name, value, adjusted, noise, None, None, note=note))

    psi = m.psi(r, c) if have else 0.0
    psi_noise = m.psi_noise(occupied, n_ref, n_cur)
    dist("psi", psi, max(psi - psi_noise, 0.0), psi_noise)
    if isinstance(ref, NumericProfile):
        jsd = m.js_divergence(r, c) if have else 0.0
        js_noise = m.js_noise(occupied, n_ref, n_cur)
        dist("js_distance", math.sqrt(jsd), math.sqrt(max(jsd - js_noise, 0.0)), math.sqrt(js_noise))
        if have:
            share_r = float(r[0] + r[-1]) / n_ref
            share_c = float(c[0] + c[-1]) / n_cur
            # A fresh draw falls beyond the min/max of n training values with probability 2 / (n + 1).
            base = min(share_r + 2.0 / (n_ref + 1), 1.0)
            guard = m.Z_GUARD * math.sqrt(base * (1.0 - base) / n_cur)
            dist("out_of_range_share", share_c, max(share_c - base - guard, 0.0), base)
        else:
            dist("out_of_range_share", None, None, None)
    else:
        dist("linf", m.linf(r, c) if have else 0.0, m.linf_excess(r, c) if have else 0.0, None)
    if isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile):
        if ref.spec.rare is None:
            out.append(
                Metric(
                    "unseen_share", None, None, None, None, None, status="unavailable",
                    note="the training data had more than 1000 distinct values: only its top-K are known",
                )
            )  # fmt: skip
        elif have:
            share = cur.unseen / n_cur
            # Good-Turing: the unseen mass of a fresh sample is about (singletons / n); the rare training
            # values bound the singletons from above.
            base = min(len(ref.spec.rare), ref.other) / n_ref
            guard = m.Z_GUARD * math.sqrt(base * (1.0 - base) / n_cur)
            examples = ", ".join(map(quote_category, cur.unseen_examples[:5]))
            dist("unseen_share", share, max(share - base - guard, 0.0), base, f"e.g. {examples}" if examples else "")
        else:
            dist("unseen_share", None, None, None)
    rate_r = ref.nulls / ref.count if ref.count else 0.0
    rate_c = cur.nulls / cur.count if cur.count else 0.0
    null_metric = Metric(
        "null_rate_change",
        abs(rate_c - rate_r),
        m.rate_excess(rate_r, ref.count, rate_c, cur.count),
        None,
        None,
        None,
        note=f"{rate_r:.2%} -> {rate_c:.2%}",
    )
    if not cur.count:
        null_metric = Metric("null_rate_change", None, None, None, None, None, status="unavailable")
    for metric in out:
        _judge(metric, rules, enough, n_cur)
    out.append(_judge(null_metric, rules, cur.count >= rules.min_rows, cur.count))
    total_r, total_c = max(n_ref, 1), max(n_cur, 1)
    hist = Histogram(labels, (r / total_r).round(6).tolist(), (c / total_c).round(6).tolist())
    return out, hist


def feature_report(
    col: Expected,
    ref: ColumnProfile,
    cur: ColumnProfile | None,
    rules: FeatureRules,
    problems: list[SchemaProblem],
    schema_severity: dict[str, Severity],
) -> FeatureReport:
    """Build one feature's report; schema problems count at their configured severity."""
    fr = FeatureReport(col.feature, col.role, col.kind, ignored=rules.ignore, schema=problems)
    fr.reference = column_stats(ref)
    if cur is not None:
        fr.metrics, fr.histogram = compare_column(ref, cur, rules)
        fr.current = column_stats(cur)
    fr.severity = worst([*(x.severity for x in fr.metrics), *(schema_severity[p.kind] for p in problems)])
    if rules.ignore:
        fr.severity = "ok"
    return fr


def window_entry(ref: ColumnProfile, cur: ColumnProfile, rules: FeatureRules) -> FeatureWindow:
    """Return one feature's metrics in one window."""
    metrics, _ = compare_column(ref, cur, rules)
    sev: Severity = "ok" if rules.ignore else worst(x.severity for x in metrics)
    return FeatureWindow(sev, {x.name: x for x in metrics})
