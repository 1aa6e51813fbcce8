"""Tests of the streaming profiler: hand-computed fixtures, exact merges, JSON form and Parquet streaming."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.errors import ProfileError, SchemaError
from parity.profile import (
    PROFILE_FORMAT,
    BooleanSpec,
    CategoricalProfile,
    CategoricalSpec,
    NumericProfile,
    NumericSpec,
    Profile,
    ProfileSpec,
    profile_frame,
    profile_parquet,
)

NAN, INF = float("nan"), float("inf")


def _spec() -> ProfileSpec:
    return ProfileSpec(
        {
            "x": NumericSpec(np.array([-10.0, -1.0, 0.0, 1.0, 10.0])),
            "c": CategoricalSpec(("a", "b"), ("c",)),
            "b": BooleanSpec(),
        }
    )


def _assert_same(a: Profile, b: Profile) -> None:
    """Everything equal exactly except mean/m2, which must agree to float rounding."""
    da, db = a.to_dict(), b.to_dict()
    for name, ca in da["columns"].items():
        cb = db["columns"][name]
        if ca["kind"] == "numeric":
            scale = max(abs(ca["min"] or 0.0), abs(ca["max"] or 0.0))
            assert math.isclose(ca.pop("mean"), cb.pop("mean"), rel_tol=1e-12, abs_tol=1e-12 * scale)
            n = max(ca["count"] - ca["nulls"] - ca["neg_inf"] - ca["pos_inf"], 1)
            std_a, std_b = math.sqrt(ca.pop("m2") / n), math.sqrt(cb.pop("m2") / n)
            assert math.isclose(std_a, std_b, rel_tol=1e-12, abs_tol=1e-12 * scale)
    assert da == db


def test_numeric_hand_computed_bins_and_moments() -> None:
    spec = ProfileSpec({"x": NumericSpec(np.array([0.0, 1.0, 2.0, 3.0]))})
    values = [-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 3.5, NAN, None, INF, -INF]
    col = profile_frame(pd.DataFrame({"x": values}), spec).columns["x"]
    assert isinstance(col, NumericProfile)
    # under: -1, -inf | [0,1): 0, 0.5 | [1,2): 1 (inner edge goes right) | [2,3] closed: 2, 3 | over: 3.5, inf
    assert col.bins.tolist() == [2, 2, 1, 2, 2]
    assert (col.count, col.nulls, col.neg_inf, col.pos_inf, col.finite) == (11, 2, 1, 1, 7)
    finite = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 3.5])
    assert col.mean == pytest.approx(finite.mean(), rel=1e-15)
    assert col.std == pytest.approx(finite.std(), rel=1e-15)
    assert (col.min, col.max) == (-1.0, 3.5)


def test_moments_do_not_depend_on_memory_alignment() -> None:
    """An unaligned float64 buffer (as Arrow IPC can hand over) gives the same mean/M2 bit for bit."""
    x = np.random.default_rng(1).normal(50.0, 10.0, 3 * 8192 + 5)
    raw = np.empty(x.nbytes + 1, np.uint8)
    unaligned = np.frombuffer(raw[1:].data, np.float64)
    unaligned[:] = x
    assert not unaligned.flags.aligned
    assert unaligned.sum() != x.sum()  # numpy itself rounds differently here: what the profile must not do
    spec = ProfileSpec({"x": NumericSpec(np.array([0.0, 50.0, 100.0]))})
    arrow = pa.table({"x": pa.Array.from_buffers(pa.float64(), x.size, [None, pa.py_buffer(unaligned)])})
    for data in (arrow, pd.DataFrame({"x": x})):
        assert profile_frame(data, spec) == profile_frame(pa.table({"x": x}), spec)


def test_reference_edges_quantiles_and_constant_column() -> None:
    df = pd.DataFrame({"x": np.arange(101, dtype=np.float64), "k": np.full(101, 7), "d": [0.0] * 90 + [1.0] * 11})
    spec = ProfileSpec.from_reference(df, bins=4)
    assert spec.columns["x"] == NumericSpec(np.array([0.0, 25.0, 50.0, 75.0, 100.0]))
    assert isinstance(spec.columns["d"], NumericSpec) and spec.columns["d"].edges.tolist() == [0.0, 1.0]
    prof = profile_frame(df, spec)
    k = prof.columns["k"]
    assert isinstance(k, NumericProfile) and k.bins.tolist() == [0, 101, 0]  # the constant sits in its own bin
    x = prof.columns["x"]
    assert isinstance(x, NumericProfile) and x.bins.tolist() == [0, 25, 25, 25, 26, 0]  # max is not overflow
    assert x.p50 == pytest.approx(50.0, abs=1.0) and x.p01 is not None and x.p99 is not None
    assert 0.0 <= x.p01 <= x.p05 <= x.p25 <= x.p50 <= x.p75 <= x.p95 <= x.p99 <= 100.0
    with pytest.raises(ProfileError, match="'n'"):
        ProfileSpec.from_reference(pd.DataFrame({"n": [NAN, INF]}))


def test_categorical_hand_computed() -> None:
    train = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 3 + ["d"] * 2 + ["c"] * 2 + ["e"]})
    spec = ProfileSpec.from_reference(train, top_k=3)
    assert spec.columns["c"] == CategoricalSpec(("a", "b", "c"), ("d", "e"))  # frequency, ties by value
    serve = pd.Series(["a", "b", "d", "zz", "", "", None, "y", "zz", "a"], dtype="str")
    col = profile_frame(pd.DataFrame({"c": serve}), spec).columns["c"]
    assert isinstance(col, CategoricalProfile)
    assert col.counts.tolist() == [2, 1, 0]
    assert (col.count, col.nulls, col.other, col.unseen, col.empty) == (10, 1, 6, 5, 2)
    assert col.unseen_examples == ["", "y", "zz"]


def test_categorical_many_categories_and_non_string_values() -> None:
    train = pd.DataFrame({"c": [f"v{i}" for i in range(1500)] + ["v1"]})
    spec = ProfileSpec.from_reference(train, top_k=2)
    c = spec.columns["c"]
    assert isinstance(c, CategoricalSpec) and c.categories == ("v1", "v0") and c.rare is None
    col = profile_frame(pd.DataFrame({"c": ["v1", "v7", "new"]}), spec).columns["c"]
    assert isinstance(col, CategoricalProfile) and col.other == col.unseen == 2  # unseen falls back to top-K
    # Numbers compare as strings; object columns of mixed types too.
    spec = ProfileSpec({"c": CategoricalSpec(("1", "x"))})
    mixed = profile_frame(pd.DataFrame({"c": pd.Series([1, "x", None, 2.5], dtype=object)}), spec).columns["c"]
    ints = profile_frame(pa.table({"c": pa.array([1, 1, None])}), spec).columns["c"]
    assert isinstance(mixed, CategoricalProfile) and isinstance(ints, CategoricalProfile)
    assert (mixed.counts.tolist(), mixed.nulls, mixed.other) == ([1, 1], 1, 1)
    assert (ints.counts.tolist(), ints.nulls) == ([2, 0], 1)


def test_boolean_and_pandas_arrow_inputs_agree() -> None:
    df = pd.DataFrame(
        {
            "x": [1.5, None, -3.0, 40.0],
            "c": pd.Series(["a", None, "c", "q"], dtype="str"),
            "b": pd.Series([True, None, False, True], dtype=object),
        }
    )
    spec = _spec()
    from_pandas = profile_frame(df, spec)
    table = pa.table({"x": [1.5, None, -3.0, 40.0], "c": ["a", None, "c", "q"], "b": [True, None, False, True]})
    assert from_pandas == profile_frame(table, spec) == profile_frame(table.to_batches()[0], spec)
    b = from_pandas.columns["b"].to_dict()
    assert b == {"kind": "boolean", "count": 4, "nulls": 1, "true": 2}
    assert profile_frame(df, spec).rows == 4


values_st = st.one_of(
    st.sampled_from([None, NAN, INF, -INF, 0.0, -0.0, 1.0, -1.0, 10.0]),
    st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            values_st, st.sampled_from([None, "", "a", "b", "c", "d", "e", "zz"]), st.sampled_from([None, True, False])
        ),
        max_size=60,
    ),
    cuts=st.lists(st.integers(0, 60), max_size=5),
)
def test_merge_of_partitions_equals_whole(rows: list[tuple[Any, Any, Any]], cuts: list[int]) -> None:
    spec = _spec()
    table = pa.table(
        {
            "x": pa.array([r[0] for r in rows], pa.float64()),
            "c": pa.array([r[1] for r in rows], pa.string()),
            "b": pa.array([r[2] for r in rows], pa.bool_()),
        }
    )
    whole = profile_frame(table, spec)
    bounds = [0, *sorted(min(c, len(rows)) for c in cuts), len(rows)]
    parts = [profile_frame(table.slice(lo, hi - lo), spec) for lo, hi in itertools.pairwise(bounds)]
    forward = Profile.empty(spec)
    for part in parts:
        forward = forward.merge(part)
    backward = Profile.empty(spec)
    for part in reversed(parts):
        backward = part.merge(backward)
    _assert_same(whole, forward)
    _assert_same(whole, backward)
    assert Profile.from_dict(json.loads(json.dumps(forward.to_dict()))) == forward


def test_merge_rejects_different_specs() -> None:
    a = Profile.empty(_spec())
    b = Profile.empty(ProfileSpec({**_spec().columns, "x": NumericSpec(np.array([0.0, 1.0]))}))
    with pytest.raises(ProfileError, match=r"differing columns: \['x'\]\)"):  # only x: equal specs are not listed
        a.merge(b)


def test_round_trip_save_load_and_validation(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, None, INF], "c": ["a", "zz", None, "b"], "b": [True, False, True, None]})
    prof = profile_frame(df, _spec())
    prof.save(tmp_path / "profile.json")
    loaded = Profile.load(tmp_path / "profile.json")
    assert loaded == prof and loaded.spec == prof.spec
    d = prof.to_dict()
    assert d["format"] == PROFILE_FORMAT and all(type(v) is int for v in d["columns"]["x"]["bins"])
    with pytest.raises(ProfileError, match="format"):
        Profile.from_dict({**d, "format": "parity.profile/0"})
    broken = json.loads(json.dumps(d))
    broken["columns"]["x"]["bins"][0] += 1
    with pytest.raises(ProfileError, match="counts do not add up"):
        Profile.from_dict(broken)
    del broken["columns"]["c"]["counts"]
    with pytest.raises(ProfileError, match="malformed"):
        Profile.from_dict(broken)


def test_bad_batch_raises_and_leaves_profile_untouched() -> None:
    prof = Profile.empty(_spec())
    good = pd.DataFrame({"x": [1.0], "c": ["a"], "b": [True]})
    prof.update(good)
    before = prof.to_dict()
    with pytest.raises(SchemaError, match=r"column 'x'.*expected numeric.*received (large_)?string") as err:
        prof.update(pd.DataFrame({"x": ["oops"], "c": ["a"], "b": [True]}))
    assert err.value.column == "x"
    with pytest.raises(SchemaError, match="column 'b' is missing"):
        prof.update(good.drop(columns="b"))
    assert prof.to_dict() == before


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "c": pd.Series(rng.choice(["a", "b", "c", "d", "zz", ""], n), dtype="str"),
            "b": rng.random(n) < 0.3,
            "extra": rng.integers(0, 10, n),
        }
    )


def test_profile_parquet_streams_files_and_processes_agree(tmp_path: Path) -> None:
    frames = [_frame(n, seed) for seed, n in enumerate([1000, 2500, 0, 700])]
    for i, f in enumerate(frames):
        pq.write_table(
            pa.Table.from_pandas(f, preserve_index=False), tmp_path / f"part-{i}.parquet", row_group_size=400
        )
    files = sorted(tmp_path.glob("*.parquet"))
    spec = ProfileSpec.from_reference(frames[0], {"x": "numeric", "c": "categorical", "b": "boolean"})
    serial = profile_parquet(files, spec, batch_size=128)
    _assert_same(serial, profile_frame(pd.concat(frames, ignore_index=True), spec))
    assert serial.rows == 4200
    parallel = profile_parquet(tmp_path, spec, batch_size=128, processes=2)
    assert parallel.to_dict() == serial.to_dict()  # bit-identical, mean included
    # One file, several row groups, more workers than files: row groups are split, results unchanged.
    one = profile_parquet(files[1], spec, processes=2)
    assert one.to_dict() == profile_parquet(files[1], spec).to_dict()
    only_x = profile_parquet(files, spec, columns=["x"], filter=pc.field("extra") > 4, filter_columns=["extra"])
    expected = pd.concat(frames, ignore_index=True)
    _assert_same(only_x, profile_frame(expected[expected["extra"] > 4], spec.select(["x"])))
    with pytest.raises(ProfileError, match="filter_columns"):
        profile_parquet(files, spec, filter=pc.field("extra") > 4)


def test_profile_parquet_schema_errors(tmp_path: Path) -> None:
    spec = ProfileSpec({"x": NumericSpec(np.array([0.0, 1.0])), "c": CategoricalSpec(("a",))})
    pq.write_table(pa.table({"x": [1.0], "c": ["a"]}), tmp_path / "ok.parquet")
    pq.write_table(pa.table({"x": [2.0]}), tmp_path / "missing.parquet")
    pq.write_table(pa.table({"x": ["1.0"], "c": ["a"]}), tmp_path / "strings.parquet")
    with pytest.raises(SchemaError, match=r"column 'c' is missing from Parquet file .*missing\.parquet") as err:
        profile_parquet([tmp_path / "ok.parquet", tmp_path / "missing.parquet"], spec)
    assert err.value.column == "c"
    with pytest.raises(SchemaError, match=r"column 'x' in Parquet file .*strings\.parquet: expected numeric.*string"):
        profile_parquet(tmp_path / "strings.parquet", spec)


def test_json_size_is_independent_of_row_count() -> None:
    def profile_json(n: int) -> int:
        rng = np.random.default_rng(n)
        cols: dict[str, Any] = {f"x{i}": rng.normal(size=n) for i in range(14)}
        cols |= {f"c{i}": rng.choice([f"cat{j}" for j in range(30)], n) for i in range(4)}
        cols |= {f"b{i}": rng.random(n) < 0.5 for i in range(2)}
        df = pd.DataFrame(cols)
        spec = ProfileSpec.from_reference(df.iloc[:1000])
        return len(json.dumps(profile_frame(df, spec).to_dict()))

    small, large = profile_json(1_000), profile_json(100_000)
    assert large < 20_000 and abs(large - small) < 0.1 * small


@pytest.mark.parametrize("edges", [[1.0], [1.0, 1.0], [2.0, 1.0], [0.0, math.inf], [[0.0, 1.0]]])
def test_numeric_spec_rejects_bad_edges(edges: Any) -> None:
    with pytest.raises(ProfileError, match="numeric edges must be >= 2 finite, strictly increasing floats, received"):
        NumericSpec(np.array(edges))


def test_numeric_spec_edges_are_frozen_and_compared_by_value() -> None:
    spec = NumericSpec(np.array([0.0, 1.0, 2.0]))
    assert not spec.edges.flags.writeable
    assert spec == NumericSpec(np.array([0.0, 1.0, 2.0])) and spec != NumericSpec(np.array([0.0, 1.5, 2.0]))
    assert spec != "numeric"


def test_categorical_spec_rejects_duplicates_between_categories_and_rare() -> None:
    with pytest.raises(ProfileError, match="categorical spec has duplicate values"):
        CategoricalSpec(("a", "b"), ("b",))
    with pytest.raises(ProfileError, match="duplicate values"):
        CategoricalSpec(("a", "a"))
    assert CategoricalSpec(("a",), None).rare is None
    assert CategoricalSpec(["a"], ["b"]).categories == ("a",)


def test_profile_frame_rejects_non_frames_and_names_a_missing_column() -> None:
    spec = ProfileSpec({"x": NumericSpec(np.array([0.0, 1.0]))})
    with pytest.raises(ProfileError, match="expected a pandas DataFrame, pyarrow RecordBatch or Table, received dict"):
        profile_frame({"x": [1.0]}, spec)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=r"column 'x' is missing: expected by the profile spec, received \['y'\]"):
        profile_frame(pd.DataFrame({"y": [1.0]}), spec)
    with pytest.raises(SchemaError, match="column 'x' is missing"):
        profile_frame(pa.table({"y": [1.0]}), spec)
    with pytest.raises(ProfileError, match=r"options \['top_k'\] only apply when the spec is derived"):
        profile_frame(pd.DataFrame({"x": [1.0]}), spec, top_k=3)


def test_quantile_zero_is_the_minimum_even_after_empty_bins() -> None:
    spec = ProfileSpec({"x": NumericSpec(np.array([0.0, 1.0, 2.0, 3.0]))})
    col = profile_frame(pd.DataFrame({"x": [1.5, 1.75, 2.5]}), spec).columns["x"]
    assert isinstance(col, NumericProfile) and col.bins.tolist() == [0, 0, 2, 1, 0]  # the first two bins are empty
    assert col.quantile(0.0) == 1.5 and col.quantile(-1.0) == 1.5  # q is clipped to [0, 1]
    assert col.quantile(1.0) == 2.5 and col.quantile(2.0) == 2.5  # the overflow bin is empty: no 0/0


@pytest.mark.parametrize(("distinct", "known"), [(1000, True), (1001, False)])
def test_rare_training_values_are_kept_up_to_1000_distinct(distinct: int, known: bool) -> None:
    # Up to 1000 distinct training values, a rare one served again is not unseen; beyond, only the top-K count.
    train = pd.DataFrame({"c": [f"v{i:04d}" for i in range(distinct)] + ["v0000"]})
    spec = ProfileSpec.from_reference(train, top_k=2)
    c = spec.columns["c"]
    assert isinstance(c, CategoricalSpec) and c.categories == ("v0000", "v0001")
    assert (c.rare is not None) == known and (c.rare is None or len(c.rare) == distinct - 2)
    col = profile_frame(pd.DataFrame({"c": ["v0500", "new"]}), spec).columns["c"]
    assert isinstance(col, CategoricalProfile) and col.other == 2
    assert col.unseen == (1 if known else 2) and col.unseen_examples == (["new"] if known else ["new", "v0500"])


def test_categorical_spec_repr_shows_only_its_fields() -> None:
    assert repr(CategoricalSpec(("a",), ("b",))) == "CategoricalSpec(categories=('a',), rare=('b',))"


def test_large_profiles_round_trip() -> None:
    # Counts beyond the small-int cache: the consistency checks must compare values, not identities.
    n = 300
    df = pd.DataFrame(
        {"x": np.linspace(-20, 20, n), "c": ["a", "b", None] * (n // 3), "b": [True, False, None] * (n // 3)}
    )
    prof = profile_frame(df, _spec())
    assert Profile.from_dict(json.loads(json.dumps(prof.to_dict()))) == prof


@pytest.mark.parametrize(
    ("column", "field", "value"),
    [("c", "unseen", 4), ("b", "true", 4)],  # 4 rows, 1 null: at most 3 non-null values can be unseen/true
)
def test_from_dict_rejects_counts_beyond_the_non_null_rows(column: str, field: str, value: int) -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["zz", "zz", "zz", None], "b": [True, True, True, None]})
    d = json.loads(json.dumps(profile_frame(df, _spec()).to_dict()))
    assert Profile.from_dict(d) is not None
    d["columns"][column][field] = value
    with pytest.raises(ProfileError, match="counts do not add up"):
        Profile.from_dict(d)


@pytest.mark.parametrize("change", ["extra", "missing"])
def test_from_dict_rejects_columns_that_differ_from_the_spec(change: str) -> None:
    d = json.loads(json.dumps(profile_frame(pd.DataFrame({"x": [1.0], "c": ["a"], "b": [True]}), _spec()).to_dict()))
    if change == "extra":
        d["columns"]["y"] = d["columns"]["x"]
    else:
        del d["columns"]["x"]
    with pytest.raises(ProfileError, match="differ from its spec"):
        Profile.from_dict(d)


def test_integer_and_decimal_arrow_columns_profile_like_floats() -> None:
    from decimal import Decimal

    spec = ProfileSpec({"x": NumericSpec(np.array([0.0, 1.0, 2.0]))})
    floats = profile_frame(pa.table({"x": pa.array([0.5, None, 1.5, 3.0])}), spec)
    ints = profile_frame(pa.table({"x": pa.array([0, None, 1, 3], pa.int32())}), spec).columns["x"]
    assert isinstance(ints, NumericProfile) and ints.bins.tolist() == [0, 1, 1, 1] and ints.nulls == 1
    assert ints.mean == pytest.approx(4 / 3)
    decimals = pa.array([Decimal("0.5"), None, Decimal("1.5"), Decimal("3.0")], pa.decimal128(4, 1))
    assert profile_frame(pa.table({"x": decimals}), spec) == floats


def test_negative_zero_is_stored_as_zero() -> None:
    spec = ProfileSpec({"x": NumericSpec(np.array([-1.0, 1.0]))})
    col = profile_frame(pd.DataFrame({"x": [-0.5, -0.0]}), spec).columns["x"]
    assert isinstance(col, NumericProfile) and col.max == 0.0 and math.copysign(1.0, col.max) == 1.0
    assert '"max": 0.0' in json.dumps(col.to_dict())


def test_profile_parquet_takes_paths_and_spec_by_name_and_options_only_by_name(tmp_path: Path) -> None:
    spec = ProfileSpec({"x": NumericSpec(np.array([0.0, 1.0])), "c": CategoricalSpec(("a",))})
    pq.write_table(pa.table({"x": [0.5, 2.0], "c": ["a", "b"]}), tmp_path / "one.parquet")
    prof = profile_parquet(paths=tmp_path / "one.parquet", spec=spec, columns=["x"])
    x = prof.columns["x"]
    assert isinstance(x, NumericProfile) and x.bins.tolist() == [0, 1, 1] and set(prof.columns) == {"x"}
    with pytest.raises(TypeError):
        profile_parquet(tmp_path / "one.parquet", spec, ["x"])  # type: ignore[misc]


@pytest.mark.parametrize("kind", ["text", "ordinal", "Numeric"])
def test_from_reference_rejects_unknown_kinds(kind: str) -> None:
    with pytest.raises(
        ProfileError, match=rf"column 'x': unknown kind '{kind}', expected numeric, categorical or boolean"
    ):
        ProfileSpec.from_reference(pd.DataFrame({"x": [1.0, 2.0]}), {"x": kind})  # type: ignore[dict-item]
