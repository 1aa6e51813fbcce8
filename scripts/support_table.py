"""Measure the max diff of every gauntlet pipeline and print the README's support table rows.

Each pipeline of ``tests/export/test_gauntlet.py`` is fitted on the CSV-read house frame and
packaged; the parity check's max relative diff (absolute below 1) over training rows, edge rows and
threshold probes is printed with the precision recipe recorded in the manifest.

Run from the repository root: ``.venv/bin/python scripts/support_table.py``
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sklearn.exceptions import ConvergenceWarning
from tests.export.test_gauntlet import PIPELINES
from tests.fixtures import house

import parity


def main() -> None:
    """Package every gauntlet pipeline and print one markdown row each."""
    frame, price, expensive, band = house()
    targets = {"price": price, "expensive": expensive, "band": band}
    print("| pipeline | max diff | rows checked | precision |")
    print("|---|---|---|---|")
    for name, (build, target, _) in sorted(PIPELINES.items()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipe = build().fit(frame, targets[target])
        art = parity.package(pipe, frame, name="support")
        report = art.parity_report
        worst = max(d.max_rel_diff for d in report.outputs.values())
        print(f"| {name} | {worst:.1e} | {report.rows_checked} | `{report.precision}` |")


if __name__ == "__main__":
    main()
