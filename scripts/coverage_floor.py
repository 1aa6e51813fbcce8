"""Print line and branch coverage of src/parity separately and fail under their floors."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    """Read the combined .coverage data via `coverage json` and check each floor."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=float, required=True, help="minimum percent of lines covered")
    parser.add_argument("--branches", type=float, required=True, help="minimum percent of branches covered")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "coverage.json"
        # `coverage json` owns the arithmetic; this script only splits lines from branches.
        subprocess.run([sys.executable, "-m", "coverage", "json", "-q", "--fail-under=0", "-o", str(out)], check=True)
        totals = json.loads(out.read_text())["totals"]
    lines = 100.0 * totals["covered_lines"] / max(totals["num_statements"], 1)
    branches = 100.0 * totals["covered_branches"] / max(totals["num_branches"], 1)
    print(
        f"coverage of src/parity: lines {lines:.2f}% ({totals['covered_lines']}/{totals['num_statements']}), "
        f"branches {branches:.2f}% ({totals['covered_branches']}/{totals['num_branches']}); "
        f"floors: lines {args.lines}%, branches {args.branches}%"
    )
    failed = [f"lines {lines:.2f}% < {args.lines}%"] if lines < args.lines else []
    failed += [f"branches {branches:.2f}% < {args.branches}%"] if branches < args.branches else []
    if failed:
        print("coverage under its floor: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
