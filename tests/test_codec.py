"""The boundary check: every mistake names the column, the row and what was received."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from parity.codec import encode_column, encode_columns, encode_frame
from parity.errors import SchemaError
from parity.schema import MISSING_STRING, ColumnSpec, Signature

NUM = ColumnSpec("x", "FP64", nullable=True)
STRICT = ColumnSpec("x", "FP64", nullable=False)
INT = ColumnSpec("n", "INT64", nullable=False)
TEXT = ColumnSpec("s", "BYTES", nullable=True)


@pytest.mark.parametrize("size", [3, 40, 200])  # element-wise and vectorised paths
def test_numeric_lists_with_nulls(size: int) -> None:
    values: list[Any] = [1.5, None, 3] * size
    out = encode_column(NUM, values)
    assert out.dtype == np.float64 and len(out) == 3 * size
    assert np.isnan(out[1]) and out[2] == 3.0


@pytest.mark.parametrize(
    ("spec", "values", "pattern"),
    [
        (NUM, [1.0] * 20 + ["a"], r"received str 'a' at row 20"),
        (NUM, [1.0, [2]], r"received list \[2\] at row 1"),
        (STRICT, [1.0] * 20 + [None], r"not nullable.*row 20"),
        (INT, [1, 2, 2.5], r"expects INT64 integers; received 2.5 at row 2"),
        (TEXT, ["a", 3], r"expects BYTES \(text\); received int 3 at row 1"),
        (ColumnSpec("s", "BYTES", nullable=False), ["a"] * 70 + [None], r"not nullable.*row 70"),
    ],
)
def test_bad_values_are_named(spec: ColumnSpec, values: list[Any], pattern: str) -> None:
    with pytest.raises(SchemaError, match=pattern) as info:
        encode_column(spec, values)
    assert info.value.column == spec.name


@pytest.mark.parametrize("size", [2, 100])
def test_text_nulls_become_the_missing_marker(size: int) -> None:
    out = encode_column(TEXT, ["a", None] * size)
    assert out.dtype == object
    assert list(out[:2]) == ["a", MISSING_STRING]


def test_frame_and_columns_agree() -> None:
    sig = Signature((NUM, INT, TEXT))
    frame = pd.DataFrame({"x": [1.0, np.nan], "n": [1, 2], "s": ["a", None]})
    a = encode_frame(sig, frame)
    b = encode_columns(sig, {"x": [1.0, None], "n": [1, 2], "s": ["a", None]})
    for name in ("x", "n", "s"):
        np.testing.assert_array_equal(a[name], b[name])


def test_missing_columns_are_all_listed() -> None:
    sig = Signature((NUM, INT, TEXT))
    with pytest.raises(SchemaError, match=r"\['n', 's'\]"):
        encode_frame(sig, pd.DataFrame({"x": [1.0]}))


def test_length_mismatch_is_named() -> None:
    sig = Signature((NUM, INT))
    with pytest.raises(SchemaError, match="'n' has 1 values; expected 2"):
        encode_columns(sig, {"x": [1.0, 2.0], "n": [1]})
