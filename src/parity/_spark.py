"""The one place pyspark is imported: a lazily created SparkSession and Arrow -> Spark type mapping."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from parity.errors import MissingDependencyError, SchemaError

__all__ = ["spark_session", "spark_type"]


def _pyspark() -> Any:
    try:
        import pyspark
    except ImportError as exc:
        raise MissingDependencyError(
            "the Spark engine needs pyspark: pip install 'parity[spark]' (and Java 17+)"
        ) from exc
    return pyspark


def spark_session(master: str | None = None, config: Mapping[str, str] | None = None) -> Any:
    """The active SparkSession, or a new one on ``master`` (default ``$PARITY_SPARK_MASTER`` or ``local[*]``)."""
    _pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName("parity").master(master or os.environ.get("PARITY_SPARK_MASTER", "local[*]"))
    # Arrow moves batches between the JVM and Python without per-row pickling; workers run this interpreter
    # (where parity is installed) unless the cluster says otherwise.
    builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = builder.config("spark.ui.enabled", "false")
    for key, value in (config or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def spark_type(arrow: pa.DataType) -> Any:
    """Spark SQL type of an Arrow type used by parity (numbers, booleans, strings)."""
    from pyspark.sql import types as T

    table: list[tuple[Any, Any]] = [
        (pa.types.is_float64, T.DoubleType()),
        (pa.types.is_float32, T.FloatType()),
        (pa.types.is_int64, T.LongType()),
        (pa.types.is_int32, T.IntegerType()),
        (pa.types.is_int16, T.ShortType()),
        (pa.types.is_int8, T.ByteType()),
        (pa.types.is_boolean, T.BooleanType()),
        (pa.types.is_string, T.StringType()),
        (pa.types.is_large_string, T.StringType()),
    ]
    for check, spark in table:
        if check(arrow):
            return spark
    if pa.types.is_dictionary(arrow):
        return spark_type(arrow.value_type)
    raise SchemaError(f"column type {arrow} has no Spark SQL equivalent here (numbers, booleans and strings do)")
