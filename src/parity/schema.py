"""The signature of a model: its raw input columns and its business outputs.

Datatypes are Open Inference Protocol names (``FP64``, ``FP32``, ``INT64``, ``BOOL``, ``BYTES``)
so the same signature serves Python, the model server and clients in other languages.
A signature is inferred once, from the raw training frame, and then enforced at every
boundary (``Artifact.predict``, the server) by :mod:`parity.codec`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from parity.errors import SchemaError, UnsupportedModelError

log = logging.getLogger("parity.schema")

__all__ = [
    "DATATYPES",
    "MAX_CATEGORIES",
    "MISSING_MARKERS",
    "MISSING_STRING",
    "ColumnSpec",
    "OutputSpec",
    "Signature",
    "infer_signature",
]

Datatype = Literal["FP64", "FP32", "INT64", "INT32", "BOOL", "BYTES"]
DATATYPES: tuple[Datatype, ...] = get_args(Datatype)
"""The signature datatypes (Open Inference Protocol names), in one place: the Literal above."""

# ONNX string tensors cannot hold a null, so a missing string travels as this one-character
# value: U+E000, the first Private Use code point, which real text data does not use (NUL cannot
# serve: onnxruntime truncates strings at it),
# while the empty string stays an ordinary value, as it is for scikit-learn.
MISSING_STRING = "\ue000"

# How a text column spells "missing" in the frame the pipeline was trained on: NaN (what
# pd.read_csv and pandas 3's str dtype produce), None, or pd.NA (the nullable "string" dtype).
# scikit-learn treats these differently (for SimpleImputer/OneHotEncoder None is a category and NaN
# is missing), so each text column keeps the one marker its training data used; every missing form
# received at prediction time (None, NaN, pd.NA, JSON null) travels as MISSING_STRING and means it.
MissingMarker = Literal["NaN", "None", "NA"]
MISSING_MARKERS: dict[str, Any] = {"NaN": np.nan, "None": None, "NA": pd.NA}

# Categories beyond this many are not listed in the signature (the profile still counts them).
MAX_CATEGORIES = 1000


@dataclass(frozen=True)
class ColumnSpec:
    """One raw input column: name, datatype, nullability, and the training domain."""

    name: str
    datatype: Datatype
    nullable: bool
    categories: tuple[str, ...] | None = None
    """Distinct training values of a BYTES column (None when there were more than MAX_CATEGORIES)."""
    minimum: float | None = None
    maximum: float | None = None
    missing: MissingMarker | None = None
    """BYTES columns: the training data's missing-value marker (see MISSING_MARKERS)."""

    @property
    def missing_value(self) -> Any:
        """The Python object a missing value of this column is, as the pipeline saw it in training."""
        if self.datatype == "BYTES":
            return MISSING_MARKERS[self.missing or "NaN"]
        return np.nan

    @property
    def kind(self) -> Literal["numeric", "categorical", "boolean"]:
        """How the profiler and the edge-case generator treat this column."""
        if self.datatype == "BYTES":
            return "categorical"
        if self.datatype == "BOOL":
            return "boolean"
        return "numeric"

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest form of this column."""
        out: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "nullable": self.nullable, "shape": [-1]}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.minimum is not None:
            out["range"] = [self.minimum, self.maximum]
        if self.missing is not None:
            out["missing"] = self.missing
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnSpec:
        """Read a column from its manifest form."""
        rng = d.get("range")
        cats = d.get("categories")
        return cls(
            name=d["name"],
            datatype=d["datatype"],
            nullable=bool(d["nullable"]),
            categories=tuple(cats) if cats is not None else None,
            minimum=None if rng is None else float(rng[0]),
            maximum=None if rng is None else float(rng[1]),
            missing=d.get("missing"),
        )


@dataclass(frozen=True)
class OutputSpec:
    """One declared output: a column of ``Artifact.predict`` and a tensor of the ONNX graph."""

    name: str
    datatype: Datatype
    description: str = ""
    labels: tuple[Any, ...] | None = None
    """Possible values of a label output."""

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest form of this output."""
        out: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "shape": [-1]}
        if self.description:
            out["description"] = self.description
        if self.labels is not None:
            out["labels"] = list(self.labels)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutputSpec:
        """Read an output from its manifest form."""
        labels = d.get("labels")
        return cls(d["name"], d["datatype"], d.get("description", ""), tuple(labels) if labels is not None else None)


@dataclass(frozen=True)
class Signature:
    """Inputs and outputs of a model, in order."""

    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[OutputSpec, ...] = field(default_factory=tuple)

    @property
    def input_names(self) -> list[str]:
        """Names of the raw input columns, in order."""
        return [c.name for c in self.inputs]

    @property
    def output_names(self) -> list[str]:
        """Names of the declared outputs, in order."""
        return [o.name for o in self.outputs]

    def input(self, name: str) -> ColumnSpec:
        """Return the input column called ``name``."""
        for col in self.inputs:
            if col.name == name:
                return col
        raise SchemaError(f"unknown input {name!r}; the model takes {self.input_names}", column=name)

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest form of this signature."""
        return {"inputs": [c.to_dict() for c in self.inputs], "outputs": [o.to_dict() for o in self.outputs]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Signature:
        """Read a signature from its manifest form."""
        return cls(
            tuple(ColumnSpec.from_dict(c) for c in d["inputs"]),
            tuple(OutputSpec.from_dict(o) for o in d.get("outputs", [])),
        )

    def with_outputs(self, outputs: Iterable[OutputSpec]) -> Signature:
        """Return a copy with ``outputs`` declared."""
        return Signature(self.inputs, tuple(outputs))


def _is_text(values: np.ndarray) -> bool:
    return all(isinstance(v, str) for v in values)


def _marker_of(value: Any) -> MissingMarker:
    if value is None:
        return "None"
    if value is pd.NA:
        return "NA"
    return "NaN"


def text_missing_marker(name: str, series: pd.Series) -> MissingMarker:
    """The marker missing values of a text column carry; warns when training data mixes None and NaN."""
    values = series.to_numpy(dtype=object)
    nulls = values[pd.isna(values)]
    if not len(nulls):
        # No null in training: a later null arrives as pandas' own missing value for this dtype
        # (NaN for object, category and pandas 3's str; pd.NA for the nullable "string" dtype).
        na = getattr(series.dtype, "na_value", np.nan)
        return "NA" if na is pd.NA else "NaN"
    counts: dict[MissingMarker, int] = {}
    for value in nulls:
        marker = _marker_of(value)
        counts[marker] = counts.get(marker, 0) + 1
    marker = max(counts, key=lambda m: counts[m])
    if len(counts) > 1:
        spelled = ", ".join(f"{n} x {m}" for m, n in sorted(counts.items()))
        log.warning(
            "column %r marks missing text in more than one way (%s); scikit-learn treats None as a category "
            "and NaN as missing, so the trained pipeline saw two different values. parity treats every missing "
            "value of this column as %s (the most frequent). Normalise before fitting, e.g. "
            "df[%r] = df[%r].where(df[%r].notna(), np.nan)",
            name,
            spelled,
            marker,
            name,
            name,
            name,
        )
    return marker


def _column_spec(name: str, series: pd.Series) -> ColumnSpec:
    dtype = series.dtype
    nulls = int(series.isna().sum())
    nullable = nulls > 0
    if pd.api.types.is_bool_dtype(dtype):
        # A bool column with nulls cannot be a BOOL tensor; it travels as 0.0/1.0/NaN.
        if nullable:
            return ColumnSpec(name, "FP64", True, minimum=0.0, maximum=1.0)
        return ColumnSpec(name, "BOOL", False)
    if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        finite = values[np.isfinite(values)]
        lo = float(finite.min()) if finite.size else None
        hi = float(finite.max()) if finite.size else None
        if pd.api.types.is_integer_dtype(dtype) and not nullable:
            datatype: Datatype = "INT32" if dtype == np.int32 else "INT64"
        elif dtype == np.float32:
            datatype = "FP32"
        else:
            datatype = "FP64"
        return ColumnSpec(name, datatype, nullable, minimum=lo, maximum=hi)
    if isinstance(dtype, pd.CategoricalDtype) and not all(isinstance(c, str) for c in dtype.categories):
        raise UnsupportedModelError(
            f"column {name!r} has dtype category with {dtype.categories.dtype} categories, which parity cannot "
            f"carry; parity carries categories of strings: convert it with df[{name!r}].astype(str) "
            f"(or to numbers with df[{name!r}].astype(float)) before fitting and packaging"
        )
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype) or dtype is np.dtype(object):
        present = series.dropna().to_numpy(dtype=object)
        if not _is_text(present):
            bad = next(v for v in present if not isinstance(v, str))
            raise UnsupportedModelError(
                f"column {name!r} (dtype {dtype}) mixes text with {type(bad).__name__} values (e.g. {bad!r}); "
                f"convert it to one type (e.g. df[{name!r}].astype(str), or numbers) before fitting and packaging"
            )
        distinct = sorted(set(present.tolist()))
        cats = tuple(distinct) if len(distinct) <= MAX_CATEGORIES else None
        return ColumnSpec(name, "BYTES", nullable, categories=cats, missing=text_missing_marker(name, series))
    raise UnsupportedModelError(
        f"column {name!r} has dtype {dtype}, which parity cannot carry; convert it to numbers, bools or strings "
        f"before fitting and packaging (e.g. a date to a timestamp: df[{name!r}].astype('int64') // 10**9)"
    )


def infer_signature(data: pd.DataFrame, exclude: Sequence[str] = ()) -> Signature:
    """Infer the input signature from the raw training frame."""
    if not isinstance(data, pd.DataFrame):
        raise SchemaError(f"`data` must be a pandas DataFrame of raw inputs; got {type(data).__name__} instead")
    if len(data) == 0:
        raise SchemaError("`data` has no rows; pass the raw training inputs")
    names = [str(c) for c in data.columns]
    if len(set(names)) != len(names):
        raise SchemaError(f"`data` has duplicated column names: {names}")
    inputs = []
    for col in data.columns:
        if col in exclude:
            continue
        if not isinstance(col, str):
            raise SchemaError(f"column names must be strings; got {col!r} ({type(col).__name__})")
        inputs.append(_column_spec(col, data[col]))
    return Signature(tuple(inputs))


def json_safe(value: Any) -> Any:
    """Return ``value`` with numpy scalars turned into Python ones and NaN into None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
