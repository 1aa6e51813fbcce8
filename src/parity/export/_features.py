"""Export feature-engineering steps: selection, known numpy functions, binning, polynomials, target encoding.

Like ``_preprocess``, every step is written from standard ONNX ops on double tensors with the
fitted float64 constants, in the order scikit-learn evaluates it (e.g. polynomial terms are
formed as ``x_i * term(i2..id)``, exactly as ``PolynomialFeatures.transform`` multiplies them).
Functions without an ONNX op (``log1p``, ``expm1``) use the classic accurate formulations
instead of ``log(1 + x)``, which loses all precision for small ``x``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from onnx import TensorProto

from parity.errors import ExportError
from parity.export._builder import GraphBuilder
from parity.export._preprocess import Block, Origin, _slice, _step_name, concat, gather_columns

__all__ = ["FEATURE_TRANSFORMERS", "apply_ufunc", "known_ufunc", "selector"]


def _numeric(block: Block, est: Any) -> None:
    if block.is_text:
        raise ExportError(f"{_step_name(est)} received text columns; it needs numbers", step=_step_name(est))


# --- column selection ---------------------------------------------------------------------------


def selector(b: GraphBuilder, block: Block, est: Any) -> Block:
    """Any fitted SelectorMixin (SelectKBest, SelectPercentile, VarianceThreshold, SelectFromModel...)."""
    _numeric(block, est)
    keep = [int(j) for j in np.flatnonzero(est.get_support())]
    if not keep:
        raise ExportError(f"{_step_name(est)} selects no feature", step=_step_name(est))
    return gather_columns(b, block, keep)


# --- FunctionTransformer with a known numpy function --------------------------------------------


def _one(b: GraphBuilder) -> str:
    return b.const(np.float64(1.0), "one")


def _log1p(b: GraphBuilder, x: str) -> str:
    # log1p(x) = log(u) * x / (u - 1) with u = 1 + x (Goldberg); x itself where u == 1.
    u = b.node("Add", [x, _one(b)], "u")
    den = b.node("Sub", [u, _one(b)], "u_minus_1")
    ratio = b.node("Div", [b.node("Mul", [b.node("Log", [u], "log_u"), x], "num"), den], "log1p_ratio")
    return b.node("Where", [b.node("Equal", [u, _one(b)], "tiny"), x, ratio], "log1p")


def _expm1(b: GraphBuilder, x: str) -> str:
    # expm1(x) = (u - 1) * x / log(u) with u = exp(x) (Kahan); x where u == 1, -1 where u - 1 == -1.
    u = b.node("Exp", [x], "u")
    um1 = b.node("Sub", [u, _one(b)], "u_minus_1")
    ratio = b.node("Div", [b.node("Mul", [um1, x], "num"), b.node("Log", [u], "log_u")], "expm1_ratio")
    out = b.node("Where", [b.node("Equal", [um1, b.const(np.float64(-1.0), "minus_one")], "big_neg"), um1, ratio])
    # exp overflow: expm1 is +inf as well (the ratio would be inf/inf = NaN).
    inf = b.node("IsInf", [u], "overflow", detect_negative=0)
    out = b.node("Where", [inf, u, out], "expm1_inf")
    return b.node("Where", [b.node("Equal", [u, _one(b)], "tiny"), x, out], "expm1")


def _clip(b: GraphBuilder, x: str, lo: Any, hi: Any) -> str:
    # np.clip keeps NaN; ONNX Clip's NaN handling is unspecified, so compare explicitly.
    if lo is not None:
        low = b.const(np.float64(lo), "lo")
        x = b.node("Where", [b.node("Less", [x, low], "below"), low, x], "clip_lo")
    if hi is not None:
        high = b.const(np.float64(hi), "hi")
        x = b.node("Where", [b.node("Greater", [x, high], "above"), high, x], "clip_hi")
    return x


_Emit = Callable[[GraphBuilder, str], str]
# numpy function -> (graph, inverse used to map split thresholds back to raw values, if monotone)
_UFUNCS: dict[Any, tuple[_Emit, Callable[[np.ndarray], np.ndarray] | None]] = {
    np.log1p: (_log1p, np.expm1),
    np.log: (lambda b, x: b.node("Log", [x], "log"), np.exp),
    np.sqrt: (lambda b, x: b.node("Sqrt", [x], "sqrt"), np.square),
    np.exp: (lambda b, x: b.node("Exp", [x], "exp"), np.log),
    np.expm1: (_expm1, np.log1p),
    np.abs: (lambda b, x: b.node("Abs", [x], "abs"), None),
    np.square: (lambda b, x: b.node("Mul", [x, x], "square"), None),
}


# ONNX Runtime's Log/Exp differ from numpy's libm in the last bit for ~10% of inputs (measured);
# Sqrt, Abs, Mul and comparisons are exact. A 1-ulp difference only matters at a split threshold.
_INEXACT = (np.log1p, np.log, np.exp, np.expm1)


def known_ufunc(func: Any) -> bool:
    """True if ``func`` is a numpy function parity writes exactly in ONNX."""
    return func is None or func is np.clip or any(func is f for f in _UFUNCS)


def apply_ufunc(b: GraphBuilder, x: str, func: Any, kwargs: dict[str, Any] | None, step: str) -> str:
    """``func(x, **kwargs)`` for a known numpy function on a double tensor."""
    given = dict(kwargs or {})
    kwargs = dict(given)
    if func is None:
        return x
    if func is np.clip:
        lo = kwargs.pop("a_min", kwargs.pop("min", None))
        hi = kwargs.pop("a_max", kwargs.pop("max", None))
        if kwargs or (lo is None and hi is None) or not all(np.ndim(v) == 0 for v in (lo, hi) if v is not None):
            raise ExportError(f"{step}: np.clip needs scalar kw_args a_min/a_max only; got {given}", step=step)
        return _clip(b, x, lo, hi)
    entry = next((e for f, e in _UFUNCS.items() if func is f), None)
    if entry is None:
        raise ExportError(f"{step} runs arbitrary Python; use one of {_ufunc_names()}", step=step)
    if kwargs:
        raise ExportError(f"{step}: kw_args {sorted(kwargs)} are not supported", step=step)
    return entry[0](b, x)


def _ufunc_names() -> list[str]:
    return sorted(f"np.{f.__name__}" for f in [*_UFUNCS, np.clip])


def _ufunc_inverse(func: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    entry = next((e for f, e in _UFUNCS.items() if func is f), None)
    return entry[1] if entry else None


def function_transformer(b: GraphBuilder, block: Block, est: Any) -> Block:
    """FunctionTransformer(func) for func None or a known numpy function."""
    if est.func is None:
        return block
    name = getattr(est.func, "__name__", repr(est.func))
    step = f"FunctionTransformer({name})"
    if not known_ufunc(est.func):
        raise ExportError(
            f"FunctionTransformer(func={name}) runs arbitrary Python; exportable functions: {_ufunc_names()}",
            step=step,
        )
    _numeric(block, est)
    out = apply_ufunc(b, block.tensor, est.func, est.kw_args, step)
    inverse = _ufunc_inverse(est.func)
    inexact = f"np.{name}" if any(est.func is f for f in _INEXACT) else None
    origins = [o.through(inverse, inexact) if o and inverse else None for o in block.origins]
    if est.func is np.clip:
        origins = list(block.origins)  # identity between the bounds, where splits can matter
    return Block(out, False, origins)


# --- KBinsDiscretizer ---------------------------------------------------------------------------


def kbins(b: GraphBuilder, block: Block, est: Any) -> Block:
    """Bin index = number of inner edges <= x (np.searchsorted(..., side="right")), then the encoding."""
    _numeric(block, est)

    codes: list[str] = []
    for j, edges in enumerate(est.bin_edges_):
        inner = np.asarray(edges, dtype=np.float64)[1:-1]
        col = _slice(b, block, j)
        if len(inner) == 0:
            codes.append(b.node("Mul", [col, b.const(np.float64(0.0), "zero")], "bin"))
            continue
        le = b.node("LessOrEqual", [b.const(inner.reshape(1, -1), "edges"), col], "le")
        axes = b.const(np.array([1], dtype=np.int64), "axis")
        codes.append(b.node("ReduceSum", [b.cast(le, TensorProto.DOUBLE), axes], "bin", keepdims=1))
    ordinal = concat(b, [Block(c, False, [None]) for c in codes])
    if est.encode == "ordinal":
        return ordinal
    # onehot / onehot-dense: the internal OneHotEncoder over the bin codes 0..n_bins-1.
    parts = []
    for j, n_bins in enumerate(est.n_bins_):
        col = codes[j]
        ids = b.const(np.arange(int(n_bins), dtype=np.float64).reshape(1, -1), "bin_ids")
        parts.append(
            Block(b.cast(b.node("Equal", [col, ids], "bin_match"), TensorProto.DOUBLE), False, [None] * n_bins)
        )
    return concat(b, parts)


# --- PolynomialFeatures -------------------------------------------------------------------------


def polynomial(b: GraphBuilder, block: Block, est: Any) -> Block:
    """Every term of ``powers_``, multiplied in PolynomialFeatures' own order."""
    _numeric(block, est)

    cols = [_slice(b, block, j) for j in range(block.width)]
    cache: dict[tuple[int, ...], str] = {}

    def term(factors: tuple[int, ...]) -> str:
        # sklearn builds degree-d terms as X[:, i] * (degree d-1 term over features >= i).
        if len(factors) == 1:
            return cols[factors[0]]
        if factors not in cache:
            cache[factors] = b.node("Mul", [term(factors[1:]), cols[factors[0]]], "term")
        return cache[factors]

    outs: list[str] = []
    origins: list[Origin | None] = []
    ones: str | None = None
    for powers in np.asarray(est.powers_):
        factors = tuple(int(j) for j, p in enumerate(powers) for _ in range(int(p)))
        if not factors:
            if ones is None:
                ones = b.node("Expand", [b.const(np.ones((1, 1)), "one"), b.node("Shape", [cols[0]])], "bias")
            outs.append(ones)
            origins.append(None)
            continue
        outs.append(term(factors))
        origins.append(block.origins[factors[0]] if len(factors) == 1 else None)
    return Block(b.node("Concat", outs, "poly", axis=1) if len(outs) > 1 else outs[0], False, origins)


# --- TargetEncoder ------------------------------------------------------------------------------


def target_encoder(b: GraphBuilder, block: Block, est: Any) -> Block:
    """Category -> its fitted encoding (``encodings_``); unknown -> ``target_mean_``."""
    from parity.export._preprocess import _category_matches

    multiclass = est.target_type_ == "multiclass"
    n_classes = len(est.classes_) if multiclass else 1
    means = np.atleast_1d(np.asarray(est.target_mean_, dtype=np.float64))
    axes = b.const(np.array([1], dtype=np.int64), "axis")
    parts: list[Block] = []
    for j, cats in enumerate(est.categories_):
        match = b.cast(_category_matches(b, block, j, np.asarray(cats, dtype=object), est), TensorProto.DOUBLE)
        table = np.stack(
            [np.asarray(est.encodings_[j * n_classes + k], dtype=np.float64) for k in range(n_classes)], axis=1
        )
        # A one-hot row times the table picks one encoding exactly (1.0 * e + 0.0 * others).
        enc = b.node("MatMul", [match, b.const(table, "encodings")], "encoded")
        found = b.cast(b.node("ReduceMax", [match, axes], "found", keepdims=1), TensorProto.BOOL)
        mean = b.const(means[:n_classes].reshape(1, -1), "target_mean")
        parts.append(Block(b.node("Where", [found, enc, mean], "target_enc"), False, [None] * n_classes))
    return concat(b, parts)


FEATURE_TRANSFORMERS: dict[str, Callable[[GraphBuilder, Block, Any], Block]] = {
    "FunctionTransformer": function_transformer,
    "KBinsDiscretizer": kbins,
    "PolynomialFeatures": polynomial,
    "TargetEncoder": target_encoder,
}
