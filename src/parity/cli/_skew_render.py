"""Terminal side of ``parity skew``: the rich table of a report and the ``--fail-on`` exit codes."""

from __future__ import annotations

import json

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from parity.skew import FeatureReport, Metric, Severity, SkewReport

__all__ = ["EXIT_ALERT", "EXIT_NO_DATA", "EXIT_WARN", "SEVERITY_STYLE", "exit_code", "render_report"]

EXIT_WARN = 10
"""``--fail-on warn`` and the worst severity is warn."""
EXIT_ALERT = 11
"""``--fail-on warn|alert`` and the worst severity is alert."""
EXIT_NO_DATA = 12
"""``--fail-on`` given and no serving row fell in the window: nothing could be checked."""
_RANK = {"ok": 0, "warn": 1, "alert": 2}

SEVERITY_STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red"}
_COLUMNS = (
    ("psi", "PSI"),
    ("js_distance", "JS dist"),
    ("linf", "L-inf"),
    ("unseen_share", "unseen"),
    ("out_of_range_share", "out of range"),
    ("null_rate_change", "null Δ"),
)


def _cell(metric: Metric | None) -> Text:
    """Format one metric: the judged (noise-corrected) value, colored by severity; '~' when not judged."""
    if metric is None or metric.value is None:
        return Text("-", style="dim")
    text = f"{metric.value:.3g}"
    if metric.status != "judged":
        return Text(f"~{text}", style="dim")
    return Text(text, style=SEVERITY_STYLE[metric.severity] if metric.severity != "ok" else "")


def _notes(f: FeatureReport) -> str:
    parts = [p.message for p in f.schema]
    parts += [f"{m.name}: {m.note}" for m in f.metrics if m.severity != "ok" and m.note]
    if f.current and f.current.unseen_examples and not any(m.name == "unseen_share" and m.note for m in f.metrics):
        # Quoted, so an empty-string category is visible.
        parts.append(
            "unseen e.g. " + ", ".join(json.dumps(v, ensure_ascii=False) for v in f.current.unseen_examples[:3])
        )
    if f.ignored:
        parts.append("ignored by the thresholds file")
    return "; ".join(parts)


def render_report(report: SkewReport, *, limit: int | None = None) -> RenderableType:
    """Return the report as rich renderables (summary table, windows, replay, join, notes)."""
    d = report.data
    window = f" {d.since or '…'} → {d.until or '…'}" if d.since or d.until else ""
    head = Text.assemble(
        ("Skew ", "bold"),
        (f"{report.model or 'reference'}" + (f":{report.version}" if report.version is not None else ""), "bold"),
        f"  {d.rows:,} serving rows from {d.files} {d.kind} file(s){window}; ",
        f"reference {report.reference_rows:,} rows  ",
        (report.severity.upper(), SEVERITY_STYLE[report.severity]),
    )
    table = Table(show_lines=False, header_style="bold")
    table.add_column("feature", no_wrap=True)
    table.add_column("role", style="dim")
    table.add_column("severity", no_wrap=True)
    for _, title in _COLUMNS:
        table.add_column(title, justify="right")
    table.add_column("notes", overflow="fold", max_width=60)
    shown = report.features if limit is None else report.features[:limit]
    for f in shown:
        sev = Text(f.severity, style=SEVERITY_STYLE[f.severity])
        table.add_row(f.name, f.role, sev, *(_cell(f.metric(name)) for name, _ in _COLUMNS), Text(_notes(f)))
    parts: list[RenderableType] = [head, table]
    if limit is not None and len(report.features) > limit:
        parts.append(Text(f"… {len(report.features) - limit} more feature(s) in the JSON/HTML report", style="dim"))
    if report.windows:
        wt = Table(title=f"per {d.by}", header_style="bold")
        for col in ("window start", "rows", "severity", "flagged features"):
            wt.add_column(col)
        for w in report.windows:
            flagged = ", ".join(n for n, e in w.features.items() if e.severity != "ok")
            wt.add_row(w.start, f"{w.rows:,}", Text(w.severity, style=SEVERITY_STYLE[w.severity]), flagged or "-")
        parts.append(wt)
    if report.replay is not None:
        r = report.replay
        rate = "-" if r.rate is None else f"{r.rate:.3%}"
        parts.append(
            Text.assemble(
                ("Replay ", "bold"),
                f"{r.rows:,} rows, {r.mismatched:,} mismatched, {r.errors:,} rejected ({rate})  ",
                (r.severity.upper(), SEVERITY_STYLE[r.severity]),
            )
        )
        for e in r.examples[:5]:
            what = e.error or ", ".join(
                f"{k}: {v['logged']!r} logged vs {v['replayed']!r} replayed" for k, v in e.outputs.items()
            )
            parts.append(Text(f"  request {e.request_id} row {e.row} (v{e.model_version}): {what}", style="dim"))
    if report.join is not None:
        j = report.join
        parts.append(
            Text.assemble(
                ("Join ", "bold"),
                f"by {j.key!r}: {j.matched:,} of {j.serving_rows:,} serving rows matched  ",
                (j.severity.upper(), SEVERITY_STYLE[j.severity]),
            )
        )
        for jf in j.features:
            if jf.mismatched:
                ex = jf.examples[0] if jf.examples else {}
                parts.append(
                    Text(
                        f"  {jf.name}: {jf.mismatched:,}/{jf.compared:,} differ"
                        + (
                            f", e.g. key {ex.get('key')!r}: {ex.get('serving')!r} vs {ex.get('offline')!r}"
                            if ex
                            else ""
                        ),
                        style=SEVERITY_STYLE[jf.severity],
                    )
                )
    for note in (
        report.notes + (report.replay.notes if report.replay else []) + (report.join.notes if report.join else [])
    ):
        parts.append(Text(f"note: {note}", style="yellow"))
    return Group(*parts)


def exit_code(report: SkewReport, fail_on: Severity | None) -> int:
    """Return the documented exit status of ``parity skew --fail-on`` (0 when it is not given)."""
    if fail_on is None:
        return 0
    if report.status == "no_data":
        return EXIT_NO_DATA
    if _RANK[report.severity] < _RANK[fail_on]:
        return 0
    return EXIT_ALERT if report.severity == "alert" else EXIT_WARN
