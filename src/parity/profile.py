"""Streaming data profiles: one code path for the training reference and for serving data.

A :class:`ProfileSpec` freezes the binning decided from the *training* data; a :class:`Profile` holds
mergeable counts computed under that spec, batch by batch. Packaging stores the reference profile in the
artifact as ``profile.json``; skew detection profiles serving Parquet with the same spec and compares.

Format ``parity.profile/1`` (``Profile.to_dict``; a few KB whatever the row count)::

    {"format": "parity.profile/1", "rows": int,
     "spec": {"columns": {name: {"kind": "numeric", "edges": [float, ...]}
                               | {"kind": "categorical", "categories": [str, ...], "rare": [str, ...] | null}
                               | {"kind": "boolean"}}},
     "columns": {name: {"kind": "numeric", "count", "nulls", "neg_inf", "pos_inf": int,
                        "mean", "m2": float, "min", "max": float | null, "bins": [int, ...]}
                     | {"kind": "categorical", "count", "nulls", "empty", "other", "unseen": int,
                        "counts": [int, ...], "unseen_examples": [str, ...]}
                     | {"kind": "boolean", "count", "nulls", "true": int}}}

Numeric: ``count`` rows seen; ``nulls`` None/NaN; +/-inf is a value counted in ``neg_inf``/``pos_inf`` and in
the under/overflow bins but excluded from ``mean``/``m2``/``min``/``max`` (JSON has no inf). ``mean`` and
``m2`` (sum of squared deviations) cover the finite values and merge with Chan's parallel formula: counts,
bins, min and max merge exactly; mean/std agree with a single pass to ~1e-12 relative to the data's scale.
With ``k`` edges ``e`` (from training quantiles, strictly increasing, k >= 2) ``bins`` has ``k + 1`` counts:
``bins[0]`` is x < e[0] (underflow), ``bins[i]`` is e[i-1] <= x < e[i] (``np.searchsorted(e, x, "right")``:
a value equal to an inner edge goes to the bin on its right), except that the last inner bin ``bins[k-1]`` is
closed, e[k-2] <= x <= e[k-1], so the training maximum is not overflow; ``bins[k]`` is x > e[k-1] (overflow).

Categorical: values compare as strings (numbers are cast by Arrow: 1.0 -> "1"); "" is a value (also counted in
``empty``), not a null. ``counts[i]`` counts ``categories[i]`` (top-K training values by frequency, ties by
value); ``other`` counts every other non-null value. ``rare`` lists the other training values when the training
set had at most 1000 distinct values, else null: then ``unseen`` (values never seen in training) falls back to
"not in the top-K" and equals ``other``. ``unseen_examples`` are the 10 lexicographically smallest distinct
unseen values cut to 100 characters, so merging is exact and order-independent.

Parquet (``profile_parquet``): files are streamed by record batches, never loaded whole. Every row group is
profiled on its own (``profile_row_groups``, which Spark and Dask tasks run too) and merged in file/row-group
order, so ``processes`` or the engine changes the speed, never a single bit of the result. Workers are
*spawned* (fork is unsafe with Arrow/BLAS threads): scripts must call it from under
``if __name__ == "__main__":``. ``filter`` is a ``pyarrow.compute`` expression applied to every batch;
columns it uses that are not profiled must be listed in ``filter_columns``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from parity._io import atomic_write_json
from parity.errors import ProfileError, SchemaError

__all__ = [
    "PROFILE_FORMAT",
    "BooleanProfile",
    "BooleanSpec",
    "CategoricalProfile",
    "CategoricalSpec",
    "ColumnKind",
    "ColumnProfile",
    "NumericProfile",
    "NumericSpec",
    "Profile",
    "ProfileSpec",
    "profile_frame",
    "profile_parquet",
    "profile_row_groups",
]

PROFILE_FORMAT = "parity.profile/1"
ColumnKind: TypeAlias = Literal["numeric", "categorical", "boolean"]
Frame: TypeAlias = pd.DataFrame | pa.RecordBatch | pa.Table
_Arrow: TypeAlias = pa.Array | pa.ChunkedArray
KNOWN_LIMIT = 1000  # keep the full training category set only up to this many distinct values
N_EXAMPLES = 10
EXAMPLE_CHARS = 100
_BLOCK = 1 << 16  # values sorted at once when binning: cache-sized
_LARGE = pa.large_string()
_EXPECTED = {"numeric": "integer, float or decimal", "categorical": "string-like", "boolean": "bool"}


def _accepts(kind: str, t: pa.DataType) -> bool:
    """Return whether Arrow type ``t`` can be profiled as ``kind`` (all-null columns fit every kind)."""
    t = t.value_type if pa.types.is_dictionary(t) else t
    number = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    if pa.types.is_null(t) or (kind == "numeric" and number) or (kind == "boolean" and pa.types.is_boolean(t)):
        return True
    stringy = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
    return kind == "categorical" and (stringy or number or pa.types.is_boolean(t) or pa.types.is_temporal(t))


def _check(name: str, kind: str, t: pa.DataType, where: str = "") -> None:
    """Raise SchemaError naming the column, expected kind and received type when they do not fit."""
    if not _accepts(kind, t):
        raise SchemaError(
            f"column {name!r}{where}: expected {kind} ({_EXPECTED[kind]}), received {t}; "
            "fix the data type upstream or declare the column's kind in the profile spec",
            column=name,
        )


def _arrow(col: pd.Series | _Arrow) -> _Arrow:
    """Convert a pandas column to Arrow (NaN/None -> null); Arrow input passes through."""
    if not isinstance(col, pd.Series):
        return col
    try:
        return pa.array(col, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed-type object column: categorical values compare as strings, missing values stay null.
        mask = col.isna().to_numpy(dtype=bool)
        return pa.array(col.astype(str).to_numpy(dtype=object), type=pa.string(), mask=mask)


def _float64(col: pd.Series | _Arrow, name: str) -> np.ndarray:
    """Return a numeric column as float64 with NaN for nulls (integers beyond 2**53 round)."""
    if isinstance(col, pd.Series) and isinstance(col.dtype, np.dtype) and col.dtype.kind in "fiu":
        return col.to_numpy(dtype=np.float64)  # zero-copy for float64: the common fast path
    arr = _arrow(col)
    _check(name, "numeric", arr.type)
    arr = arr if arr.type == pa.float64() else pc.cast(arr, pa.float64(), safe=False)
    return arr.to_numpy(zero_copy_only=False)  # zero-copy unless nulls must become NaN


def _value_counts(col: pd.Series | _Arrow, name: str) -> tuple[pa.Array, np.ndarray, int]:
    """Return (distinct non-null values as large_string, their counts, null count) of a categorical column."""
    arr = _arrow(col)
    _check(name, "categorical", arr.type)
    t = arr.type.value_type if pa.types.is_dictionary(arr.type) else arr.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(arr.type)):
        arr = pc.cast(arr, _LARGE)
    # Hash every row once; everything after works on the (usually few) distinct values.
    vc = pc.value_counts(arr)
    values, counts = vc.field("values"), vc.field("counts")
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if values.null_count:
        keep = values.is_valid()
        values, counts = values.filter(keep), counts.filter(keep)
    n = counts.to_numpy(zero_copy_only=False).astype(np.int64)
    # Nulls by difference: a dictionary may also hold null *values* behind valid indices.
    return pc.cast(values, _LARGE), n, len(arr) - int(n.sum())


@dataclass(frozen=True, eq=False)
class NumericSpec:
    """Histogram edges of a numeric column, from training quantiles."""

    edges: np.ndarray
    _search: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        e = np.array(self.edges, dtype=np.float64)
        if e.ndim != 1 or e.size < 2 or not np.isfinite(e).all() or (np.diff(e) <= 0).any():
            raise ProfileError(f"numeric edges must be >= 2 finite, strictly increasing floats, received {e!r}")
        e.setflags(write=False)
        # Searching against a copy whose last edge is nudged up keeps x == edges[-1] in the last inner bin.
        search = e.copy()
        search[-1] = np.nextafter(e[-1], np.inf)
        object.__setattr__(self, "edges", e)
        object.__setattr__(self, "_search", search)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumericSpec) and np.array_equal(self.edges, other.edges)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class CategoricalSpec:
    """Top-K training categories, plus the other training values when there were few."""

    categories: tuple[str, ...]
    rare: tuple[str, ...] | None = ()
    _cats: pa.Array = field(init=False, repr=False, compare=False)
    _known: pa.Array | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cats, rare = tuple(self.categories), None if self.rare is None else tuple(self.rare)
        if len(set(cats + (rare or ()))) != len(cats) + len(rare or ()):
            raise ProfileError(f"categorical spec has duplicate values: {cats!r} / {rare!r}")
        object.__setattr__(self, "categories", cats)
        object.__setattr__(self, "rare", rare)
        object.__setattr__(self, "_cats", pa.array(cats, _LARGE))
        object.__setattr__(self, "_known", None if rare is None else pa.array(cats + rare, _LARGE))


@dataclass(frozen=True)
class BooleanSpec:
    """A boolean column needs no binning."""


ColumnSpec: TypeAlias = NumericSpec | CategoricalSpec | BooleanSpec


def _kind(spec: ColumnSpec) -> ColumnKind:
    """Return the kind name of a column spec."""
    return "numeric" if isinstance(spec, NumericSpec) else "boolean" if isinstance(spec, BooleanSpec) else "categorical"


def _names(data: Frame) -> list[Any]:
    """Return the column names of a pandas or Arrow frame."""
    if isinstance(data, pd.DataFrame):
        return list(data.columns)
    if isinstance(data, pa.RecordBatch | pa.Table):
        return list(data.schema.names)
    raise ProfileError(f"expected a pandas DataFrame, pyarrow RecordBatch or Table, received {type(data).__name__}")


def _column(data: Frame, name: str, names: list[Any]) -> pd.Series | _Arrow:
    """Return one column, raising SchemaError when it is missing."""
    if name not in names:
        raise SchemaError(
            f"column {name!r} is missing: expected by the profile spec, received {names[:30]}", column=name
        )
    return data[name] if isinstance(data, pd.DataFrame) else data.column(name)


@dataclass(frozen=True)
class ProfileSpec:
    """The frozen binning of every profiled column, decided from the training data."""

    columns: dict[str, ColumnSpec]

    @classmethod
    def from_reference(
        cls, data: Frame, columns: Mapping[str, ColumnKind] | None = None, bins: int = 20, top_k: int = 50
    ) -> ProfileSpec:
        """Decide edges (``bins`` quantile bins) and top-``top_k`` categories from in-memory training data."""
        names = _names(data)
        if columns is None:
            columns = {str(n): _infer_kind(_arrow(_column(data, n, names)).type) for n in names}
        out: dict[str, ColumnSpec] = {}
        for name, kind in columns.items():
            col = _column(data, name, names)
            if kind == "numeric":
                x = _float64(col, name)
                finite = x[np.isfinite(x)]
                if finite.size == 0:
                    raise ProfileError(f"column {name!r}: no finite values in the reference data to place bin edges")
                edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)))
                if edges.size == 1:  # constant column: one bin just wide enough to hold the value
                    edges = np.array([edges[0], np.nextafter(edges[0], np.inf)])
                out[name] = NumericSpec(edges)
            elif kind == "categorical":
                values, counts, _ = _value_counts(col, name)
                table = pa.table({"v": values, "c": counts}).sort_by([("c", "descending"), ("v", "ascending")])
                ordered = table.column("v")
                rare = tuple(sorted(ordered.slice(top_k).to_pylist())) if len(ordered) <= KNOWN_LIMIT else None
                out[name] = CategoricalSpec(tuple(ordered.slice(0, top_k).to_pylist()), rare)
            elif kind == "boolean":
                _check(name, "boolean", _arrow(col).type)
                out[name] = BooleanSpec()
            else:
                raise ProfileError(f"column {name!r}: unknown kind {kind!r}, expected numeric, categorical or boolean")
        return cls(out)

    def select(self, names: Sequence[str]) -> ProfileSpec:
        """Return the spec restricted to ``names``."""
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise ProfileError(f"columns {missing} are not in the profile spec (known: {sorted(self.columns)})")
        return ProfileSpec({n: self.columns[n] for n in names})

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe form of the spec."""
        cols: dict[str, Any] = {}
        for name, s in self.columns.items():
            cols[name] = {"kind": _kind(s)}
            if isinstance(s, NumericSpec):
                cols[name]["edges"] = [float(v) for v in s.edges]
            elif isinstance(s, CategoricalSpec):
                cols[name].update(categories=list(s.categories), rare=None if s.rare is None else list(s.rare))
        return {"columns": cols}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProfileSpec:
        """Rebuild a spec from :meth:`to_dict` output."""
        out: dict[str, ColumnSpec] = {}
        for name, c in d["columns"].items():
            kind = c["kind"]
            if kind == "numeric":
                out[name] = NumericSpec(np.asarray(c["edges"], dtype=np.float64))
            elif kind == "categorical":
                out[name] = CategoricalSpec(tuple(c["categories"]), None if c["rare"] is None else tuple(c["rare"]))
            elif kind == "boolean":
                out[name] = BooleanSpec()
            else:
                raise ProfileError(f"column {name!r}: unknown kind {kind!r} in profile spec")
        return cls(out)


def _infer_kind(t: pa.DataType) -> ColumnKind:
    """Guess a column kind from its Arrow type: bool, number, else categorical."""
    if pa.types.is_boolean(t):
        return "boolean"
    # Dictionary-encoded (pandas "category") columns are categorical even when their values are numbers.
    return (
        "numeric"
        if not pa.types.is_dictionary(t) and _accepts("numeric", t) and not pa.types.is_null(t)
        else "categorical"
    )


def _quantile_property(q: float) -> property:
    """Build a property returning the approximate ``q`` quantile."""

    def get(self: NumericProfile) -> float | None:
        return self.quantile(q)

    get.__doc__ = f"Approximate {q:g} quantile, interpolated inside histogram bins."
    return property(get)


@dataclass(eq=False)
class _Stats:
    """Shared JSON form of the per-column stats dataclasses (every field but ``spec``)."""

    kind: ClassVar[str]
    spec: Any = field(repr=False)

    def _ok(self) -> bool:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe form of the stats (ints as Python ints)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "spec"}
        return {"kind": self.kind, **{k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in values.items()}}

    @classmethod
    def from_dict(cls, spec: Any, d: Mapping[str, Any]) -> Self:
        """Rebuild the stats from :meth:`to_dict` output, checking that the counts add up."""
        kw = {f.name: d[f.name] for f in fields(cls) if f.name != "spec"}
        out = cls(spec, **{k: np.asarray(v, np.int64) if k in ("bins", "counts") else v for k, v in kw.items()})
        if not out._ok():
            raise ProfileError(f"malformed profile column: counts do not add up or do not fit the spec: {d!r:.300}")
        return out


@dataclass(eq=False)
class NumericProfile(_Stats):
    """Mergeable stats of a numeric column: counts, Chan mean/M2, finite min/max and histogram."""

    kind: ClassVar[str] = "numeric"
    spec: NumericSpec = field(repr=False)
    count: int = 0
    nulls: int = 0
    neg_inf: int = 0
    pos_inf: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float | None = None
    max: float | None = None
    bins: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if self.bins.size == 0:
            self.bins = np.zeros(self.spec.edges.size + 1, np.int64)

    def _ok(self) -> bool:
        shape_ok = self.bins.shape == (self.spec.edges.size + 1,) and (self.min is None) == (self.finite == 0)
        return shape_ok and self.nulls + int(self.bins.sum()) == self.count and self.finite >= 0

    @property
    def finite(self) -> int:
        """Number of finite values (those behind mean, std, min and max)."""
        return self.count - self.nulls - self.neg_inf - self.pos_inf

    @property
    def std(self) -> float | None:
        """Population standard deviation of the finite values."""
        return float(np.sqrt(self.m2 / self.finite)) if self.finite else None

    @staticmethod
    def prepare(col: pd.Series | _Arrow, name: str) -> np.ndarray:
        """Convert and type-check one batch column."""
        return _float64(col, name)

    def _add(self, x: np.ndarray) -> None:
        finite = np.isfinite(x)
        nf = int(np.count_nonzero(finite))
        nan = neg = 0
        if nf != x.size:  # slow path only for batches that hold nulls or infinities
            nan = int(np.count_nonzero(np.isnan(x)))
            neg = int(np.count_nonzero(x == -np.inf))
            self.nulls, self.neg_inf = self.nulls + nan, self.neg_inf + neg
            self.pos_inf += x.size - nf - nan - neg
        # Same counts as bincount(searchsorted(edges, x, "right")), ~6x faster: sort a block (SIMD) and search
        # the few edges in it. NaN sorts after every edge, lands in the overflow bin and is taken out again.
        below = np.zeros(self.spec._search.size, np.int64)
        for start in range(0, x.size, _BLOCK):
            below += np.searchsorted(np.sort(x[start : start + _BLOCK]), self.spec._search, side="left")
        self.bins += np.diff(below, prepend=0, append=x.size)
        self.bins[-1] -= nan
        self.count += x.size
        if nf:
            f = x if nf == x.size else x[finite]
            if not f.flags.aligned:
                # numpy sums unaligned memory through a buffer, 8192 values at a time, which rounds differently
                # from its pairwise sum: an aligned copy keeps mean/M2 a function of the values alone.
                f = f.copy()
            mean = float(f.mean())
            # Squares summed in place by numpy's pairwise sum: accurate, and no BLAS threads (np.dot) to manage.
            d = f - mean
            np.multiply(d, d, out=d)
            self._fold(nf, mean, float(d.sum()), float(f.min()) + 0.0, float(f.max()) + 0.0)  # +0.0: no -0.0

    def _fold(self, nb: int, mb: float, m2b: float, lo: float, hi: float) -> None:
        """Fold another group's (n, mean, M2, min, max) into this one (Chan et al.); counts already added."""
        na = self.finite - nb
        if na == 0:  # exact when one side is empty, so empty partitions change nothing
            self.mean, self.m2 = mb, m2b
        else:
            delta, n = mb - self.mean, na + nb
            self.mean += delta * nb / n
            self.m2 += m2b + delta * delta * na * nb / n
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)

    def merged(self, other: NumericProfile) -> NumericProfile:
        """Return the stats of both groups together."""
        out = NumericProfile(self.spec)
        for p in (self, other):
            out.count, out.nulls, out.bins = out.count + p.count, out.nulls + p.nulls, out.bins + p.bins
            out.neg_inf, out.pos_inf = out.neg_inf + p.neg_inf, out.pos_inf + p.pos_inf
            if p.finite and p.min is not None and p.max is not None:
                out._fold(p.finite, p.mean, p.m2, p.min, p.max)
        return out

    def quantile(self, q: float) -> float | None:
        """Approximate ``q`` quantile of the non-null values: linear inside the histogram bin holding it."""
        n, lo_v, hi_v = int(self.bins.sum()), self.min, self.max
        if n == 0 or lo_v is None or hi_v is None:
            return None
        e = self.spec.edges
        # Under/overflow bins are bounded by the observed finite min/max.
        lo, hi = np.concatenate(([min(lo_v, e[0])], e)), np.concatenate((e, [max(hi_v, e[-1])]))
        cum = np.cumsum(self.bins)
        target = min(max(q, 0.0), 1.0) * n
        i = int(np.argmax(self.bins > 0)) if target == 0 else min(int(np.searchsorted(cum, target)), cum.size - 1)
        v = lo[i] + (hi[i] - lo[i]) * (target - (cum[i] - self.bins[i])) / self.bins[i]
        return float(min(max(v, lo_v), hi_v))

    p01 = _quantile_property(0.01)
    p05 = _quantile_property(0.05)
    p25 = _quantile_property(0.25)
    p50 = _quantile_property(0.50)
    p75 = _quantile_property(0.75)
    p95 = _quantile_property(0.95)
    p99 = _quantile_property(0.99)


@dataclass(eq=False)
class CategoricalProfile(_Stats):
    """Mergeable stats of a categorical column: per-category, other, unseen and empty-string counts."""

    kind: ClassVar[str] = "categorical"
    spec: CategoricalSpec = field(repr=False)
    count: int = 0
    nulls: int = 0
    empty: int = 0
    other: int = 0
    unseen: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    unseen_examples: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.counts.size == 0:
            self.counts = np.zeros(len(self.spec.categories), np.int64)

    def _ok(self) -> bool:
        shape_ok = self.counts.shape == (len(self.spec.categories),) and 0 <= self.unseen <= self.count - self.nulls
        return shape_ok and self.nulls + int(self.counts.sum()) + self.other == self.count

    @staticmethod
    def prepare(col: pd.Series | _Arrow, name: str) -> tuple[pa.Array, np.ndarray, int, int]:
        """Type-check one batch column and reduce it to (distinct values, counts, nulls, rows)."""
        return (*_value_counts(col, name), len(col))

    def _add(self, prepared: tuple[pa.Array, np.ndarray, int, int]) -> None:
        values, counts, nulls, rows = prepared
        k = len(self.spec.categories)
        idx = pc.fill_null(pc.index_in(values, value_set=self.spec._cats), k).to_numpy(zero_copy_only=False)
        # Float weights are exact for sums below 2**53, far above any batch size.
        per = np.bincount(idx, weights=counts, minlength=k + 1).astype(np.int64)
        known = self.spec._known
        unseen = idx == k if known is None else ~pc.is_in(values, value_set=known).to_numpy(zero_copy_only=False)
        if unseen.any():
            # Cut before picking the smallest so that merging partitions picks exactly the same examples.
            ex = pc.unique(pc.utf8_slice_codeunits(values.filter(pa.array(unseen)), 0, EXAMPLE_CHARS))
            self._examples(ex.take(pc.bottom_k_unstable(ex, k=N_EXAMPLES)).to_pylist())
        self.count, self.nulls, self.other = self.count + rows, self.nulls + nulls, self.other + int(per[k])
        self.counts += per[:k]
        self.unseen += int(counts[unseen].sum())
        self.empty += int(counts[pc.equal(values, "").to_numpy(zero_copy_only=False)].sum())

    def _examples(self, more: list[str]) -> None:
        self.unseen_examples = sorted(set(self.unseen_examples).union(more))[:N_EXAMPLES]

    def merged(self, other: CategoricalProfile) -> CategoricalProfile:
        """Return the stats of both groups together."""
        a, b = self, other
        out = CategoricalProfile(a.spec, a.count + b.count, a.nulls + b.nulls, a.empty + b.empty, a.other + b.other)
        out.unseen, out.counts, out.unseen_examples = a.unseen + b.unseen, a.counts + b.counts, list(a.unseen_examples)
        out._examples(b.unseen_examples)
        return out


@dataclass(eq=False)
class BooleanProfile(_Stats):
    """Mergeable stats of a boolean column."""

    kind: ClassVar[str] = "boolean"
    spec: BooleanSpec = field(repr=False)
    count: int = 0
    nulls: int = 0
    true: int = 0

    def _ok(self) -> bool:
        return 0 <= self.true <= self.count - self.nulls

    @staticmethod
    def prepare(col: pd.Series | _Arrow, name: str) -> _Arrow:
        """Convert and type-check one batch column."""
        arr = _arrow(col)
        _check(name, "boolean", arr.type)
        return pc.cast(arr, pa.bool_()) if pa.types.is_null(arr.type) else arr

    def _add(self, arr: _Arrow) -> None:
        self.count, self.nulls = self.count + len(arr), self.nulls + arr.null_count
        self.true += int(pc.sum(arr).as_py() or 0)

    def merged(self, other: BooleanProfile) -> BooleanProfile:
        """Return the stats of both groups together."""
        return BooleanProfile(self.spec, self.count + other.count, self.nulls + other.nulls, self.true + other.true)


ColumnProfile: TypeAlias = NumericProfile | CategoricalProfile | BooleanProfile


def _empty_column(spec: ColumnSpec) -> ColumnProfile:
    """Return zeroed stats for one column spec."""
    if isinstance(spec, NumericSpec):
        return NumericProfile(spec)
    return CategoricalProfile(spec) if isinstance(spec, CategoricalSpec) else BooleanProfile(spec)


@dataclass(eq=False)
class Profile:
    """Mergeable profile of a data stream under a fixed :class:`ProfileSpec`."""

    spec: ProfileSpec
    rows: int = 0
    columns: dict[str, ColumnProfile] = field(default_factory=dict)

    @classmethod
    def empty(cls, spec: ProfileSpec) -> Profile:
        """Return a profile of zero rows."""
        return cls(spec, 0, {name: _empty_column(s) for name, s in spec.columns.items()})

    def update(self, batch: Frame) -> None:
        """Add one batch (pandas DataFrame, Arrow RecordBatch or Table); extra columns are ignored."""
        names = _names(batch)
        # Convert and check every column first so that a bad batch leaves the profile untouched.
        prepared = [(p, p.prepare(_column(batch, n, names), n)) for n, p in self.columns.items()]
        for p, data in prepared:
            p._add(data)  # type: ignore[arg-type]  # prepare and _add come from the same class
        self.rows += len(batch) if isinstance(batch, pd.DataFrame) else batch.num_rows

    def merge(self, other: Profile) -> Profile:
        """Return the profile of both streams; counts, bins, min and max are exact and order-independent."""
        if self.spec != other.spec:
            a, b = self.spec.columns, other.spec.columns
            diff = sorted(set(a) ^ set(b)) or [n for n in a if a[n] != b[n]]
            raise ProfileError(
                f"cannot merge profiles built from different specs (differing columns: {diff}); "
                "profile every partition with the same ProfileSpec"
            )
        cols = {n: p.merged(other.columns[n]) for n, p in self.columns.items()}  # type: ignore[arg-type]
        return Profile(self.spec, self.rows + other.rows, cols)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Profile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe ``parity.profile/1`` form (see the module docstring)."""
        cols = {n: p.to_dict() for n, p in self.columns.items()}
        return {"format": PROFILE_FORMAT, "rows": self.rows, "spec": self.spec.to_dict(), "columns": cols}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Profile:
        """Rebuild a profile from :meth:`to_dict` output, validating format and counts."""
        fmt = d.get("format") if isinstance(d, Mapping) else None
        if fmt != PROFILE_FORMAT:
            raise ProfileError(f"unsupported profile format {fmt!r}, expected {PROFILE_FORMAT!r}")
        try:
            spec = ProfileSpec.from_dict(d["spec"])
            if set(d["columns"]) != set(spec.columns):
                raise ProfileError(
                    f"profile columns {sorted(d['columns'])} differ from its spec {sorted(spec.columns)}"
                )
            cols: dict[str, ColumnProfile] = {}
            for name, s in spec.columns.items():
                c = d["columns"][name]
                if c["kind"] != _kind(s):
                    raise ProfileError(f"column {name!r}: stats of kind {c['kind']!r} but spec of kind {_kind(s)!r}")
                cols[name] = type(_empty_column(s)).from_dict(s, c)
            return cls(spec, int(d["rows"]), cols)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ProfileError(f"malformed profile: {type(e).__name__}: {e}") from e

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the profile as canonical JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Profile:
        """Read a profile written by :meth:`save`."""
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ProfileError(f"cannot read profile {path}: {e}") from e
        return cls.from_dict(d)


def profile_frame(data: Frame, spec: ProfileSpec | None = None, **kw: Any) -> Profile:
    """Profile in-memory data; without ``spec``, derive it from the data (``kw`` go to ``from_reference``)."""
    if spec is None:
        spec = ProfileSpec.from_reference(data, **kw)
    elif kw:
        raise ProfileError(f"options {sorted(kw)} only apply when the spec is derived; a spec was given")
    prof = Profile.empty(spec)
    prof.update(data)
    return prof


def _files(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """Expand files and directories (every ``*.parquet`` below, sorted) into a list of file paths."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    out: list[str] = []
    for item in map(Path, items):
        out.extend(sorted(str(p) for p in item.rglob("*.parquet") if p.is_file()) if item.is_dir() else [str(item)])
    if not out:
        raise ProfileError(f"no Parquet files found in {paths!r}")
    return out


def _open(path: str, spec: ProfileSpec, read: list[str]) -> pq.ParquetFile:
    """Open a Parquet file lazily after checking its footer holds every needed column with a fitting type."""
    try:
        meta = pq.read_metadata(path)
    except (OSError, pa.ArrowException) as e:
        raise ProfileError(f"cannot read Parquet file {path}: {e}") from e
    schema = meta.schema.to_arrow_schema()
    for name in read:
        if name not in schema.names:
            raise SchemaError(
                f"column {name!r} is missing from Parquet file {path}: expected by the profile spec or "
                f"filter_columns, the file has {schema.names[:30]}",
                column=name,
            )
    for name, s in spec.columns.items():
        _check(name, _kind(s), schema.field(name).type, f" in Parquet file {path}")
    # Categorical strings stay dictionary-encoded as stored: value_counts then hashes small ints (~2x faster).
    cats = [n for n, s in spec.columns.items() if isinstance(s, CategoricalSpec)]
    return pq.ParquetFile(path, metadata=meta, pre_buffer=False, read_dictionary=cats)


def _read_columns(spec: ProfileSpec, filter_columns: Sequence[str]) -> list[str]:
    """Columns to read: the profiled ones, then the filter's extra ones."""
    return list(spec.columns) + [c for c in filter_columns if c not in spec.columns]


def profile_row_groups(
    path: str | os.PathLike[str],
    groups: Sequence[int],
    spec: ProfileSpec,
    *,
    batch_size: int = 65536,
    filter: pc.Expression | None = None,  # mirrors pyarrow's own parameter name
    filter_columns: Sequence[str] = (),
    use_threads: bool = False,
) -> list[Profile]:
    """Profile each listed row group of one Parquet file on its own: the unit every engine merges in order.

    ``filter`` applies to each ``batch_size`` record batch as read, so an engine that calls this per row
    group (a Spark or Dask task) slices, filters and sums exactly as ``profile_parquet`` does.
    """
    file, read = os.fspath(path), _read_columns(spec, filter_columns)
    out: list[Profile] = []
    with _open(file, spec, read) as pf:
        for group in groups:
            prof = Profile.empty(spec)
            batches = pf.iter_batches(batch_size=batch_size, row_groups=[group], columns=read, use_threads=use_threads)
            for batch in batches:
                if filter is not None:
                    try:
                        batch = batch.filter(filter)
                    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                        raise ProfileError(
                            f"filter {filter} failed on Parquet file {file}: {e}; columns it uses that are not "
                            "profiled must be listed in filter_columns"
                        ) from e
                prof.update(batch)
            out.append(prof)
    return out


def _init_worker() -> None:
    """Keep BLAS single-threaded in workers: the pool already uses every core it is given."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"


@contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the duration of the block."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def profile_parquet(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    spec: ProfileSpec,
    *,
    columns: Sequence[str] | None = None,
    batch_size: int = 65536,
    processes: int | None = None,
    filter: pc.Expression | None = None,  # mirrors pyarrow's own parameter name
    filter_columns: Sequence[str] = (),
) -> Profile:
    """Profile Parquet files (or directories of them) by streaming record batches, optionally in processes."""
    if columns is not None:
        spec = spec.select(columns)
    files = _files(paths)
    read = _read_columns(spec, filter_columns)
    workers = max(1, processes or 1)
    tasks: list[tuple[str, list[int]]] = []
    for path in files:
        with _open(path, spec, read) as pf:
            groups = list(range(pf.metadata.num_row_groups))
        # Few files: split row groups so every worker gets some. Results do not depend on the split because
        # every row group is profiled on its own and merged in file/row-group order.
        split = workers if workers > len(files) else 1
        tasks += [(path, [int(g) for g in part]) for part in np.array_split(groups, split) if len(part)]
    total = Profile.empty(spec)
    options: dict[str, Any] = {"batch_size": batch_size, "filter": filter, "filter_columns": filter_columns}
    if workers == 1 or len(tasks) <= 1:
        for path, groups in tasks:
            for part in profile_row_groups(path, groups, spec, **options, use_threads=True):
                total = total.merge(part)
        return total
    # spawn, not fork: forking a process that runs Arrow/BLAS threads can deadlock. The child loads numpy while
    # unpickling its first task, so OPENBLAS_NUM_THREADS must already be in the environment it inherits.
    pool = ProcessPoolExecutor(min(workers, len(tasks)), multiprocessing.get_context("spawn"), _init_worker)
    try:
        with _environ("OPENBLAS_NUM_THREADS", "1"):
            futures = [pool.submit(profile_row_groups, p, g, spec, **options) for p, g in tasks]
        for future in futures:
            for part in future.result():
                total = total.merge(part)
    except BrokenProcessPool as e:
        raise ProfileError(
            "a profiling worker process died; workers are spawned, so a script that calls profile_parquet "
            "with processes > 1 must guard its entry point with `if __name__ == '__main__':`"
        ) from e
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return total
