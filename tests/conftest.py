"""Suite-wide rules (no silent skips in CI, a derandomized hypothesis profile there) and the shared SparkSession.

Under ``CI=true`` (how CI runs ``make test``) every skip becomes a failure: a missing Node.js,
Chromium, openssl, xgboost, lightgbm, dask or schemathesis means the machine was not set up by
the Makefile, and the tests that need them must not pass silently. Locally they stay skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

# CI: the same examples on every run (no flaky reds from a new random draw), no deadline on a
# loaded 2-core machine, and the failing example printed so it can be replayed.
settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "dev"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI, turn a skipped test (not an expected failure) into a failure that says why."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """In CI, a module skipped at import (``pytest.importorskip`` at top level) is a failure too."""
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if IN_CI and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A real SparkSession on local[2] (the JVM starts once per test run)."""
    from parity._spark import spark_session

    session = spark_session(
        "local[2]",
        {"spark.ui.showConsoleProgress": "false", "spark.sql.shuffle.partitions": "4", "spark.driver.memory": "1g"},
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
