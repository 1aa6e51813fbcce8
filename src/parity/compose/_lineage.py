"""Lineage of compositions in the prediction lake: decisions, shadow calls, explain, replay, reference.

Every decision is one lake record under ``model=<composition>/version=<composition version>``
written by the ordinary :class:`~parity.lake.LakeWriter`, one row per request row, with:

* the composition's inputs (named and typed as its signature),
* ``<endpoint>.<output>`` per output the rule read from each endpoint (null when not called),
* ``lineage.<endpoint>.model|version|route|fallback|error`` (strings) and
  ``lineage.<endpoint>.latency_ms`` (``route`` is primary, candidate or fallback; ``fallback`` is
  '', default or model),
* ``output.<name>`` per decision output.

So ``parity skew`` profiles inputs, downstream outputs and decisions like any model's, and
ignores the ``lineage.`` columns (:data:`parity.lake.LINEAGE_PREFIX`). A shadow call is a record
under ``model=<composition>.shadow.<endpoint>``: the inputs sent, ``primary.<output>`` beside the
shadow's ``output.<output>``, and ``lineage.shadow.latency_ms|error|version``, with the same
``request_id`` as the decision.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from parity._format import REFERENCE_FORMAT
from parity.codec import datatype_of, encode_columns
from parity.errors import CompositionError
from parity.lake import LINEAGE_PREFIX, OUTPUT_PREFIX, lake_column_name, read_lake
from parity.schema import MISSING_STRING, ColumnSpec, OutputSpec, Signature

if TYPE_CHECKING:
    import pyarrow as pa

    from parity.compose._declare import Composition
    from parity.compose._engine import Call, Decision, ModelOutputs, Runner
    from parity.lake import LakeWriter

__all__ = ["LineageLog", "ReplayResult", "explain", "reference", "replay", "shadow_model"]

_LINEAGE_TEXT = ("model", "version", "route", "fallback", "error")


def shadow_model(composition: str, endpoint: str) -> str:
    """Lake model name of an endpoint's shadow records."""
    return f"{composition}.shadow.{endpoint}"


def _missing(datatype: str, n: int) -> np.ndarray:
    if datatype == "BYTES":
        return np.full(n, MISSING_STRING, dtype=object)
    if datatype in ("FP64", "FP32"):
        return np.full(n, np.nan, dtype=np.float64 if datatype == "FP64" else np.float32)
    # Integer and boolean outputs cannot hold NaN: a float column keeps the null.
    return np.full(n, np.nan)


class LineageLog:
    """Builds the lake records of one runner's decisions and shadow calls.

    The record's columns follow what is known of each endpoint's outputs: a downstream's metadata
    gives their types before the first request; a stub's are learnt from its first real answer (a
    default fallback says nothing about the stub's own types). Until then a record carries that
    endpoint's lineage but not its output columns, which the lake's readers fill with nulls; the
    signature grows once per endpoint learnt, and the writer starts a new file when it does.
    """

    def __init__(self, comp: Composition, runner: Runner) -> None:
        self.comp = comp
        self.runner = runner
        self._types: dict[str, dict[str, str]] = {}
        """Endpoint -> output -> datatype, for every endpoint whose output types are known."""
        for name, ep in comp.endpoints.items():
            meta = runner.targets[name]["primary"].meta
            if meta is not None:
                names = list(ep.reads) if ep.reads is not None else list(meta.outputs)
                self._types[name] = {o: meta.outputs[o] for o in names if o in meta.outputs}
        self._lineage_cols = {
            ep: (tuple((k, f"{LINEAGE_PREFIX}{ep}.{k}") for k in _LINEAGE_TEXT), f"{LINEAGE_PREFIX}{ep}.latency_ms")
            for ep in comp.endpoints
        }
        self._constants: dict[tuple[str, int], np.ndarray] = {}
        self._signature: Signature | None = None
        self._shadow_sigs: dict[str, Signature] = {}
        self.shadow_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        """The last shadow results (request id, endpoint, outputs, primary outputs, error), newest last."""

    def _learn(self, decision: Decision) -> bool:
        """Record the output types of endpoints answering for the first time; True if any was new."""
        new = False
        for name, call in decision.calls.items():
            if name not in self._types and call.outputs and call.fallback != "default":
                self._types[name] = {o: datatype_of(v) for o, v in call.outputs.items()}
                new = True
        return new

    def signature(self, decision: Decision) -> Signature:
        """The lake signature of this composition's records (inputs + known downstream outputs + lineage)."""
        if self._learn(decision) or self._signature is None:
            cols = list(self.comp.signature.inputs)
            for ep in self.comp.endpoints:
                cols += [ColumnSpec(f"{ep}.{o}", dt, True) for o, dt in self._types.get(ep, {}).items()]  # type: ignore[arg-type]
            for ep in self.comp.endpoints:
                cols += [ColumnSpec(f"{LINEAGE_PREFIX}{ep}.{k}", "BYTES", True) for k in _LINEAGE_TEXT]
                cols.append(ColumnSpec(f"{LINEAGE_PREFIX}{ep}.latency_ms", "FP64", True))
            self._signature = Signature(tuple(cols), self.comp.signature.outputs)
        return self._signature

    def _constant(self, value: str, n: int) -> np.ndarray:
        """A read-only column of ``n`` copies of a lineage string, shared by the records that need it."""
        # The writer only reads its columns: sharing saves building a dozen arrays per decision.
        key = (value, n)
        arr = self._constants.get(key)
        if arr is None:
            if len(self._constants) >= 1024:  # error texts vary: stay bounded
                self._constants.clear()
            arr = np.full(n, value, dtype=object)
            arr.flags.writeable = False
            self._constants[key] = arr
        return arr

    async def write(self, lake: LakeWriter, decision: Decision, timeout: float | None = None) -> None:
        """Queue one decision's record without blocking the event loop (LakeFullError past ``timeout``)."""
        sig = self.signature(decision)
        n = len(next(iter(decision.outputs.values()))) if decision.outputs else 0
        cols: dict[str, np.ndarray] = dict(decision.inputs)
        for ep, (text_cols, latency_col) in self._lineage_cols.items():
            call = decision.calls.get(ep)
            for o, dt in self._types.get(ep, {}).items():
                values = call.outputs.get(o) if call is not None else None
                cols[f"{ep}.{o}"] = values if values is not None else _missing(dt, n)
            for k, col in text_cols:
                cols[col] = self._constant(getattr(call, k) if call else "", n)
            latency = call.latency_ms if call else np.nan
            cols[latency_col] = np.array([latency]) if n == 1 else np.full(n, latency)
        await lake.put(
            model=self.comp.name,
            version=self.comp.version,
            signature=sig,
            inputs=cols,
            outputs=decision.outputs,
            request_id=decision.request_id,
            latency_ms=decision.latency_ms,
            timeout=timeout,
        )

    async def shadow(
        self,
        lake: LakeWriter | None,
        endpoint: str,
        columns: Mapping[str, np.ndarray],
        request_id: str,
        primary: ModelOutputs,
        call: Call,
        timeout: float | None = None,
    ) -> None:
        """Record one shadow call beside the primary's outputs (LakeFullError past ``timeout``)."""
        self.shadow_log.append(
            {"request_id": request_id, "endpoint": endpoint, "outputs": call.outputs, "primary": dict(primary),
             "error": call.error, "latency_ms": call.latency_ms}
        )  # fmt: skip
        if lake is None:
            return
        sig = self._shadow_sigs.get(endpoint)
        meta = self.runner.targets[endpoint]["shadow"].meta
        if sig is None or (not sig.outputs and call.outputs):
            # A stub shadow's output types come from its first answer; a failed call before that is still
            # logged (inputs, primary outputs, its error), without output columns.
            outs = meta.outputs if meta is not None else {o: datatype_of(v) for o, v in call.outputs.items()}
            cols = [ColumnSpec(k, datatype_of(v), True) for k, v in columns.items()]
            cols += [ColumnSpec(f"primary.{o}", datatype_of(v), True) for o, v in primary.items()]
            cols += [
                ColumnSpec(f"{LINEAGE_PREFIX}shadow.version", "BYTES", True),
                ColumnSpec(f"{LINEAGE_PREFIX}shadow.error", "BYTES", True),
                ColumnSpec(f"{LINEAGE_PREFIX}shadow.latency_ms", "FP64", True),
            ]
            sig = Signature(tuple(cols), tuple(OutputSpec(o, dt) for o, dt in outs.items()))  # type: ignore[arg-type]
            self._shadow_sigs[endpoint] = sig
        n = len(next(iter(primary.values()))) if primary else 0
        data: dict[str, np.ndarray] = {k: v for k, v in columns.items()}
        data.update({f"primary.{o}": v for o, v in primary.items()})
        data[f"{LINEAGE_PREFIX}shadow.version"] = np.full(n, call.version, dtype=object)
        data[f"{LINEAGE_PREFIX}shadow.error"] = np.full(n, call.error, dtype=object)
        data[f"{LINEAGE_PREFIX}shadow.latency_ms"] = np.full(n, call.latency_ms)
        outputs = {o.name: call.outputs.get(o.name, _missing(o.datatype, n)) for o in sig.outputs}
        await lake.put(
            model=shadow_model(self.comp.name, endpoint),
            version=self.comp.version,
            signature=sig,
            inputs=data,
            outputs=outputs,
            request_id=request_id,
            latency_ms=call.latency_ms,
            timeout=timeout,
        )


# ---------------------------------------------------------------------- explain


def _prefixed(row: dict[str, Any], names: list[str], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: row[k] for k in names if k.startswith(prefix)}


def _rows_of(table: pa.Table, request_id: str) -> pa.Table:
    import pyarrow.compute as pc

    return table.filter(pc.equal(table["request_id"], request_id))


def explain(lake: str | Path, request_id: str) -> dict[str, Any]:
    """How one decision was made, read back from the lake (CompositionError if the request is not there)."""
    root = Path(lake)
    found: dict[str, Any] | None = None
    shadows: list[dict[str, Any]] = []
    for model_dir in sorted(root.glob("model=*")):
        model = model_dir.name.split("=", 1)[1]
        table = _rows_of(read_lake(root, model=model), request_id)
        if table.num_rows == 0:
            continue
        names = table.column_names
        if ".shadow." in model:
            rows = table.to_pylist()
            shadows.append(
                {
                    "model": model,
                    "outputs": [
                        {k[len(OUTPUT_PREFIX) :]: r[k] for k in names if k.startswith(OUTPUT_PREFIX)} for r in rows
                    ],
                    "primary": [{k[len("primary.") :]: r[k] for k in names if k.startswith("primary.")} for r in rows],
                    "latency_ms": rows[0].get(f"{LINEAGE_PREFIX}shadow.latency_ms"),
                    "error": rows[0].get(f"{LINEAGE_PREFIX}shadow.error") or "",
                }
            )
            continue
        if not any(n.startswith(LINEAGE_PREFIX) for n in names):
            continue  # a plain model's record with the same id (a downstream parity server's own lake)
        rows = sorted(table.to_pylist(), key=lambda r: r["row"])
        endpoints = sorted({n[len(LINEAGE_PREFIX) :].rsplit(".", 1)[0] for n in names if n.startswith(LINEAGE_PREFIX)})
        inputs = [n for n in names if not n.startswith((LINEAGE_PREFIX, OUTPUT_PREFIX)) and "." not in n
                  and n not in ("ts", "model", "model_version", "request_id", "row", "latency_ms")]  # fmt: skip
        first = rows[0]
        found = {
            "request_id": request_id,
            "composition": model,
            "version": first["model_version"],
            "ts": str(first["ts"]),
            "latency_ms": first["latency_ms"],
            "rows": [
                {
                    "inputs": {n: r[n] for n in inputs},
                    "downstreams": {
                        ep: {
                            **{k: r.get(f"{LINEAGE_PREFIX}{ep}.{k}") for k in (*_LINEAGE_TEXT, "latency_ms")},
                            "outputs": {n[len(ep) + 1 :]: r[n] for n in names if n.startswith(ep + ".")},
                        }
                        for ep in endpoints
                    },
                    "decision": {n[len(OUTPUT_PREFIX) :]: r[n] for n in names if n.startswith(OUTPUT_PREFIX)},
                }
                for r in rows
            ],
        }
    if found is None:
        raise CompositionError(
            f"request {request_id!r} is not in the lake at {root} (no composition record has that id)"
        )
    found["shadows"] = shadows
    return found


# ---------------------------------------------------------------------- replay


@dataclass
class ReplayResult:
    """Logged decisions re-run through the current rules: which would change."""

    composition: str
    requests: int = 0
    rows: int = 0
    changed_rows: int = 0
    by_output: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return {
            "composition": self.composition,
            "requests": self.requests,
            "rows": self.rows,
            "changed_rows": self.changed_rows,
            "changed_share": self.changed_rows / self.rows if self.rows else 0.0,
            "by_output": self.by_output,
            "examples": self.examples,
        }


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        try:
            fa, fb = float(a), float(b)
        except (TypeError, ValueError):
            return False
        return (fa != fa and fb != fb) or abs(fa - fb) <= 1e-9 * max(1.0, abs(fa), abs(fb))
    return bool(a == b)


def _logged(values: list[Any]) -> np.ndarray:
    """Logged downstream values as the array the downstream answered (nulls as NaN / MISSING_STRING)."""
    if any(isinstance(v, str) for v in values):
        return np.array([MISSING_STRING if v is None else v for v in values], dtype=object)
    if any(v is None for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.asarray(values)


def replay(
    comp: Composition,
    lake: str | Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    version: int | None = None,
    examples: int = 20,
) -> ReplayResult:
    """Re-run logged requests of ``comp`` through its current rule, with each downstream answering what it logged."""
    import asyncio

    from parity.compose._declare import Stub
    from parity.compose._engine import Runner

    table = read_lake(lake, model=comp.name, version=version, since=since, until=until)
    result = ReplayResult(comp.name)
    if table.num_rows == 0:
        return result
    names = set(table.column_names)
    current: dict[str, dict[str, np.ndarray]] = {}

    def answer(endpoint: str) -> Any:
        def fn(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            return current.get(endpoint, {})

        return fn

    runner = Runner(
        comp, overrides={ep: Stub(answer(ep), name=f"logged {ep}") for ep in comp.endpoints}, only_primary=True
    )
    data = table.to_pydict()
    order: dict[str, list[int]] = {}
    for i, rid in enumerate(data["request_id"]):
        order.setdefault(rid, []).append(i)
    in_names = comp.signature.input_names
    out_names = comp.signature.output_names

    async def go() -> None:
        await runner.validate()
        for rid, idx in order.items():
            idx.sort(key=lambda i: data["row"][i])
            columns = {n: [data[lake_column_name(n)][i] for i in idx] for n in in_names if lake_column_name(n) in names}
            encoded = encode_columns(comp.signature, columns)
            current.clear()
            for ep in comp.endpoints:
                prefix = ep + "."
                current[ep] = {
                    c[len(prefix) :]: _logged([data[c][i] for i in idx]) for c in names if c.startswith(prefix)
                }
            decision = await runner.execute(encoded, rid)
            result.requests += 1
            for pos, i in enumerate(idx):
                result.rows += 1
                before = {o: data.get(OUTPUT_PREFIX + o, [None] * len(data["row"]))[i] for o in out_names}
                after = {o: decision.rows()[pos][o] for o in out_names}
                diff = [o for o in out_names if not _same(before[o], after[o])]
                if diff:
                    result.changed_rows += 1
                    for o in diff:
                        result.by_output[o] = result.by_output.get(o, 0) + 1
                    if len(result.examples) < examples:
                        result.examples.append(
                            {"request_id": rid, "row": data["row"][i], "inputs": {n: columns[n][pos] for n in columns},
                             "before": before, "after": after}
                        )  # fmt: skip
        await runner.aclose()

    asyncio.run(go())
    return result


# ---------------------------------------------------------------------- reference


def _kind(values: np.ndarray) -> str:
    return "categorical" if values.dtype == object else "boolean" if values.dtype == bool else "numeric"


def reference(
    comp: Composition, data: Any, models: Mapping[str, Any] | None = None, *, batch_rows: int = 512
) -> dict[str, Any]:
    """The skew reference of a composition: profiles of inputs + downstream outputs, and of decisions.

    Runs ``data`` (a DataFrame of composition inputs, e.g. the training frame) through the
    composition in-process; the result is a ``parity.reference/1`` document with the
    composition's name, for ``parity skew REFERENCE.json --data LAKE``.
    """
    import pandas as pd

    from parity.profile import ProfileSpec, profile_frame

    frames: list[pd.DataFrame] = []
    outs: list[pd.DataFrame] = []
    first_arrays: dict[str, Any] = {}
    for start in range(0, len(data), batch_rows):
        chunk = data.iloc[start : start + batch_rows]
        decision = comp.run(chunk, models=models)
        cols: dict[str, Any] = {k: np.asarray(v) for k, v in decision.inputs.items()}
        for ep, call in decision.calls.items():
            for o, v in call.outputs.items():
                cols[f"{ep}.{o}"] = v
        first_arrays = first_arrays or cols
        frame = pd.DataFrame(cols)
        for c in frame.columns:
            if frame[c].dtype == object:
                frame[c] = frame[c].where(frame[c] != MISSING_STRING, None)
        frames.append(frame)
        outs.append(pd.DataFrame({k: np.asarray(v) for k, v in decision.outputs.items()}))
    inputs = pd.concat(frames, ignore_index=True)
    outputs = pd.concat(outs, ignore_index=True)
    # Kinds from the arrays the composition produced (pandas may hold text as its own string dtype).
    first = frames[0]
    kinds = {c: _kind(first_arrays[c]) for c in first.columns}
    out_kinds = {o.name: "categorical" if o.datatype == "BYTES" else "numeric" for o in comp.signature.outputs}
    in_profile = profile_frame(inputs, ProfileSpec.from_reference(inputs, columns=kinds))  # type: ignore[arg-type]
    out_profile = profile_frame(outputs, ProfileSpec.from_reference(outputs, columns=out_kinds))  # type: ignore[arg-type]
    return {
        "format": REFERENCE_FORMAT,
        "name": comp.name,
        "inputs": in_profile.to_dict(),
        "outputs": out_profile.to_dict(),
    }
