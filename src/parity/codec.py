"""Validate raw inputs against a signature and turn them into typed column arrays.

This is the single boundary check used by ``Artifact.predict`` and by the server: every
caller's data goes through :func:`encode_frame` (pandas) or :func:`encode_columns` (a mapping
of column name to sequence, as decoded from JSON or tensors), so the same mistakes produce the
same :class:`~parity.errors.SchemaError` everywhere.
"""

from __future__ import annotations

import math
import reprlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from parity.errors import SchemaError
from parity.schema import DATATYPES, MISSING_STRING, ColumnSpec, Datatype, Signature

__all__ = [
    "ARROW_TYPES",
    "NUMPY_DTYPES",
    "OIP_DATATYPES",
    "WIRE_DTYPES",
    "EncodedColumns",
    "TextDictionary",
    "datatype_of",
    "decode_outputs",
    "decode_raw",
    "describe_value",
    "echo_values",
    "encode_arrow",
    "encode_column",
    "encode_columns",
    "encode_frame",
    "encode_raw",
    "frame_from_columns",
    "records_to_columns",
    "values_echoed",
]


# Little-endian layout of every fixed-width Open Inference Protocol datatype on the wire (binary
# tensors, gRPC raw contents); the signature datatypes above are a subset.
WIRE_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
OIP_DATATYPES = frozenset([*WIRE_DTYPES, "BYTES", "BF16"])
"""Every datatype name the Open Inference Protocol defines."""
# The numpy dtype of each signature datatype in memory (BYTES: object arrays of str).
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    **{t: WIRE_DTYPES[t].newbyteorder("=") for t in DATATYPES if t != "BYTES"},
    "BYTES": np.dtype(object),
}
_DATATYPE_OF = {NUMPY_DTYPES[t]: t for t in DATATYPES if t != "BYTES"}

# Arrow type of each signature datatype: Parquet/CSV files (lake, batch predict) use these.
ARROW_TYPES: dict[str, pa.DataType] = {
    "FP64": pa.float64(),
    "FP32": pa.float32(),
    "INT64": pa.int64(),
    "INT32": pa.int32(),
    "BOOL": pa.bool_(),
    "BYTES": pa.string(),
}


def datatype_of(values: np.ndarray) -> Datatype:
    """The signature datatype of a typed column array (anything not fixed-width travels as BYTES)."""
    return _DATATYPE_OF.get(values.dtype, "BYTES")


_LEN = struct.Struct("<I")


def decode_raw(
    name: str, datatype: str, raw: bytes | memoryview, count: int, *, kind: str = "input"
) -> np.ndarray | list[str]:
    """Decode ``count`` elements of one tensor from raw little-endian bytes (REST binary data, gRPC raw contents).

    Fixed-width datatypes come back as a read-only little-endian view of ``raw``; BYTES, a
    4-byte little-endian length and the UTF-8 bytes per element, as a list of str. ``kind``
    says what the tensor is in error messages (``input``, ``output``).
    """
    if datatype == "BYTES":
        return _decode_raw_bytes(name, raw, count, kind)
    dtype = WIRE_DTYPES.get(datatype)
    if dtype is None:
        raise SchemaError(f"{kind} {name!r}: datatype {datatype} cannot be sent as binary data", column=name)
    if len(raw) != count * dtype.itemsize:
        raise SchemaError(
            f"{kind} {name!r}: binary data is {len(raw)} bytes but {count} {datatype} values need "
            f"{count * dtype.itemsize}",
            column=name,
        )
    return np.frombuffer(raw, dtype=dtype)


def _decode_raw_bytes(name: str, raw: bytes | memoryview, count: int, kind: str) -> list[str]:
    items: list[str] = []
    pos, end = 0, len(raw)
    while pos < end:
        if pos + 4 > end:
            raise SchemaError(f"{kind} {name!r}: truncated BYTES element length at byte {pos}", column=name)
        (length,) = _LEN.unpack_from(raw, pos)
        pos += 4
        if pos + length > end:
            raise SchemaError(
                f"{kind} {name!r}: BYTES element {len(items)} declares {length} bytes but only {end - pos} remain",
                column=name,
            )
        try:
            items.append(bytes(raw[pos : pos + length]).decode("utf-8"))
        except UnicodeDecodeError:
            raise SchemaError(f"{kind} {name!r}: BYTES element {len(items)} is not valid UTF-8", column=name) from None
        pos += length
    if len(items) != count:
        raise SchemaError(
            f"{kind} {name!r}: binary data holds {len(items)} BYTES elements; shape says {count}", column=name
        )
    return items


def encode_raw(values: np.ndarray, datatype: str) -> bytes:
    """Raw little-endian bytes of one tensor (BYTES: 4-byte length + UTF-8 per element)."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for v in values.tolist():
            b = v.encode("utf-8") if isinstance(v, str) else bytes(v)
            parts.append(_LEN.pack(len(b)))
            parts.append(b)
        return b"".join(parts)
    return np.ascontiguousarray(values, dtype=WIRE_DTYPES[datatype]).tobytes()


_ECHO_VALUES = True


def echo_values(enabled: bool) -> None:
    """Whether error messages quote the offending value (on by default; servers turn it off)."""
    global _ECHO_VALUES
    _ECHO_VALUES = bool(enabled)


def values_echoed() -> bool:
    """True while error messages may quote input values (see :func:`echo_values`)."""
    return _ECHO_VALUES


def describe_value(value: Any) -> str:
    """A value for an error message: its type, and its (bounded) repr unless value echo is off."""
    return _describe(value)


@dataclass(frozen=True)
class TextDictionary:
    """A validated text column as its distinct values (MISSING_STRING for null) and one int64 index per row."""

    values: np.ndarray
    indices: np.ndarray


class EncodedColumns(dict[str, np.ndarray]):
    """Columns that passed :func:`encode_columns` / :func:`encode_frame`: typed, validated, one per input.

    ``dictionaries`` (from :func:`encode_arrow`) holds text columns also as distinct values + row
    indices, so a runtime can work on each distinct value once; the columns themselves are complete.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dictionaries: dict[str, TextDictionary] = {}


def _describe(value: Any) -> str:
    if not _ECHO_VALUES:  # a server must not copy feature values into its logs and answers
        return type(value).__name__
    # reprlib bounds depth and length: a 1,000-level nested list must not raise RecursionError.
    return f"{type(value).__name__} {reprlib.repr(value)}"


def _first_bad(ok: np.ndarray) -> int:
    return int(np.flatnonzero(~ok)[0])


_NUMBER_TYPES = frozenset({float, int, type(None)})


def _numbers_from_list(values: list[Any]) -> np.ndarray | None:
    """A JSON-decoded list of numbers and nulls as one numpy array (NaN for null), in C loops.

    None when the list holds anything else (text, bools, nested lists, out-of-range integers):
    the element-wise path then names the bad value and its row.
    """
    types = set(map(type, values))
    if not types <= _NUMBER_TYPES:
        return None
    try:
        if int in types and len(types) == 1:
            return np.array(values, dtype=np.int64)
        return np.array(values, dtype=np.float64)  # None -> NaN
    except (OverflowError, ValueError):
        return None


_INT_BOUNDS = {"INT64": (-(2.0**63), 2.0**63), "INT32": (-(2.0**31), 2.0**31)}


def accepts_booleans(spec: ColumnSpec) -> bool:
    """Booleans are not numbers, except in the FP64 0/1/NaN column parity makes of a bool column with nulls."""
    return spec.datatype == "BOOL" or (
        spec.datatype == "FP64" and spec.nullable and spec.minimum == 0.0 and spec.maximum == 1.0
    )


def _check_integers(spec: ColumnSpec, out: np.ndarray) -> None:
    """Integer columns: every value finite, whole and within the datatype's range (else name the row)."""
    lo, hi = _INT_BOUNDS[spec.datatype]
    if out.dtype.kind == "f":
        bad = ~np.isfinite(out) | (np.floor(out) != out) | (out < lo) | (out >= hi)
    elif out.dtype.kind == "u":
        # Compared as uint64: against the float bound, 2^63 - 1 would round up to 2^63 and be refused.
        bad = out > np.uint64(int(hi) - 1)
    elif spec.datatype == "INT32":
        bad = (out < int(lo)) | (out > int(hi) - 1)
    else:
        bad = None  # a signed integer array always fits INT64
    if bad is None or not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
    value = out[row].item()
    bits = 63 if spec.datatype == "INT64" else 31
    whole = math.isfinite(value) and math.floor(value) == value
    why = f"out of range [-2^{bits}, 2^{bits})" if whole else "integers must be finite and whole"
    raise SchemaError(
        f"column {spec.name!r} expects {spec.datatype} integers; received {value!r} at row {row} ({why})",
        column=spec.name,
    )


def _encode_numeric(spec: ColumnSpec, values: Any) -> np.ndarray:
    """Return a numeric column as the signature's numpy dtype, or raise SchemaError."""
    if type(values) is list and len(values) >= _LIST_MIN_ROWS:
        fast = _numbers_from_list(values)
        if fast is not None:
            if spec.nullable and spec.datatype == "FP64" and fast.dtype == np.float64:
                return fast  # the common serving case: nothing left to check
            values = fast
    if type(values) is list:
        # Element by element into an object array: np.asarray would turn [1.0, "a"] into strings and
        # [True, 2] into numbers; the check below names the first non-number and its row instead.
        arr = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            arr[i] = v
    else:
        arr = values if isinstance(values, np.ndarray) else np.asarray(values)
    booleans = accepts_booleans(spec)
    if arr.dtype.kind == "b" and not booleans:
        raise SchemaError(
            f"column {spec.name!r} expects {spec.datatype} numbers; received booleans (booleans are not numbers: "
            "send 0/1 if that is what you mean)",
            column=spec.name,
        )
    if arr.dtype.kind in "fiub":
        out = arr.astype(np.float64, copy=False) if arr.dtype.kind == "b" else arr
    elif arr.dtype.kind == "O":
        number = int | float | np.number
        ok = np.fromiter(
            (
                v is None
                or v is pd.NA
                or (isinstance(v, number) and not isinstance(v, bool | np.bool_))
                or (booleans and isinstance(v, bool | np.bool_))
                for v in arr
            ),
            dtype=bool,
            count=arr.size,
        )
        if not ok.all():
            row = _first_bad(ok)
            hint = " (booleans are not numbers: send 0/1)" if isinstance(arr[row], bool | np.bool_) else ""
            raise SchemaError(
                f"column {spec.name!r} expects {spec.datatype} numbers; received {_describe(arr[row])} at row {row}"
                + hint,
                column=spec.name,
            )
        try:
            out = np.array([np.nan if v is None or v is pd.NA else float(v) for v in arr], dtype=np.float64)
        except OverflowError:  # a Python int beyond float range
            row = next(i for i, v in enumerate(arr) if isinstance(v, int) and abs(v) > 1e308)
            raise SchemaError(
                f"column {spec.name!r} expects {spec.datatype} numbers; received an integer of "
                f"{len(str(arr[row]))} digits at row {row}, beyond any numeric type",
                column=spec.name,
            ) from None
    else:
        sample = arr.ravel()[0] if arr.size else None
        raise SchemaError(
            f"column {spec.name!r} expects {spec.datatype} numbers; received {arr.dtype} values"
            + (f" such as {sample!r}" if sample is not None else ""),
            column=spec.name,
        )
    if out.dtype.kind == "f":
        nulls = np.isnan(out)
        if nulls.any():
            if not spec.nullable:
                row = int(np.flatnonzero(nulls)[0])
                raise SchemaError(
                    f"column {spec.name!r} is not nullable (training data had no missing values); "
                    f"received null at row {row}",
                    column=spec.name,
                )
            if spec.datatype in ("INT64", "INT32"):
                raise SchemaError(f"column {spec.name!r} ({spec.datatype}) cannot hold nulls", column=spec.name)
    if spec.datatype in ("INT64", "INT32"):
        _check_integers(spec, out)
    target = NUMPY_DTYPES[spec.datatype]
    return out if out.dtype == target else out.astype(target)


def _encode_bool(spec: ColumnSpec, values: Any) -> np.ndarray:
    arr = values if isinstance(values, np.ndarray) else np.asarray(values)
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind == "O":
        ok = np.fromiter((isinstance(v, bool | np.bool_) for v in arr), dtype=bool, count=arr.size)
        if ok.all():
            return arr.astype(bool)
        row = _first_bad(ok)
        what = "null" if arr[row] is None else _describe(arr[row])
        raise SchemaError(f"column {spec.name!r} expects BOOL; received {what} at row {row}", column=spec.name)
    raise SchemaError(f"column {spec.name!r} expects BOOL; received {arr.dtype} values", column=spec.name)


_ARROW_MIN_ROWS = 64  # below this a Python loop beats the Arrow round trip
_LIST_MIN_ROWS = 1  # JSON lists of numbers take the C conversion from this length on


def _encode_text_arrow(spec: ColumnSpec, arr: Any) -> np.ndarray | None:
    """Vectorised validation of a large object column; None when it holds non-text values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.Array | pa.ChunkedArray):
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            return None  # numbers, dates...: the loop below names the first non-text value and its row
        text = arr
    else:
        try:
            text = pa.array(arr, type=pa.string(), from_pandas=True)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            return None  # the loop below finds and names the offending value
    if text.null_count:
        if not spec.nullable:
            row = int(np.flatnonzero(np.asarray(text.is_null()))[0])
            raise SchemaError(
                f"column {spec.name!r} is not nullable (training data had no missing values); "
                f"received null at row {row}",
                column=spec.name,
            )
        text = pc.fill_null(text, MISSING_STRING)
    return np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)


_TEXT_TYPES = frozenset({str, type(None)})


def _text_from_list(spec: ColumnSpec, values: list[Any]) -> np.ndarray | None:
    """A JSON-decoded list of strings and nulls as an object array; None if it holds anything else."""
    types = set(map(type, values))
    if not types <= _TEXT_TYPES:
        return None
    if type(None) in types:
        if not spec.nullable:
            row = values.index(None)
            raise SchemaError(
                f"column {spec.name!r} is not nullable (training data had no missing values); "
                f"received null at row {row}",
                column=spec.name,
            )
        values = [MISSING_STRING if v is None else v for v in values]
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _encode_text(spec: ColumnSpec, values: Any) -> np.ndarray:
    if type(values) is list:
        fast = _text_from_list(spec, values)
        if fast is not None:
            return fast
    if not isinstance(values, np.ndarray) and hasattr(values, "null_count"):
        fast = _encode_text_arrow(spec, values)
        if fast is not None:
            return fast
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.dtype == object and arr.ndim == 1 and len(arr) >= _ARROW_MIN_ROWS:
        fast = _encode_text_arrow(spec, arr)
        if fast is not None:
            return fast
    if arr.dtype.kind in "fiub" and arr.size:
        raise SchemaError(
            f"column {spec.name!r} expects BYTES (text); received {arr.dtype} values such as {arr.ravel()[0]!r}",
            column=spec.name,
        )
    if arr.dtype != object:
        arr = arr.astype(object)
    out = np.empty(arr.shape, dtype=object)
    for i, v in enumerate(arr):
        if isinstance(v, str):
            out[i] = v
        elif v is None or (isinstance(v, float) and v != v) or v is pd.NA:
            if not spec.nullable:
                raise SchemaError(
                    f"column {spec.name!r} is not nullable (training data had no missing values); "
                    f"received null at row {i}",
                    column=spec.name,
                )
            out[i] = MISSING_STRING
        elif isinstance(v, bytes):
            out[i] = v.decode("utf-8", errors="replace")
        else:
            raise SchemaError(
                f"column {spec.name!r} expects BYTES (text); received {_describe(v)} at row {i}", column=spec.name
            )
    return out


def encode_column(spec: ColumnSpec, values: Any) -> np.ndarray:
    """Validate one column and return it as a 1-D array of the signature's type."""
    if spec.datatype == "BYTES":
        return _encode_text(spec, values)
    if spec.datatype == "BOOL":
        return _encode_bool(spec, values)
    return _encode_numeric(spec, values)


def encode_columns(
    signature: Signature,
    columns: Mapping[str, Any],
    *,
    n_rows: int | None = None,
    encoded: Mapping[str, np.ndarray] | None = None,
) -> EncodedColumns:
    """Validate a mapping of column -> values against ``signature`` and return typed arrays.

    ``encoded`` holds columns a caller already validated; they are passed through unchanged.
    """
    done = encoded or {}
    missing = [c.name for c in signature.inputs if c.name not in columns and c.name not in done]
    if missing:
        raise SchemaError(
            f"missing input column(s) {missing}; the model takes {signature.input_names}", column=missing[0]
        )
    out = EncodedColumns()
    for spec in signature.inputs:
        arr = done[spec.name] if spec.name in done else encode_column(spec, columns[spec.name])
        if arr.ndim != 1:
            raise SchemaError(
                f"column {spec.name!r} must be one-dimensional; got shape {list(arr.shape)}", column=spec.name
            )
        if n_rows is None:
            n_rows = len(arr)
        elif len(arr) != n_rows:
            raise SchemaError(
                f"column {spec.name!r} has {len(arr)} values; expected {n_rows} like the other columns",
                column=spec.name,
            )
        out[spec.name] = arr
    if not n_rows:
        raise SchemaError("the input has no rows; send at least one row")
    return out


def _column_values(values: Any) -> np.ndarray:
    """A pandas column's values as numpy: numbers as-is, nullable numbers as float, text as objects."""
    if isinstance(values, np.ndarray):
        return values
    dtype = values.dtype
    if isinstance(dtype, pd.StringDtype) and len(values) < _ARROW_MIN_ROWS:
        # Checked first: the generic dtype predicates below cost more than the conversion.
        # The Arrow chunk's to_pylist is 4x cheaper than to_numpy for a handful of rows.
        arrow = getattr(values, "_pa_array", None)
        return np.array(arrow.to_pylist(), dtype=object) if arrow is not None else values.to_numpy(dtype=object)
    if pd.api.types.is_bool_dtype(dtype):
        # Booleans stay booleans (with None for NA) so the encoder applies its one rule: only BOOL
        # columns and the FP64 0/1/NaN columns made of training bools with nulls accept them.
        return values.to_numpy(dtype=bool) if not values.isna().any() else values.to_numpy(object, na_value=None)
    if pd.api.types.is_numeric_dtype(dtype):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    if len(values) >= _ARROW_MIN_ROWS and hasattr(values, "__arrow_array__"):
        # Arrow-backed strings (pandas 3's default) go to the vectorised text path as they are.
        import pyarrow as pa

        arrow = pa.array(values)
        if pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type):
            return arrow
    return np.asarray(values, dtype=object)


def encode_frame(signature: Signature, frame: pd.DataFrame) -> EncodedColumns:
    """Validate a DataFrame against ``signature`` and return typed column arrays."""
    if not isinstance(frame, pd.DataFrame):
        raise SchemaError(f"input must be a pandas DataFrame; got {type(frame).__name__} instead")
    if len(frame) == 0:
        raise SchemaError("the input frame has no rows; pass at least one row")
    columns = frame.columns
    # DataFrame.__getitem__ builds a Series per column (~10 us each); reading the column array
    # by position is 20x cheaper and matters for 1-row calls. Fall back if pandas drops it.
    get_array = getattr(frame, "_get_column_array", None)
    values: dict[str, Any] = {}
    encoded: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        try:
            loc = columns.get_loc(spec.name)
        except KeyError:
            continue  # encode_columns reports every missing column at once
        if not isinstance(loc, int):
            raise SchemaError(f"input column {spec.name!r} appears more than once", column=spec.name)
        raw = get_array(loc) if get_array is not None else frame[spec.name].array
        fast = _fast_numeric(spec, raw)
        if fast is not None:
            encoded[spec.name] = fast
        else:
            values[spec.name] = _column_values(raw)
    if not values and len(encoded) == len(signature.inputs):
        return EncodedColumns(encoded)
    return encode_columns(signature, values, n_rows=len(frame), encoded=encoded)


def encode_arrow(signature: Signature, data: pa.RecordBatch | pa.Table) -> EncodedColumns:
    """Validate an Arrow batch against ``signature`` and return typed column arrays (what
    :func:`encode_frame` returns for ``data.to_pandas()``), text also dictionary-encoded.

    Text is validated once per distinct value: a Parquet dictionary column as read, any other text
    column after ``dictionary_encode`` (a hash per row, 4x cheaper than a Python string per row).
    """
    names = data.schema.names
    missing = [c.name for c in signature.inputs if c.name not in names]
    if missing:
        raise SchemaError(
            f"missing input column(s) {missing}; the model takes {signature.input_names}", column=missing[0]
        )
    if data.num_rows == 0:
        raise SchemaError("the input has no rows; send at least one row")
    out = EncodedColumns()
    for spec in signature.inputs:
        col = data.column(spec.name)
        if isinstance(col, pa.ChunkedArray):
            # combine_chunks unifies the chunks' dictionaries into one.
            col = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
        if spec.datatype == "BYTES":
            text = _text_dictionary(spec, col)
            if text is not None:
                out.dictionaries[spec.name] = text
                out[spec.name] = text.values[text.indices]
                continue
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        if spec.datatype == "BYTES":  # Arrow text has its own vectorised check, which names the row
            out[spec.name] = encode_column(spec, col)
            continue
        values = col.to_numpy(zero_copy_only=False)  # as pandas would give it: nulls as NaN or None
        fast = _fast_numeric(spec, values)
        out[spec.name] = fast if fast is not None else encode_column(spec, values)
    return out


def _text_dictionary(spec: ColumnSpec, col: pa.Array) -> TextDictionary | None:
    """A text column as validated distinct values + row indices; None to take the per-row path."""
    import pyarrow.compute as pc

    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = col.dictionary_encode()
    elif not pa.types.is_dictionary(col.type):
        return None
    dictionary = col.dictionary
    if not (pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type)):
        return None
    if dictionary.null_count or (col.null_count and not spec.nullable):
        return None  # the per-row path names the first null's row
    values = np.asarray(dictionary.to_numpy(zero_copy_only=False), dtype=object)
    indices = col.indices
    if col.null_count:
        values = np.append(values, np.array([MISSING_STRING], dtype=object))
        indices = pc.fill_null(indices, pa.scalar(len(values) - 1, indices.type))
    return TextDictionary(values, indices.to_numpy().astype(np.int64, copy=False))


def _fast_numeric(spec: ColumnSpec, raw: Any) -> np.ndarray | None:
    """The common case without the general checks: a numpy column already of the right kind."""
    if type(raw) is not np.ndarray or raw.ndim != 1:
        return None
    kind = raw.dtype.kind
    if spec.datatype == "FP64" and kind == "f":
        if not spec.nullable and np.isnan(raw).any():
            return None  # let the general path name the row
        return raw if raw.dtype == np.float64 else raw.astype(np.float64)
    if spec.datatype == "INT64" and kind == "i":  # uint64 goes the checked way (values above 2^63)
        return raw if raw.dtype == np.int64 else raw.astype(np.int64)
    return None


def frame_from_columns(signature: Signature, columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Rebuild a raw-input DataFrame (nulls restored) from encoded columns, for Python runtimes."""
    data: dict[str, Any] = {}
    for spec in signature.inputs:
        arr = columns[spec.name]
        if spec.datatype == "BYTES":
            # A missing string becomes the training data's own marker, which the pipeline was fitted on.
            missing = np.empty(1, dtype=object)
            missing[0] = spec.missing_value
            arr = np.where(arr == MISSING_STRING, missing, arr)
        data[spec.name] = arr
    return pd.DataFrame(data)


def decode_outputs(
    signature: Signature,
    outputs: Mapping[str, np.ndarray],
    index: pd.Index | None = None,
    columns: pd.Index | None = None,
) -> pd.DataFrame:
    """Return the outputs as a DataFrame with one column per declared output, in order."""
    names = signature.output_names
    arrays = [outputs[name] for name in names]
    if index is None:
        index = pd.RangeIndex(len(arrays[0]))
    try:
        # The public constructor re-infers every column (~60 us for two); this skips that.
        # Callers on a hot path pass a prebuilt ``columns`` Index: building one costs ~18 us.
        cols = columns if columns is not None else pd.Index(names)
        return pd.DataFrame._from_arrays(arrays, columns=cols, index=index, verify_integrity=False)
    except (AttributeError, TypeError):
        return pd.DataFrame(dict(zip(names, arrays, strict=True)), index=index)


def records_to_columns(
    signature: Signature, records: Sequence[Mapping[str, Any]], *, reject_extra: bool = False
) -> dict[str, list[Any]]:
    """Turn row records (``[{column: value}]``) into columns, naming the row of a missing (or extra) key."""
    cols: dict[str, list[Any]] = {spec.name: [] for spec in signature.inputs}
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise SchemaError(f"instance {i} must be an object of column: value; got {type(rec).__name__}")
        for name, bucket in cols.items():
            if name not in rec:
                raise SchemaError(f"instance {i} is missing input {name!r}", column=name)
            bucket.append(rec[name])
        if reject_extra and len(rec) != len(cols):
            extra = next(k for k in rec if k not in cols)
            raise SchemaError(f"instance {i} has unknown input {extra!r}; the model takes {list(cols)}", column=extra)
    return cols
