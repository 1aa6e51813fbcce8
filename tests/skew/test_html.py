"""The HTML report rendered by headless Chromium: charts present in the DOM, user strings escaped."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import parity
from parity.skew import skew_report, write_html
from tests.skew.helpers import frame, write_lake

CHROMIUM = "/usr/bin/chromium"
EVIL = "<script>alert('x')</script>"


def _chromium() -> str:
    """Return the Chromium binary; in CI its absence is a failure, locally a skip."""
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed: `apt-get install -y chromium` (the Makefile's setup does it)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


def _dump_dom(html: Path, tmp_path: Path) -> str:
    args = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", html.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_rendered_dom_holds_every_chart(churn: parity.Artifact, tmp_path: Path) -> None:
    df = frame(1500, 21)
    df.loc[:200, "plan"] = EVIL  # an unseen category that must come out as text, never as markup
    df["x"] = df["x"] + 8.0
    write_lake(tmp_path / "lake", churn, df, version=0, step_s=10.0)
    report = skew_report(churn, tmp_path / "lake", by="hour", replay=True)
    html = write_html(report, tmp_path / "report.html")
    text = html.read_text()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    dom = _dump_dom(html, tmp_path)
    assert re.search(r'<table id="summary"', dom)
    n = len(report.features)
    hists = re.findall(r'<svg class="chart histogram" id="hist-(\d+)"', dom)
    assert sorted(map(int, hists)) == [i for i, f in enumerate(report.features) if f.histogram is not None]
    assert len(hists) == n  # the lake holds every input and output
    assert dom.count('class="bar ref"') == dom.count('class="bar cur"') > 0
    x = next(i for i, f in enumerate(report.features) if f.name == "x")
    hist_x = report.features[x].histogram
    assert hist_x is not None and len(hist_x.labels) == 22  # 20 quantile bins + under/overflow
    assert re.search(rf'<svg class="chart timeseries" id="ts-{x}-psi"', dom)
    assert len(re.findall(r'<svg class="chart timeseries"', dom)) >= n
    assert '<section id="replay">' in dom
    # The planted string shows up escaped in the text, and no script element was injected.
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in dom
    assert "<script" not in dom
