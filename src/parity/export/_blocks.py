"""Blocks of feature columns flowing through the exported graph, and their origins.

A :class:`Block` is a group of columns as one double ONNX tensor ``[N, k]`` (or ``k`` separate
``[N, 1]`` string tensors for text). Each column carries its *origin*: the raw column it came from
and the affine map ``feature = (raw - offset) / scale``, so split thresholds found in the estimator
can be mapped back to raw input values for edge-case generation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.errors import ExportError
from parity.export._builder import GraphBuilder

__all__ = ["Block", "Origin", "concat", "gather_columns", "is_nan", "slice_column", "step_name", "whole"]


@dataclass(frozen=True)
class Origin:
    """How a feature derives from one raw column: ``feature = (raw - offset) / scale``, then ``ops``.

    ``ops`` are later monotone steps, each stored as the inverse that maps a feature value back
    (an affine ``(offset, scale)`` pair, or a numpy function such as ``np.expm1`` for ``log1p``).
    """

    column: str
    offset: float = 0.0
    scale: float = 1.0
    ops: tuple[tuple[float, float] | Callable[[np.ndarray], np.ndarray], ...] = ()

    def then(self, offset: float, scale: float) -> Origin:
        """Compose with a further ``(x - offset) / scale``."""
        if not self.ops:
            return Origin(self.column, self.offset + offset * self.scale, self.scale * scale)
        return Origin(self.column, self.offset, self.scale, (*self.ops, (offset, scale)))

    def through(self, inverse: Callable[[np.ndarray], np.ndarray]) -> Origin:
        """Compose with a monotone function whose inverse is ``inverse``."""
        return Origin(self.column, self.offset, self.scale, (*self.ops, inverse))

    def to_raw(self, values: np.ndarray) -> np.ndarray:
        """Map feature values back to raw-column values."""
        v = np.asarray(values, dtype=np.float64)
        with np.errstate(all="ignore"):
            for op in reversed(self.ops):
                v = v * op[1] + op[0] if isinstance(op, tuple) else np.asarray(op(v), dtype=np.float64)
            return v * self.scale + self.offset


@dataclass
class Block:
    """A group of columns as one ONNX tensor ``[N, k]``, or as ``k`` tensors ``[N, 1]`` for text.

    Text columns stay separate (``columns``): the encoders work column by column anyway, and
    concatenating then slicing string tensors copies every string twice (~1.5 ms per 10k rows).
    ``sparse`` says the Python pipeline hands these features on as a scipy sparse matrix (a
    ColumnTransformer with ``sparse_output_``): every 0.0 is then an *absent* entry, which some
    estimators (XGBoost) read as missing.
    """

    tensor: str
    is_text: bool
    origins: list[Origin | None]
    columns: list[str] | None = None
    sparse: bool = False

    @property
    def width(self) -> int:
        """Number of columns."""
        return len(self.origins)


def is_nan(value: Any) -> bool:
    """True for None and float NaN (scikit-learn's missing markers)."""
    return value is None or (isinstance(value, float) and np.isnan(value))


def step_name(est: Any) -> str:
    """The class name used to name a step in messages."""
    return type(est).__name__


def concat(b: GraphBuilder, blocks: list[Block], step: str | None = None) -> Block:
    """Concatenate blocks of one kind along the feature axis (``step`` names the consumer in errors)."""
    if len(blocks) == 1:
        return blocks[0]
    kinds = {blk.is_text for blk in blocks}
    if len(kinds) != 1:
        who = f"{step} receives" if step else "a transformer input has"
        raise ExportError(
            f"{who} text and numeric columns together; encode the text columns first "
            "(e.g. a ColumnTransformer with a OneHotEncoder)",
            step=step,
        )
    origins = [o for blk in blocks for o in blk.origins]
    if blocks[0].is_text and all(blk.columns is not None for blk in blocks):
        return Block("", True, origins, columns=[c for blk in blocks for c in blk.columns or []])
    tensors = [whole(b, blk) for blk in blocks]
    return Block(b.node("Concat", tensors, "concat", axis=1), blocks[0].is_text, origins)


def whole(b: GraphBuilder, block: Block) -> str:
    """The block as one ``[N, k]`` tensor (concatenating separate text columns if needed)."""
    if block.tensor:
        return block.tensor
    cols = block.columns or []
    return cols[0] if len(cols) == 1 else b.node("Concat", cols, "concat", axis=1)


def slice_column(b: GraphBuilder, block: Block, j: int) -> str:
    """Column ``j`` of ``block`` as a ``[N, 1]`` tensor."""
    if block.columns is not None:
        return block.columns[j]
    starts = b.const(np.array([j], dtype=np.int64), "start")
    ends = b.const(np.array([j + 1], dtype=np.int64), "end")
    axes = b.const(np.array([1], dtype=np.int64), "axes")
    return b.node("Slice", [block.tensor, starts, ends, axes], "col")


def gather_columns(b: GraphBuilder, block: Block, keep: list[int]) -> Block:
    """The columns ``keep`` of a numeric block (column selection), origins and sparsity kept."""
    if keep == list(range(block.width)):
        return block
    idx = b.const(np.array(keep, dtype=np.int64), "keep")
    out = b.node("Gather", [block.tensor, idx], "selected", axis=1)
    return Block(out, False, [block.origins[j] for j in keep], sparse=block.sparse)
