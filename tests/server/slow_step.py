"""A custom (non-exportable) pipeline step for server tests: slow on a marker value."""

from __future__ import annotations

import time

import pandas as pd

SLOW_MARKER = -999.0  # an income no real request has
SLOW_SECONDS = 10.0  # far beyond the test server's 3 s request timeout


def slow_on_marker(frame: pd.DataFrame) -> pd.DataFrame:
    """Identity, except that a batch holding the marker income takes SLOW_SECONDS."""
    if (frame["income"] == SLOW_MARKER).any():
        time.sleep(SLOW_SECONDS)
    return frame
