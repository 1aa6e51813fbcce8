"""Row-level replay: re-run logged raw inputs through the model of their version, compare logged outputs."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from parity.artifact import Artifact
from parity.errors import NotFoundError, ParityError, SchemaError
from parity.lake import OUTPUT_PREFIX, lake_column_name
from parity.registry import Registry
from parity.skew._data import TS, Source, _group, _us
from parity.skew._errors import SkewDataError
from parity.skew._report import Metric, ReplayExample, ReplayReport
from parity.skew._thresholds import Level

__all__ = ["MAX_EXAMPLES", "json_value", "replay_report"]

MAX_EXAMPLES = 10


def json_value(v: Any) -> Any:
    """Return a JSON-safe Python value (numpy scalars unwrapped, NaN/inf as None, bytes decoded)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def _values(col: pa.Array | pa.ChunkedArray, text: bool) -> Any:
    """Return a column as the codec expects it: Arrow for text (fast path), numpy otherwise."""
    return col if text else col.to_numpy(zero_copy_only=False)


def _differs(logged: np.ndarray, replayed: np.ndarray, tolerance: float) -> np.ndarray:
    """Per row: True where outputs disagree (numbers beyond ``tolerance`` relative above 1, labels exactly)."""
    a, b = np.asarray(logged), np.asarray(replayed)
    if a.dtype.kind in "fiub" and b.dtype.kind in "fiub":
        e, x = a.astype(np.float64), b.astype(np.float64)
        both_nan = np.isnan(e) & np.isnan(x)
        diff = np.where(both_nan, 0.0, np.abs(e - x))
        diff = np.where(np.isnan(diff), np.inf, diff)
        return np.asarray(diff / np.maximum(1.0, np.abs(e)) > tolerance)
    return np.array([json_value(p) != json_value(q) for p, q in zip(a.tolist(), b.tolist(), strict=True)], bool)


class _Replayer:
    """Accumulate replay results over batches of one model version."""

    def __init__(self, report: ReplayReport, model: Artifact, version: int, lake: bool) -> None:
        self.report, self.model, self.version, self.lake = report, model, version, lake
        self.tolerance = float(model.manifest["parity"]["tolerance"])
        self.outputs = model.signature.output_names
        self.text = {c.name: c.datatype == "BYTES" for c in model.signature.inputs}
        self.stats = report.versions.setdefault(str(version), {"rows": 0, "mismatched": 0, "errors": 0})

    def columns(self) -> list[str]:
        """Columns read from the data."""
        cols = [self._col(n) for n in self.model.signature.input_names]
        return cols + [OUTPUT_PREFIX + o for o in self.outputs]

    def _col(self, name: str) -> str:
        return lake_column_name(name) if self.lake else name

    def _predict(self, batch: pa.RecordBatch | pa.Table) -> dict[str, np.ndarray]:
        columns = {n: _values(batch.column(self._col(n)), t) for n, t in self.text.items()}
        return self.model.predict_columns(columns, observe=False)

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Replay one batch; a batch the codec rejects is retried row by row to find the bad rows."""
        n = batch.num_rows
        self.report.rows += n
        self.stats["rows"] += n
        try:
            replayed = self._predict(batch)
        except SchemaError:
            for i in range(n):
                row = batch.slice(i, 1)
                try:
                    self._compare(row, self._predict(row))
                except SchemaError as e:
                    self.report.errors += 1
                    self.stats["errors"] += 1
                    self._example(row, 0, {}, f"input rejected by the model's signature: {e}")
            return
        self._compare(batch, replayed)

    def _compare(self, batch: pa.RecordBatch | pa.Table, replayed: dict[str, np.ndarray]) -> None:
        n = batch.num_rows
        self.report.replayed += n
        bad = np.zeros(n, bool)
        per: dict[str, np.ndarray] = {}
        logged: dict[str, np.ndarray] = {}
        for name in self.outputs:
            logged[name] = batch.column(OUTPUT_PREFIX + name).to_numpy(zero_copy_only=False)
            per[name] = _differs(logged[name], replayed[name], self.tolerance)
            self.report.outputs[name] = self.report.outputs.get(name, 0) + int(per[name].sum())
            bad |= per[name]
        count = int(bad.sum())
        self.report.mismatched += count
        self.stats["mismatched"] += count
        for i in np.flatnonzero(bad)[: max(MAX_EXAMPLES - len(self.report.examples), 0)]:
            diff = {
                name: {"logged": json_value(logged[name][i]), "replayed": json_value(np.asarray(replayed[name])[i])}
                for name in self.outputs
                if per[name][i]
            }
            self._example(batch, int(i), diff, None)

    def _example(self, batch: pa.RecordBatch | pa.Table, i: int, diff: dict[str, Any], error: str | None) -> None:
        if len(self.report.examples) >= MAX_EXAMPLES:
            return
        names = batch.schema.names
        rid = batch.column("request_id")[i].as_py() if "request_id" in names else None
        row = batch.column("row")[i].as_py() if "row" in names else None
        self.report.examples.append(ReplayExample(rid, row, self.version, diff, error))


def _model_for(
    version: int, artifact: Artifact, registry: Registry | None, trusted: bool, notes: list[str]
) -> tuple[Artifact, str]:
    """Return the model that served ``version`` and how it was found."""
    if artifact.version == version:
        return artifact, f"the given artifact ({artifact.name}:{version})"
    if version == 0 or registry is None:
        return artifact, "the given artifact" + (" (unregistered version 0)" if version == 0 else "")
    ref = f"{artifact.name}:{version}"
    try:
        return registry.load(ref, trusted=trusted), f"registry {ref}"
    except NotFoundError:
        notes.append(f"version {version} is not in the registry: replayed with the given artifact instead")
        return artifact, "the given artifact (version not registered)"


def _batches(
    files: list[str], columns: list[str], batch_size: int, window: tuple[int | None, int | None]
) -> Iterator[pa.RecordBatch | pa.Table]:
    """Stream the needed columns of ``files`` within the time window."""
    lo, hi = window
    for path in files:
        try:
            with pq.ParquetFile(path, pre_buffer=False) as pf:
                names = pf.schema_arrow.names
                missing = [c for c in columns if c not in names]
                if missing:
                    raise SkewDataError(
                        f"replay: {path} lacks column(s) {missing} needed to replay its model version; the "
                        "lake rows must hold every signature input and output.<name> column"
                    )
                read = [c for c in [*columns, "request_id", "row", TS] if c in names]
                read = list(dict.fromkeys(read))
                for batch in pf.iter_batches(batch_size=batch_size, columns=read):
                    for _, rows in _group(batch, lo, hi, None) if TS in names else [(0, batch)]:
                        if rows.num_rows:
                            yield rows
        except (OSError, pa.ArrowInvalid) as e:
            raise SkewDataError(f"replay: cannot read Parquet file {path}: {e}") from e


def replay_report(
    src: Source,
    artifact: Artifact,
    level: Level | None,
    *,
    registry: Registry | None,
    trusted: bool,
    since: datetime | None,
    until: datetime | None,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Replay every logged row of the window (per lake version) and report the mismatch rate and examples."""
    if src.kind == "csv":
        raise SkewDataError("`replay=True` reads Parquet serving logs (the lake); convert the CSV to Parquet first")
    if not any(c.startswith(OUTPUT_PREFIX) for c in src.columns) and src.files:
        raise SkewDataError(
            f"`replay=True` needs logged outputs: {src.path} has no output.<name> column; point `data` at the lake"
        )
    report = ReplayReport()
    by_version: dict[int, list[str]] = {}
    for f in src.files:
        by_version.setdefault(src.versions.get(f, 0) if src.kind == "lake" else 0, []).append(f)
    window = (_us(since), _us(until))
    for version, files in sorted(by_version.items()):
        model, how = _model_for(version, artifact, registry, trusted, report.notes)
        rep = _Replayer(report, model, version, src.kind == "lake")
        rep.stats["model"] = how
        for batch in _batches(files, rep.columns(), batch_size, window):
            try:
                rep.add(batch)
            except ParityError:
                raise
            except (pa.ArrowException, ValueError, TypeError) as e:
                raise SkewDataError(f"replay failed on model version {version}: {type(e).__name__}: {e}") from e
            if progress is not None:
                progress(batch.num_rows)
    rate = report.rate
    metric = Metric("replay_mismatch", rate, rate, 0.0, None, None)
    if level is None:
        metric.status = "not_judged"
    elif rate is None:
        metric.status = "unavailable"
        metric.note = "no rows to replay"
    else:
        metric.warn, metric.alert = level.warn, level.alert
        metric.severity = level.judge(rate)
    report.metric, report.severity = metric, metric.severity
    return report
