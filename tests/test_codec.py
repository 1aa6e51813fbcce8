"""The boundary check: every mistake names the column, the row and what was received."""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from parity.codec import NUMPY_DTYPES, datatype_of, decode_raw, encode_column, encode_columns, encode_frame, encode_raw
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


# --- the non-nullable guard through Artifact.predict --------------------------------------------


@pytest.fixture(scope="module")
def strict_artifact() -> Any:
    """A packaged model whose "charges" (FP64) and "plan" (BYTES) had no missing values in training."""
    import parity
    from tests.fixtures import pipeline, raw_frame, targets

    data = raw_frame(300)
    data["charges"] = data["charges"].fillna(70.0)
    from sklearn.linear_model import LogisticRegression

    model = pipeline(LogisticRegression(max_iter=500)).fit(data, targets(data, "binary"))
    return parity.package(model, data, name="strict", nullable=[]), data  # nulls only where training had them


def test_strict_signature_is_inferred(strict_artifact: Any) -> None:
    art, _ = strict_artifact
    spec = {c.name: c for c in art.signature.inputs}
    assert spec["charges"].datatype == "FP64" and not spec["charges"].nullable
    assert spec["tenure"].nullable and not spec["plan"].nullable and spec["region"].nullable


@pytest.mark.parametrize("n", [1, 5, 100])  # one row, small and Arrow-sized frames
@pytest.mark.parametrize("dtype", ["float64", "float32", "Float64"])
def test_nan_in_a_non_nullable_float_column_is_a_schema_error(strict_artifact: Any, n: int, dtype: str) -> None:
    art, data = strict_artifact
    frame = data.head(n).reset_index(drop=True)
    frame["charges"] = frame["charges"].astype(dtype)
    frame.loc[n - 1, "charges"] = np.nan
    with pytest.raises(SchemaError, match=rf"column 'charges' is not nullable .*received null at row {n - 1}") as info:
        art.predict(frame)
    assert info.value.column == "charges"
    # The same rows as JSON-decoded lists (None for the missing number), as the server passes them.
    records = frame.astype(object).where(frame.notna(), None)
    with pytest.raises(SchemaError, match=rf"'charges' is not nullable.*row {n - 1}"):
        art.predict_columns({c: records[c].tolist() for c in frame.columns})


def test_nan_in_a_nullable_float_column_predicts(strict_artifact: Any) -> None:
    art, data = strict_artifact
    frame = data.head(100).reset_index(drop=True)
    frame.loc[[0, 70], "tenure"] = np.nan
    out = art.predict(frame)
    assert len(out) == 100 and not out["probability"].isna().any()


# --- the Arrow text path (>= 64 rows) -------------------------------------------------------------

ARROW_N = 100


def _text(n: int) -> list[Any]:
    values: list[Any] = [("a", "b", "c")[i % 3] for i in range(n)]
    values[3] = None
    values[70 % n] = np.nan
    return values


@pytest.mark.parametrize(
    "make",
    [
        lambda v: np.array(v, dtype=object),
        lambda v: pd.Series(v, dtype=object).array,
        lambda v: pd.array(v, dtype="string[python]"),
        lambda v: pd.array(v, dtype="string[pyarrow]"),
        lambda v: pa.chunked_array([pa.array(v[:50], from_pandas=True), pa.array(v[50:], from_pandas=True)]),
    ],
    ids=["object", "pandas-object", "string-python", "string-pyarrow", "arrow-chunked"],
)
def test_arrow_path_maps_nulls_to_the_marker_like_the_loop(make: Any) -> None:
    values = _text(ARROW_N)
    out = encode_column(TEXT, make(values))
    assert out.dtype == object and len(out) == ARROW_N
    assert out[3] == MISSING_STRING and out[70] == MISSING_STRING
    assert [i for i, v in enumerate(out) if v == MISSING_STRING] == [3, 70]
    small = encode_column(TEXT, np.array(values[:10], dtype=object))  # the loop path
    assert list(out[:10]) == list(small)
    assert all(type(v) is str for v in out)


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA])
def test_arrow_path_names_the_null_row_of_a_non_nullable_text_column(missing: Any) -> None:
    strict = ColumnSpec("s", "BYTES", nullable=False)
    values: list[Any] = ["a"] * ARROW_N
    values[81] = missing
    with pytest.raises(SchemaError, match=r"'s' is not nullable.*received null at row 81") as info:
        encode_column(strict, np.array(values, dtype=object))
    assert info.value.column == "s"
    with pytest.raises(SchemaError, match=r"row 81"):
        encode_column(strict, pd.array(values, dtype="string[pyarrow]"))


def test_arrow_path_falls_back_to_name_a_non_text_value() -> None:
    values: list[Any] = ["a"] * ARROW_N
    values[90] = 12
    with pytest.raises(SchemaError, match=r"expects BYTES \(text\); received int 12 at row 90"):
        encode_column(TEXT, np.array(values, dtype=object))


def test_frame_of_arrow_size_with_category_and_string_dtypes_matches_small_frames() -> None:
    sig = Signature((NUM, INT, TEXT, ColumnSpec("c", "BYTES", nullable=True)))
    values = _text(ARROW_N)
    frame = pd.DataFrame(
        {
            "x": pd.array([1.5, None] * (ARROW_N // 2), dtype="Float64"),
            "n": np.arange(ARROW_N),
            "s": pd.array(values, dtype="string"),
            "c": pd.Series(values, dtype="category"),
        }
    )
    big = encode_frame(sig, frame)
    assert np.isnan(big["x"][1]) and big["x"][0] == 1.5
    for name in ("s", "c"):
        assert [i for i, v in enumerate(big[name]) if v == MISSING_STRING] == [3, 70]
    small = encode_frame(sig, frame.head(10))
    for name in ("x", "n", "s", "c"):
        np.testing.assert_array_equal(big[name][:10], small[name])


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "uint16", "int64"])
def test_integer_columns_of_any_width_become_int64(dtype: str) -> None:
    sig = Signature((INT, NUM))
    frame = pd.DataFrame({"n": np.array([1, 2, 3], dtype=dtype), "x": np.array([0.5, 1.5, 2.5], dtype="float32")})
    out = encode_frame(sig, frame)
    assert out["n"].dtype == np.int64 and out["n"].tolist() == [1, 2, 3]
    assert out["x"].dtype == np.float64 and out["x"].tolist() == [0.5, 1.5, 2.5]


BOOL = ColumnSpec("b", "BOOL", nullable=False)


def test_bool_columns() -> None:
    assert encode_column(BOOL, np.array([True, False])).dtype == np.bool_
    out = encode_column(BOOL, np.array([True, False], dtype=object))
    assert out.dtype == np.bool_ and out.tolist() == [True, False]
    with pytest.raises(SchemaError, match=r"'b' expects BOOL; received null at row 2"):
        encode_column(BOOL, np.array([True, False, None], dtype=object))
    with pytest.raises(SchemaError, match=r"'b' expects BOOL; received str 'yes' at row 0"):
        encode_column(BOOL, np.array(["yes"], dtype=object))
    with pytest.raises(SchemaError, match=r"'b' expects BOOL; received float64 values"):
        encode_column(BOOL, np.array([1.0, 0.0]))


def test_empty_frame_is_named_as_a_frame() -> None:
    sig = Signature((NUM,))
    with pytest.raises(SchemaError, match="the input frame has no rows; pass at least one row"):
        encode_frame(sig, pd.DataFrame({"x": pd.Series([], dtype=float)}))
    with pytest.raises(SchemaError, match="must be a pandas DataFrame; got dict"):
        encode_frame(sig, {"x": [1.0]})  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [3, 100])
def test_numbers_for_a_text_column_are_rejected_at_any_size(size: int) -> None:
    with pytest.raises(SchemaError, match=r"'s' expects BYTES \(text\); received int64 values"):
        encode_column(TEXT, np.arange(size))


def test_records_to_columns_names_the_row_of_a_bad_record() -> None:
    from parity.codec import records_to_columns

    sig = Signature((NUM, INT))
    assert records_to_columns(sig, [{"x": 1.0, "n": 2}, {"x": None, "n": 3}]) == {"x": [1.0, None], "n": [2, 3]}
    with pytest.raises(SchemaError, match=r"instance 1 must be an object of column: value; got list"):
        records_to_columns(sig, [{"x": 1.0, "n": 2}, [1, 2]])
    with pytest.raises(SchemaError, match=r"instance 0 is missing input 'n'") as err:
        records_to_columns(sig, [{"x": 1.0}])
    assert err.value.column == "n"
    extra = [{"x": 1.0, "n": 2, "z": 0}]
    assert records_to_columns(sig, extra)["n"] == [2]  # extra keys pass unless rejected
    with pytest.raises(SchemaError, match=r"instance 0 has unknown input 'z'; the model takes \['x', 'n'\]"):
        records_to_columns(sig, extra, reject_extra=True)


def test_encode_columns_rejects_ragged_and_empty_columns() -> None:
    sig = Signature((NUM, INT))
    with pytest.raises(SchemaError, match=r"column 'n' has 1 values; expected 2 like the other columns") as err:
        encode_columns(sig, {"x": [1.0, 2.0], "n": [1]})
    assert err.value.column == "n"
    with pytest.raises(SchemaError, match=r"column 'x' has 2 values; expected 3"):
        encode_columns(sig, {"x": [1.0, 2.0], "n": [1, 2]}, n_rows=3)
    with pytest.raises(SchemaError, match="the input has no rows"):
        encode_columns(sig, {"x": [], "n": []})
    with pytest.raises(SchemaError, match=r"missing input column\(s\) \['n'\]; the model takes \['x', 'n'\]"):
        encode_columns(sig, {"x": [1.0]})


def test_encode_frame_rejects_non_frames_empty_frames_and_duplicate_columns() -> None:
    sig = Signature((NUM,))
    with pytest.raises(SchemaError, match="input must be a pandas DataFrame; got dict instead"):
        encode_frame(sig, {"x": [1.0]})  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="the input frame has no rows"):
        encode_frame(sig, pd.DataFrame({"x": pd.Series([], dtype=float)}))
    dup = pd.DataFrame([[1.0, 2.0]], columns=["x", "x"])
    with pytest.raises(SchemaError, match="input column 'x' appears more than once"):
        encode_frame(sig, dup)


def test_encode_frame_fast_path_converts_dtypes_and_routes_nan_to_the_checked_path() -> None:
    sig = Signature((ColumnSpec("x", "FP64", nullable=False), INT))
    out = encode_frame(
        sig, pd.DataFrame({"x": np.array([1.5, 2.5], dtype=np.float32), "n": np.array([1, 2], dtype=np.int32)})
    )
    assert out["x"].dtype == np.float64 and out["n"].dtype == np.int64
    assert out["x"].tolist() == [1.5, 2.5] and out["n"].tolist() == [1, 2]
    with pytest.raises(SchemaError, match="row 1"):
        encode_frame(sig, pd.DataFrame({"x": [1.0, np.nan], "n": [1, 2]}))


def test_frame_from_columns_restores_the_missing_marker_and_decode_outputs_keeps_order() -> None:
    from parity.codec import decode_outputs, frame_from_columns
    from parity.schema import OutputSpec

    sig = Signature((TEXT, NUM))
    frame = frame_from_columns(sig, {"s": np.array(["a", MISSING_STRING], dtype=object), "x": np.array([1.0, 2.0])})
    assert list(frame.columns) == ["s", "x"]
    values = frame["s"].tolist()
    assert values[0] == "a" and values[1] is not MISSING_STRING and pd.isna(values[1])  # NaN, as in training
    assert frame["x"].tolist() == [1.0, 2.0]
    out_sig = sig.with_outputs([OutputSpec("b", "FP64"), OutputSpec("a", "FP64")])
    df = decode_outputs(out_sig, {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])})
    assert list(df.columns) == ["b", "a"] and df["b"].tolist() == [3.0, 4.0]
    assert list(df.index) == [0, 1]
    df2 = decode_outputs(out_sig, {"a": np.array([1.0]), "b": np.array([3.0])}, index=pd.Index([7]))
    assert list(df2.index) == [7]


@pytest.mark.parametrize(("datatype", "message"), [("BOOL", "expects BOOL"), ("BYTES", "expects BYTES")])
def test_encode_frame_integer_column_for_a_non_integer_input_is_rejected(datatype: str, message: str) -> None:
    # The INT64 fast path must not take integer columns declared as anything else.
    sig = Signature((ColumnSpec("b", datatype, nullable=False),))  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=rf"column 'b' {message}.*received int64 values"):
        encode_frame(sig, pd.DataFrame({"b": [0, 2]}))


def test_int64_numpy_column_keeps_exact_values_beyond_float_precision() -> None:
    big = 2**62 + 1  # not representable in float64: a detour through floats would change it
    out = encode_column(INT, np.array([big, -big], dtype=np.int64))
    assert out.dtype == np.int64 and out.tolist() == [big, -big]


def test_int64_accepts_negative_whole_floats_and_the_lower_bound() -> None:
    out = encode_column(INT, [-5.0, 3.0, -(2.0**63)])
    assert out.dtype == np.int64 and out.tolist() == [-5, 3, -(2**63)]
    with pytest.raises(SchemaError, match=r"received -1e\+19 at row 0 \(out of range \[-2\^63, 2\^63\)\)"):
        encode_column(INT, [-1e19])


def test_the_error_names_the_first_bad_row_of_several() -> None:
    with pytest.raises(SchemaError, match=r"received str 'a' at row 1"):
        encode_column(NUM, [1.0, "a", "b"])


def test_encode_frame_casts_long_double_columns_to_float64() -> None:
    raw = np.array([1.5, 2.5], dtype=np.longdouble)
    out = encode_frame(Signature((NUM,)), pd.DataFrame({"x": raw}))
    assert out["x"].dtype == np.float64 and out["x"].tolist() == [1.5, 2.5]


def test_int64_rejects_two_to_the_63() -> None:
    with pytest.raises(SchemaError, match=r"at row 0 \(out of range \[-2\^63, 2\^63\)\)"):
        encode_column(INT, [2.0**63])


def test_object_column_with_pandas_na_becomes_nan() -> None:
    out = encode_column(NUM, np.array([1.0, pd.NA], dtype=object))
    assert out[0] == 1.0 and np.isnan(out[1])


def test_encode_frame_boolean_column_for_fp64_is_rejected() -> None:
    with pytest.raises(SchemaError, match="received booleans"):
        encode_frame(Signature((STRICT,)), pd.DataFrame({"x": np.array([True, False])}))


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("FP64", np.array([1.5, np.nan, -2.0])),
        ("FP32", np.array([0.25, 3.0], dtype=np.float32)),
        ("INT64", np.array([-(2**62), 7])),
        ("INT32", np.array([-5, 2**30], dtype=np.int32)),
        ("BOOL", np.array([True, False, True])),
        ("BYTES", np.array(["pro", "", "h\u00e9", MISSING_STRING], dtype=object)),
    ],
)
def test_raw_bytes_round_trip_and_datatype_of(datatype: str, values: np.ndarray) -> None:
    raw = encode_raw(values, datatype)
    back = decode_raw("x", datatype, raw, len(values))
    if datatype == "BYTES":
        assert back == values.tolist()
        assert raw[:7] == struct.pack("<I", 3) + b"pro"  # 4-byte little-endian length, then UTF-8
    else:
        assert isinstance(back, np.ndarray)
        np.testing.assert_array_equal(back.astype(NUMPY_DTYPES[datatype]), values)
        assert raw == values.astype(values.dtype.newbyteorder("<")).tobytes()
    assert datatype_of(values) == datatype


@pytest.mark.parametrize(
    ("datatype", "raw", "count", "needle"),
    [
        ("FP64", b"\0" * 12, 2, "binary data is 12 bytes but 2 FP64 values need 16"),
        ("BYTES", b"\x03\0", 1, "truncated BYTES element length at byte 0"),
        ("BYTES", struct.pack("<I", 9) + b"pro", 1, "BYTES element 0 declares 9 bytes but only 3 remain"),
        ("BYTES", struct.pack("<I", 1) + b"\xff", 1, "BYTES element 0 is not valid UTF-8"),
        ("BYTES", struct.pack("<I", 1) + b"a", 2, "holds 1 BYTES elements; shape says 2"),
        ("BF16", b"\0\0", 1, "datatype BF16 cannot be sent as binary data"),
    ],
)
def test_malformed_raw_bytes_name_the_tensor(datatype: str, raw: bytes, count: int, needle: str) -> None:
    with pytest.raises(SchemaError, match=needle) as info:
        decode_raw("label", datatype, raw, count, kind="output")
    assert str(info.value).startswith("output 'label': ")
    assert info.value.column == "label"


def test_every_datatype_table_covers_exactly_the_signature_datatypes() -> None:
    import json
    from importlib.resources import files

    from parity.codec import ARROW_TYPES, OIP_DATATYPES, WIRE_DTYPES
    from parity.proto import CONTENTS_FIELD
    from parity.schema import DATATYPES
    from parity.server._openapi import openapi_document

    assert list(NUMPY_DTYPES) == list(DATATYPES)
    assert set(ARROW_TYPES) == set(CONTENTS_FIELD) == set(DATATYPES)
    assert set(DATATYPES) - {"BYTES"} <= set(WIRE_DTYPES) and set(DATATYPES) <= OIP_DATATYPES
    # The two JSON documents hold copies: the manifest's JSON Schema file, and the OpenAPI enum.
    manifest = files("parity").joinpath("schemas/manifest.schema.json").read_text()
    assert f'"datatype": {{"enum": {json.dumps(list(DATATYPES))}}}' in manifest
    request_input = openapi_document()["components"]["schemas"]["RequestInput"]
    assert request_input["properties"]["datatype"]["enum"] == list(DATATYPES)


INT32 = ColumnSpec("k", "INT32", nullable=False)


def test_int64_python_ints_keep_exact_values_beyond_float_precision() -> None:
    big = 2**53 + 1  # a JSON integer: a detour through floats would make it 2^53
    out = encode_column(INT, [big, -(2**62) - 1])
    assert out.dtype == np.int64 and out.tolist() == [big, -(2**62) - 1]


def test_int64_python_int_beyond_the_range_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match=r"expects INT64 integers; received .* at row 1 \(out of range") as info:
        encode_column(INT, [1, 2**63])
    assert info.value.column == "n"


def test_int32_accepts_its_whole_range_including_negatives() -> None:
    values = [-5, -(2**31), 2**31 - 1, 0]
    for given in (values, np.array(values, dtype=np.int64)):
        out = encode_column(INT32, given)
        assert out.dtype == np.int32 and out.tolist() == values


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1])
def test_int32_rejects_integers_outside_its_range(value: int) -> None:
    with pytest.raises(SchemaError, match=rf"received {value} at row 1 \(out of range \[-2\^31, 2\^31\)\)"):
        encode_column(INT32, np.array([1, value], dtype=np.int64))


def test_uint64_beyond_int64_is_rejected_in_columns_and_frames() -> None:
    raw = np.array([3, 2**63], dtype=np.uint64)
    with pytest.raises(SchemaError, match=r"received 9223372036854775808 at row 1 \(out of range \[-2\^63, 2\^63\)\)"):
        encode_column(INT, raw)
    with pytest.raises(SchemaError, match=r"at row 1 \(out of range"):
        encode_frame(Signature((INT,)), pd.DataFrame({"n": raw}))
    ok = encode_frame(Signature((INT,)), pd.DataFrame({"n": np.array([3, 2**63 - 1], dtype=np.uint64)}))
    assert ok["n"].dtype == np.int64 and ok["n"].tolist() == [3, 2**63 - 1]


def test_encode_frame_float_column_for_int64_is_checked_and_cast() -> None:
    sig = Signature((INT,))
    with pytest.raises(SchemaError, match=r"expects INT64 integers; received 2.5 at row 1"):
        encode_frame(sig, pd.DataFrame({"n": [1.0, 2.5]}))
    out = encode_frame(sig, pd.DataFrame({"n": [1.0, -2.0]}))
    assert out["n"].dtype == np.int64 and out["n"].tolist() == [1, -2]


def test_fp64_column_made_of_bools_with_nulls_accepts_booleans() -> None:
    # Training bools with nulls become an FP64 0/1/NaN column: serving may send true/false/null again.
    flags = ColumnSpec("f", "FP64", nullable=True, minimum=0.0, maximum=1.0)
    out = encode_column(flags, [True, None, False])
    assert out.dtype == np.float64 and out[0] == 1.0 and np.isnan(out[1]) and out[2] == 0.0
    frame = encode_frame(Signature((flags,)), pd.DataFrame({"f": pd.Series([True, None, False], dtype=object)}))
    assert frame["f"][0] == 1.0 and np.isnan(frame["f"][1]) and frame["f"][2] == 0.0
    wider = ColumnSpec("f", "FP64", nullable=True, minimum=0.0, maximum=2.0)  # a real number column
    with pytest.raises(SchemaError, match="booleans are not numbers"):
        encode_column(wider, [True, None, False])


@pytest.mark.parametrize("error", [TypeError, AttributeError])
def test_decode_outputs_falls_back_when_the_fast_pandas_constructor_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    from parity.codec import decode_outputs
    from parity.schema import OutputSpec

    def broken(*args: Any, **kwargs: Any) -> pd.DataFrame:
        raise error("changed in this pandas version")

    monkeypatch.setattr(pd.DataFrame, "_from_arrays", broken)
    sig = Signature((NUM,)).with_outputs([OutputSpec("b", "FP64"), OutputSpec("a", "FP64")])
    df = decode_outputs(sig, {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}, index=pd.Index([5, 6]))
    assert list(df.columns) == ["b", "a"] and df["b"].tolist() == [3.0, 4.0] and list(df.index) == [5, 6]


def test_unsigned_columns_are_range_checked_for_int32() -> None:
    out = encode_column(INT32, np.array([0, 2**31 - 1], dtype=np.uint32))
    assert out.dtype == np.int32 and out.tolist() == [0, 2**31 - 1]
    with pytest.raises(SchemaError, match=r"received 2147483648 at row 1 \(out of range \[-2\^31, 2\^31\)\)"):
        encode_column(INT32, np.array([0, 2**31], dtype=np.uint32))


def test_a_single_json_integer_keeps_its_exact_value() -> None:
    assert encode_column(INT, [2**53 + 1]).tolist() == [2**53 + 1]


@pytest.mark.parametrize("unit", ["datetime64[ns]", "timedelta64[ns]"])
def test_time_columns_for_a_number_input_are_rejected_by_dtype(unit: str) -> None:
    raw = np.array([1, 2], dtype=unit)
    with pytest.raises(SchemaError, match=rf"column 'x' expects FP64 numbers; received {re.escape(unit)} values"):
        encode_column(NUM, raw)
    with pytest.raises(SchemaError, match=r"column 'x' expects FP64 numbers; received \w+"):
        encode_frame(Signature((NUM,)), pd.DataFrame({"x": raw}))  # pandas hands over Timestamps/Timedeltas


def test_pandas_boolean_column_gets_the_same_error_as_a_numpy_bool_column() -> None:
    sig = Signature((STRICT,))
    messages = []
    for column in (np.array([True, False]), pd.Series([True, False], dtype="boolean")):
        with pytest.raises(SchemaError, match="booleans are not numbers") as info:
            encode_frame(sig, pd.DataFrame({"x": column}))
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "received booleans" in messages[0]


def test_frame_from_columns_keeps_bool_and_number_columns_as_they_are() -> None:
    from parity.codec import frame_from_columns

    flag = ColumnSpec("b", "BOOL", nullable=False)
    frame = frame_from_columns(Signature((flag, NUM)), {"b": np.array([True, False]), "x": np.array([1.0, np.nan])})
    assert frame["b"].dtype == bool and frame["b"].tolist() == [True, False]
    assert frame["x"].dtype == np.float64 and np.isnan(frame["x"][1])


def test_large_text_column_with_a_number_names_its_row() -> None:
    with pytest.raises(SchemaError, match=r"expects BYTES \(text\); received int 3 at row 70"):
        encode_column(TEXT, np.array(["a"] * 70 + [3], dtype=object))


def test_large_arrow_timestamp_column_for_a_text_input_is_rejected() -> None:
    stamps = pd.Series(pd.date_range("2024-01-01", periods=70), dtype=pd.ArrowDtype(pa.timestamp("ns")))
    with pytest.raises(SchemaError, match=r"column 's' expects BYTES \(text\); received Timestamp"):
        encode_frame(Signature((TEXT,)), pd.DataFrame({"s": stamps}))


def test_frame_from_columns_keeps_text_that_sorts_after_the_missing_marker() -> None:
    from parity.codec import frame_from_columns

    values = np.array(["\U0001f600", "\uffff", MISSING_STRING, "a"], dtype=object)
    frame = frame_from_columns(Signature((TEXT,)), {"s": values})
    out = frame["s"].tolist()
    assert out[0] == "\U0001f600" and out[1] == "\uffff" and pd.isna(out[2]) and out[3] == "a"


@pytest.mark.parametrize("values", [pa.array([1, 2, None]), pa.chunked_array([[1, 2]])])
def test_arrow_numbers_for_a_text_input_are_rejected(values: Any) -> None:
    with pytest.raises(SchemaError, match=r"column 's' expects BYTES \(text\); received \w+ 1(\.0)? at row 0"):
        encode_column(TEXT, values)


def test_arrow_text_columns_encode_with_nulls_as_the_marker() -> None:
    out = encode_column(TEXT, pa.chunked_array([["a", None], ["b"]]))
    assert out.tolist() == ["a", MISSING_STRING, "b"]
    with pytest.raises(SchemaError, match=r"not nullable.*received null at row 1"):
        encode_column(ColumnSpec("s", "BYTES", nullable=False), pa.array(["a", None], pa.large_string()))


@pytest.mark.parametrize("values", [[1.0, 2.5], [1.0, np.inf]])
def test_nullable_int64_refuses_fractions_and_infinities(values: list[float]) -> None:
    # A nullable INT64 input still takes whole numbers only: the FP64 shortcut must not apply to it.
    spec = ColumnSpec("n", "INT64", nullable=True)
    with pytest.raises(
        SchemaError, match=r"expects INT64 integers; received .* at row 1 \(integers must be finite and whole\)"
    ):
        encode_column(spec, values)
    with pytest.raises(SchemaError, match=r"\(INT64\) cannot hold nulls"):
        encode_column(spec, [1, None])


ARROW_SIGNATURE = Signature(
    inputs=(
        ColumnSpec("x", "FP64", nullable=True),
        ColumnSpec("n", "INT64", nullable=False),
        ColumnSpec("s", "BYTES", nullable=True),
        ColumnSpec("d", "BYTES", nullable=True),
        ColumnSpec("b", "BOOL", nullable=False),
    )
)


def _arrow_table(n: int) -> pa.Table:
    rng = np.random.default_rng(0)
    text = rng.choice(["a", "b", "c"], n).astype(object)
    text[::7] = None
    return pa.table(
        {
            "x": pa.array(np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)), from_pandas=True),
            "n": pa.array(rng.integers(-5, 5, n)),
            "s": pa.array(text),  # plain text, as CSV or Spark give it
            "d": pa.array(text[::-1]).dictionary_encode(),  # dictionary text, as Parquet gives it
            "b": pa.array(rng.random(n) < 0.5),
        }
    )


@pytest.mark.parametrize("n", [3, 500])
def test_encode_arrow_matches_encode_frame_and_keeps_the_text_dictionaries(n: int) -> None:
    from parity.codec import encode_arrow

    table = _arrow_table(n)
    got = encode_arrow(ARROW_SIGNATURE, table)
    expected = encode_frame(ARROW_SIGNATURE, table.to_pandas())
    assert list(got) == list(expected)
    for name, values in expected.items():
        assert got[name].dtype == values.dtype, name
        np.testing.assert_array_equal(got[name], values, err_msg=name)
    assert sorted(got.dictionaries) == ["d", "s"]
    for name, text in got.dictionaries.items():
        assert text.indices.dtype == np.int64 and len(set(text.values.tolist())) == len(text.values)
        np.testing.assert_array_equal(text.values[text.indices], expected[name])
    assert MISSING_STRING in got.dictionaries["s"].values.tolist()


def test_encode_arrow_unifies_dictionaries_across_chunks() -> None:
    from parity.codec import encode_arrow

    sig = Signature(inputs=(ColumnSpec("d", "BYTES", nullable=True),))
    chunks = [pa.array(["a", "b"]).dictionary_encode(), pa.array(["c", None, "a"]).dictionary_encode()]
    got = encode_arrow(sig, pa.table({"d": pa.chunked_array(chunks)}))
    assert got["d"].tolist() == ["a", "b", "c", MISSING_STRING, "a"]
    assert sorted(got.dictionaries["d"].values.tolist()) == sorted(["a", "b", "c", MISSING_STRING])


@pytest.mark.parametrize(
    ("column", "pattern"),
    [
        (pa.array(["a"] * 70 + [None]).dictionary_encode(), r"column 's' is not nullable.*row 70"),
        (pa.array(["a"] * 70 + [None]), r"column 's' is not nullable.*row 70"),
        (pa.array([1, 2, 3]), r"column 's' expects BYTES \(text\); received int.* at row 0"),
    ],
)
def test_encode_arrow_names_the_column_and_row_of_bad_text(column: pa.Array, pattern: str) -> None:
    from parity.codec import encode_arrow

    sig = Signature(inputs=(ColumnSpec("s", "BYTES", nullable=False),))
    with pytest.raises(SchemaError, match=pattern):
        encode_arrow(sig, pa.table({"s": column}))


def test_encode_arrow_names_bad_numbers_missing_columns_and_empty_batches() -> None:
    from parity.codec import encode_arrow

    sig = Signature(inputs=(ColumnSpec("x", "FP64", nullable=True), ColumnSpec("y", "FP64", nullable=True)))
    with pytest.raises(SchemaError, match=r"column 'x' expects FP64 numbers; received str 'oops' at row 1"):
        encode_arrow(sig, pa.table({"x": [None, "oops"], "y": [1.0, 2.0]}))
    with pytest.raises(SchemaError, match=r"missing input column\(s\) \['y'\]"):
        encode_arrow(sig, pa.table({"x": [1.0]}))
    with pytest.raises(SchemaError, match="no rows"):
        encode_arrow(sig, pa.table({"x": pa.array([], pa.float64()), "y": pa.array([], pa.float64())}))
