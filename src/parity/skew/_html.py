"""Self-contained HTML report: inline CSS and SVG charts drawn here, no script, no network.

Element ids and classes the page guarantees (tests and users may select them):
``table#summary``; per feature ``section.feature#feature-<i>`` holding ``svg.chart.histogram#hist-<i>``
(``rect.bar.ref`` / ``rect.bar.cur`` per training bin) and, with ``--by``, one
``svg.chart.timeseries#ts-<i>-<metric>`` per metric; ``section#replay`` and ``section#join`` when run.
Every string that comes from data or paths goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from parity._io import atomic_write_bytes
from parity.skew._report import FeatureReport, Histogram, SkewReport, WindowReport

__all__ = ["render_html", "write_html"]

COLORS = {"ok": "#2e7d32", "warn": "#e0a800", "alert": "#c62828"}
_REF, _CUR = "#9fb3c8", "#1e66d0"
_SERIES = ("psi", "js_distance", "linf", "unseen_share", "out_of_range_share", "null_rate_change")
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2430;max-width:1100px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px} h3{font-size:16px;margin:0 0 6px}
.meta{color:#5a6472;font-size:13px;margin-bottom:16px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #e3e7ee;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f7fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.sev{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-size:12px;font-weight:600}
.sev-ok{background:#2e7d32}.sev-warn{background:#e0a800;color:#1d2430}.sev-alert{background:#c62828}
.dim{color:#8a94a3} .feature{border:1px solid #e3e7ee;border-radius:8px;padding:12px 16px;margin:14px 0}
.charts{display:flex;flex-wrap:wrap;gap:12px} .legend{font-size:12px;color:#5a6472}
.swatch{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;vertical-align:middle}
code{background:#f5f7fa;padding:0 3px;border-radius:3px}
svg text{font-family:inherit;font-size:10px;fill:#5a6472}
"""


def _e(value: object) -> str:
    """Escape any value for HTML text or attributes."""
    return html.escape(str(value), quote=True)


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:.2%}" if pct else f"{v:.4g}"


def _badge(sev: str) -> str:
    return f'<span class="sev sev-{_e(sev)}">{_e(sev)}</span>'


def histogram_svg(chart_id: str, hist: Histogram, title: str) -> str:
    """Return an SVG bar chart: training and serving shares side by side per training bin."""
    w, h, ml, mr, mt, mb = 680, 240, 44, 10, 16, 78
    n = max(len(hist.labels), 1)
    top = max([*hist.reference, *hist.current, 1e-9])
    group = (w - ml - mr) / n
    bar = group * 0.42
    parts = [
        f'<svg class="chart histogram" id="{_e(chart_id)}" xmlns="http://www.w3.org/2000/svg" width="{w}" '
        f'height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
        f'<line class="axis" x1="{ml}" y1="{h - mb}" x2="{w - mr}" y2="{h - mb}" stroke="#9aa3af"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = h - mb - frac * (h - mt - mb)
        parts.append(f'<text x="{ml - 4}" y="{y + 3:.1f}" text-anchor="end">{top * frac:.0%}</text>')
        parts.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{w - mr}" y2="{y:.1f}" stroke="#eef1f5"/>')
    every = max(1, round(n / 30))
    for i, label in enumerate(hist.labels):
        x0 = ml + i * group + group * 0.08
        for side, share, color, dx in (("ref", hist.reference[i], _REF, 0.0), ("cur", hist.current[i], _CUR, bar)):
            bh = share / top * (h - mt - mb)
            tip = f"{label}: {'training' if side == 'ref' else 'serving'} {share:.2%}"
            parts.append(
                f'<rect class="bar {side}" x="{x0 + dx:.1f}" y="{h - mb - bh:.1f}" width="{bar:.1f}" '
                f'height="{bh:.1f}" fill="{color}"><title>{_e(tip)}</title></rect>'
            )
        if i % every == 0:
            short = label if len(label) <= 16 else label[:15] + "…"
            cx, cy = ml + (i + 0.5) * group, h - mb + 10
            parts.append(
                f'<text x="{cx:.1f}" y="{cy}" text-anchor="end" '
                f'transform="rotate(-40 {cx:.1f} {cy})">{_e(short)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def series_svg(
    chart_id: str, windows: list[WindowReport], feature: str, metric: str, warn: float | None, alert: float | None
) -> str:
    """Return an SVG line chart of one metric (noise-corrected, as judged) over the windows, with its levels."""
    w, h, ml, mr, mt, mb = 330, 150, 40, 10, 18, 30
    pts: list[tuple[int, float, str]] = []
    for i, win in enumerate(windows):
        entry = win.features.get(feature)
        m = entry.metrics.get(metric) if entry else None
        if m is not None and m.adjusted is not None:
            pts.append((i, m.adjusted, m.severity))
    levels = [v for v in (warn, alert) if v is not None]
    top = max([p[1] for p in pts] + levels + [1e-9]) * 1.1
    n = max(len(windows) - 1, 1)

    def x(i: int) -> float:
        return ml + i / n * (w - ml - mr)

    def y(v: float) -> float:
        return h - mb - v / top * (h - mt - mb)

    parts = [
        f'<svg class="chart timeseries" id="{_e(chart_id)}" xmlns="http://www.w3.org/2000/svg" width="{w}" '
        f'height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{_e(metric)} of {_e(feature)} per window">',
        f"<title>{_e(metric)} of {_e(feature)} per window (noise-corrected)</title>",
        f'<text x="{ml}" y="12" style="font-weight:600">{_e(metric)}</text>',
        f'<line class="axis" x1="{ml}" y1="{h - mb}" x2="{w - mr}" y2="{h - mb}" stroke="#9aa3af"/>',
        f'<text x="{ml - 4}" y="{y(0) + 3:.1f}" text-anchor="end">0</text>',
        f'<text x="{ml - 4}" y="{y(top / 1.1) + 3:.1f}" text-anchor="end">{top / 1.1:.3g}</text>',
    ]
    for name, v in (("warn", warn), ("alert", alert)):
        if v is not None:
            parts.append(
                f'<line class="level {name}" x1="{ml}" y1="{y(v):.1f}" x2="{w - mr}" y2="{y(v):.1f}" '
                f'stroke="{COLORS[name]}" stroke-dasharray="4 3"/>'
            )
    if len(pts) > 1:
        line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v, _ in pts)
        parts.append(f'<polyline class="series" points="{line}" fill="none" stroke="{_CUR}" stroke-width="1.5"/>')
    for i, v, sev in pts:
        tip = f"{windows[i].start}: {v:.4g} ({sev})"
        parts.append(
            f'<circle class="point {sev}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{COLORS[sev]}">'
            f"<title>{_e(tip)}</title></circle>"
        )
    if windows:
        parts.append(f'<text x="{ml}" y="{h - 8}">{_e(windows[0].start[:16])}</text>')
        parts.append(f'<text x="{w - mr}" y="{h - 8}" text-anchor="end">{_e(windows[-1].start[:16])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _summary(report: SkewReport) -> str:
    rows = []
    for i, f in enumerate(report.features):
        cells = []
        for name in _SERIES:
            m = f.metric(name)
            if m is None or m.value is None:
                cells.append('<td class="num dim">-</td>')
            else:
                style = f' style="color:{COLORS[m.severity]};font-weight:600"' if m.severity != "ok" else ""
                dim = "" if m.status == "judged" else " dim"
                cells.append(f'<td class="num{dim}"{style}>{_fmt(m.value)}</td>')
        problems = "; ".join(p.message for p in f.schema)
        rows.append(
            f'<tr class="sev-row-{_e(f.severity)}"><td><a href="#feature-{i}">{_e(f.name)}</a></td>'
            f"<td>{_e(f.role)}</td><td>{_badge(f.severity)}</td>{''.join(cells)}<td>{_e(problems)}</td></tr>"
        )
    head = "".join(f"<th>{_e(n)}</th>" for n in ("feature", "role", "severity", *_SERIES, "schema"))
    return f'<table id="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _feature(i: int, f: FeatureReport, report: SkewReport) -> str:
    out = [f'<section class="feature" id="feature-{i}"><h3>{_e(f.name)} {_badge(f.severity)}</h3>']
    kind = f" · {f.kind}" if f.kind else ""
    out.append(f'<div class="meta">{_e(f.role)}{_e(kind)}{" · ignored" if f.ignored else ""}</div>')
    for p in f.schema:
        out.append(f"<p>{_badge(report.thresholds['schema'].get(p.kind, 'alert'))} {_e(p.message)}</p>")
    if f.metrics:
        rows = "".join(
            f"<tr><td>{_e(m.name)}</td><td class='num'>{_fmt(m.value)}</td><td class='num'>{_fmt(m.adjusted)}</td>"
            f"<td class='num'>{_fmt(m.noise)}</td><td class='num'>{_fmt(m.warn)} / {_fmt(m.alert)}</td>"
            f"<td>{_badge(m.severity)}</td><td>{_e(m.status)}</td><td>{_e(m.note)}</td></tr>"
            for m in f.metrics
        )
        head = "".join(
            f"<th>{h}</th>"
            for h in ("metric", "value", "noise-corrected", "no-drift noise", "warn / alert", "", "status", "note")
        )
        out.append(f"<table class='metrics'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    ref, cur = f.reference, f.current
    if ref is not None:
        cur_null = _fmt(cur.null_rate, True) if cur else "-"
        out.append(
            f"<p class='nulls'>null rate: training {_fmt(ref.null_rate, True)} → serving {cur_null}"
            + (f" · mean {_fmt(ref.mean)} → {_fmt(cur.mean if cur else None)}" if ref.mean is not None else "")
            + "</p>"
        )
    if cur is not None and cur.unseen_examples:
        items = "".join(f"<li><code>{_e(json.dumps(v, ensure_ascii=False))}</code></li>" for v in cur.unseen_examples)
        out.append(f"<div class='unseen'>unseen categories ({cur.unseen:,} rows):<ul>{items}</ul></div>")
    charts = []
    if f.histogram is not None:
        legend = (
            f"<div class='legend'><span class='swatch' style='background:{_REF}'></span>training"
            f"<span class='swatch' style='background:{_CUR}'></span>serving (shares of non-null values per training "
            "bin, under/overflow included)</div>"
        )
        charts.append(histogram_svg(f"hist-{i}", f.histogram, f"{f.name}: training vs serving") + legend)
    out.append(f"<div class='charts'>{''.join(charts)}</div>")
    if report.windows and f.metrics:
        series = [
            series_svg(f"ts-{i}-{m.name}", report.windows, f.name, m.name, m.warn, m.alert)
            for m in f.metrics
            if m.name in _SERIES
        ]
        out.append(f"<div class='charts timeseries-group'>{''.join(series)}</div>")
    out.append("</section>")
    return "".join(out)


def _replay(report: SkewReport) -> str:
    r = report.replay
    if r is None:
        return ""
    rows = "".join(
        f"<tr><td>{_e(e.request_id)}</td><td>{_e(e.row)}</td><td>{_e(e.model_version)}</td><td>"
        + _e(
            e.error
            or "; ".join(f"{k}: {v['logged']!r} logged vs {v['replayed']!r} replayed" for k, v in e.outputs.items())
        )
        + "</td></tr>"
        for e in r.examples
    )
    versions = ", ".join(
        f"v{_e(v)}: {_e(s.get('model', ''))} ({_e(s['mismatched'])}/{_e(s['rows'])})" for v, s in r.versions.items()
    )
    return (
        f'<section id="replay"><h2>Replay {_badge(r.severity)}</h2><p>{r.rows:,} rows replayed, {r.mismatched:,} '
        f"mismatched, {r.errors:,} rejected by the signature ({_fmt(r.rate, True)}). Versions: {versions}</p>"
        "<table><thead><tr><th>request_id</th><th>row</th><th>version</th><th>difference</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{''.join(f'<p>{_e(n)}</p>' for n in r.notes)}</section>"
    )


def _join(report: SkewReport) -> str:
    j = report.join
    if j is None:
        return ""
    rows = []
    for f in j.features:
        ex = "; ".join(f"{e['key']!r}: {e['serving']!r} vs {e['offline']!r}" for e in f.examples[:3])
        rows.append(
            f"<tr><td>{_e(f.name)}</td><td class='num'>{f.mismatched:,}/{f.compared:,}</td>"
            f"<td class='num'>{_fmt(f.rate, True)}</td><td>{_badge(f.severity)}</td><td>{_e(ex)}</td></tr>"
        )
    return (
        f'<section id="join"><h2>Join with offline data {_badge(j.severity)}</h2><p>key <code>{_e(j.key)}</code>: '
        f"{j.matched:,} of {j.serving_rows:,} serving rows matched {j.offline_rows:,} offline rows "
        f"({j.duplicate_offline_keys:,} duplicate offline keys) from {_e(j.offline)}</p>"
        "<table><thead><tr><th>feature</th><th>mismatched</th><th>rate</th><th></th><th>examples</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{''.join(f'<p>{_e(n)}</p>' for n in j.notes)}</section>"
    )


def render_html(report: SkewReport) -> str:
    """Return the whole report as one self-contained HTML document."""
    d = report.data
    model = (report.model or "reference") + (f":{report.version}" if report.version is not None else "")
    window = f" · window {d.since or '…'} → {d.until or '…'}" if d.since or d.until else ""
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items())
    notes = "".join(f"<p class='note'>{_e(n)}</p>" for n in report.notes)
    features = "".join(_feature(i, f, report) for i, f in enumerate(report.features))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Skew report: {_e(model)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Skew report: {_e(model)} {_badge(report.severity)}</h1>"
        f"<div class='meta'>{d.rows:,} serving rows from {d.files} {_e(d.kind)} file(s) at <code>{_e(d.path)}</code>"
        f"{_e(window)}{' · by ' + _e(d.by) if d.by else ''} · reference {report.reference_rows:,} rows · "
        f"{_e(counts)} · generated {_e(report.created)}</div>{notes}"
        f"<h2>Summary</h2>{_summary(report)}{_replay(report)}{_join(report)}<h2>Features</h2>{features}"
        "</body></html>"
    )


def write_html(report: SkewReport, path: str | os.PathLike[str]) -> Path:
    """Write the HTML report atomically and return its path."""
    atomic_write_bytes(path, render_html(report).encode("utf-8"))
    return Path(path)
