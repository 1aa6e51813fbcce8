"""Rich rendering helpers: consoles, the one-line error, JSON output, manifest and report tables."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

__all__ = [
    "err",
    "error_line",
    "human_size",
    "kv_table",
    "manifest_summary",
    "one_line",
    "out",
    "passed_text",
    "print_json",
    "render_manifest",
    "render_report",
    "row_progress",
    "table",
    "warn",
]


# Both consoles look up sys.stdout / sys.stderr when printing, so test runners that swap them still capture output.
def _console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped output (CI logs, files) would get rich's 80-column default, which squeezes the skew
        # table's ten columns into one-character slivers; a terminal keeps its own width.
        console.width = 160
    return console


out = _console()
err = _console(stderr=True)


def print_json(obj: Any) -> None:
    """Write ``obj`` as JSON to stdout, nothing else (for ``--json``)."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def one_line(message: str) -> str:
    """Collapse a message onto one line."""
    return " ".join(message.split())


def error_line(message: str) -> None:
    """Print ``error: message`` as one red line on stderr."""
    # Text (not markup): messages hold brackets such as ['a', 'b']; soft_wrap keeps them on one line.
    err.print(Text(f"error: {one_line(message)}", style="bold red"), soft_wrap=True)


def warn(message: str) -> None:
    """Print ``warning: message`` in yellow on stderr."""
    err.print(Text(f"warning: {one_line(message)}", style="yellow"), soft_wrap=True)


def human_size(size: int) -> str:
    """Format a byte count (``12.3 KiB``)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value) or "-"
    return str(value)


def kv_table(rows: Iterable[tuple[str, Any]], title: str | None = None) -> Table:
    """Two-column key/value grid; values that are already renderables are kept as is."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column()
    for key, value in rows:
        grid.add_row(key, value if isinstance(value, Text | Table) else Text(_fmt(value)))
    if title is None:
        return grid
    outer = Table(title=title, title_justify="left", title_style="bold", show_header=False, box=None, padding=0)
    outer.add_row(grid)
    return outer


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A titled table of plain values."""
    result = Table(title=title, title_justify="left", title_style="bold")
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*(v if isinstance(v, Text) else Text(_fmt(v)) for v in row))
    return result


def _domain(spec: Mapping[str, Any]) -> str:
    if spec.get("categories") is not None:
        return f"{len(spec['categories'])} categories"
    if spec.get("range") is not None:
        lo, hi = spec["range"]
        return f"[{_fmt(lo)}, {_fmt(hi)}]"
    if spec.get("datatype") == "BYTES":
        return "too many categories to list"
    return "-"


def passed_text(passed: bool) -> Text:
    """Green ``passed`` or red ``FAILED``."""
    return Text("passed", style="bold green") if passed else Text("FAILED", style="bold red")


def render_report(report: Mapping[str, Any], title: str = "Parity check") -> RenderableType:
    """Render a ParityReport dict: verdict, tolerance, rows, per-output worst differences."""
    cases = report.get("cases", {})
    rows: list[tuple[str, Any]] = [("result", passed_text(bool(report["passed"])))]
    if report.get("failure"):
        rows.append(("failure", Text(str(report["failure"]), style="red")))
    rows += [
        ("tolerance", report.get("tolerance")),
        ("rows checked", f"{report.get('rows_checked', 0):,}"),
        ("cases", f"{len(cases)} ({', '.join(sorted({c.split(':')[0] for c in cases}))})" if cases else 0),
        ("runtime", report.get("runtime")),
        ("precision", report.get("precision")),
    ]
    if report.get("skipped"):
        rows.append(("skipped cases", ", ".join(f"{k}: {v}" for k, v in report["skipped"].items())))
    diffs = table(
        "",
        ("output", "max abs diff", "max rel diff", "mismatches", "worst case"),
        (
            (name, d.get("max_abs_diff"), d.get("max_rel_diff"), d.get("mismatches"), d.get("worst_case"))
            for name, d in report.get("outputs", {}).items()
        ),
    )
    return Group(kv_table(rows, title=title), diffs)


def _portable_warning(manifest: Mapping[str, Any]) -> Panel:
    blocked = manifest.get("blocked_by") or {}
    step = blocked.get("step", "a step")
    body = Text.assemble(
        ("NOT PORTABLE: ", "bold red"),
        (f"step {step} could not be exported to ONNX", "bold yellow"),
        (f" ({blocked.get('reason', 'no reason recorded')}).\n", "yellow"),
        (
            "This artifact runs only in Python, loading it needs --trusted (it may run code), "
            "and it cannot be served from other languages.",
            "yellow",
        ),
    )
    return Panel(body, border_style="bold red", title="WARNING", title_align="left")


def render_manifest(manifest: Mapping[str, Any], *, version: str | None, path: str) -> RenderableType:
    """Render everything ``parity inspect`` shows about an artifact."""
    parts: list[RenderableType] = []
    portable = bool(manifest.get("portable"))
    if not portable:
        parts.append(_portable_warning(manifest))
    parity = manifest.get("parity", {})
    overview: list[tuple[str, Any]] = [("name", Text(str(manifest.get("name")), style="bold"))]
    if version is not None:
        overview.append(("version", version))
    parts.append(
        kv_table(
            [
                *overview,
                ("path", path),
                ("description", manifest.get("description") or None),
                ("task", manifest.get("task")),
                ("runtime", manifest.get("runtime")),
                ("portable", Text("yes", style="green") if portable else Text("NO", style="bold red")),
                ("created", manifest.get("created")),
                ("estimator", manifest.get("estimator")),
                ("precision", parity.get("precision")),
                ("files", Text("verified (sha256)", style="green")),
            ],
            title="Artifact",
        )
    )
    signature = manifest.get("signature", {})
    parts.append(
        table(
            "Inputs",
            ("name", "datatype", "nullable", "domain"),
            ((c["name"], c["datatype"], c["nullable"], _domain(c)) for c in signature.get("inputs", [])),
        )
    )
    parts.append(
        table(
            "Outputs",
            ("name", "datatype", "labels", "description"),
            ((o["name"], o["datatype"], o.get("labels"), o.get("description")) for o in signature.get("outputs", [])),
        )
    )
    post = manifest.get("postprocess", {})
    parts.append(kv_table(sorted(post.items()), title="Postprocess"))
    parts.append(render_report(parity))
    metrics = manifest.get("metrics") or {}
    parts.append(kv_table(sorted(metrics.items()) or [("(none)", "")], title="Metrics"))
    data = manifest.get("training_data", {})
    parts.append(
        kv_table(
            [
                ("rows", f"{data.get('rows', 0):,}"),
                ("columns", data.get("columns")),
                ("sha256", data.get("sha256")),
            ],
            title="Training data",
        )
    )
    env = manifest.get("environment", {})
    packages = env.get("packages", {})
    parts.append(
        kv_table(
            [
                ("python", f"{env.get('python', '?')} ({env.get('implementation', '?')}, {env.get('platform', '?')})"),
                ("packages", " ".join(f"{k}=={v}" for k, v in packages.items()) or None),
            ],
            title="Environment",
        )
    )
    lineage = manifest.get("lineage", {})
    parts.append(
        kv_table(
            [
                ("git commit", lineage.get("git_commit")),
                ("git dirty", lineage.get("git_dirty")),
                ("tags", ", ".join(f"{k}={v}" for k, v in (lineage.get("tags") or {}).items()) or None),
            ],
            title="Lineage",
        )
    )
    files = manifest.get("files", {})
    parts.append(
        table(
            "Files",
            ("file", "size", "sha256"),
            ((name, human_size(int(f["size"])), f["sha256"][:16]) for name, f in sorted(files.items())),
        )
    )
    return Group(*_spaced(parts))


def _spaced(parts: list[RenderableType]) -> list[RenderableType]:
    spaced: list[RenderableType] = []
    for part in parts:
        spaced += [part, Text("")]
    return spaced[:-1]


def manifest_summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The few manifest fields ``registry show`` prints."""
    signature = manifest.get("signature", {})
    parity = manifest.get("parity", {})
    return {
        "task": manifest.get("task"),
        "runtime": manifest.get("runtime"),
        "portable": manifest.get("portable"),
        "blocked_by": manifest.get("blocked_by"),
        "estimator": manifest.get("estimator"),
        "created": manifest.get("created"),
        "parity_passed": parity.get("passed"),
        "inputs": [c["name"] for c in signature.get("inputs", [])],
        "outputs": [o["name"] for o in signature.get("outputs", [])],
        "metrics": manifest.get("metrics", {}),
    }


def row_progress(*, disable: bool) -> Progress:
    """A progress display on stderr counting rows (a pulsing bar when the total is unknown)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]predict"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=err,
        disable=disable or not err.is_terminal,
        transient=False,
    )
