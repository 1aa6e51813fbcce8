"""Suite-wide fixtures: ONE SparkSession (local[2]) shared by every Spark test, started on first use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


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
