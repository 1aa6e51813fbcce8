"""The examples run as tests: ``examples/demo.py`` (what ``make demo`` runs) end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    env = {**os.environ, "PARITY_DEMO_OUT": str(out), "COLUMNS": "160"}
    env.pop("PARITY_TOKEN", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "demo OK" in proc.stdout
    assert "labels identical everywhere:    True" in proc.stdout
    assert "skew found the planted drift:   True" in proc.stdout
    report = json.loads((out / "skew.json").read_text())
    flagged = {f["name"] for f in report["features"] if f["severity"] in ("warn", "alert")}
    assert {"bill_length_mm", "island", "body_mass_g"} <= flagged
    assert (out / "skew.html").stat().st_size > 1000 and (out / "penguins" / "manifest.json").is_file()
