"""The prediction lake: schema, nulls, partitions, bounded queue, failure accounting, reading back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from parity.errors import ParityError
from parity.lake import LakeWriter, read_lake
from parity.schema import MISSING_STRING, ColumnSpec, OutputSpec, Signature

SIG = Signature(
    (
        ColumnSpec("age", "FP64", True),
        ColumnSpec("n", "INT64", False),
        ColumnSpec("flag", "BOOL", False),
        ColumnSpec("plan", "BYTES", True),
        ColumnSpec("model", "FP32", False),  # collides with a metadata column
    ),
    (OutputSpec("label", "BYTES"), OutputSpec("probability", "FP64")),
)


def _request(rows: int, start: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    idx = np.arange(start, start + rows)
    inputs = {
        "age": np.where(idx % 2 == 0, np.nan, idx.astype(float)),
        "n": idx.astype(np.int64),
        "flag": idx % 3 == 0,
        "plan": np.array([MISSING_STRING if i % 4 == 0 else f"p{i}" for i in idx], dtype=object),
        "model": idx.astype(np.float32),
    }
    outputs = {"label": np.array(["yes"] * rows, dtype=object), "probability": idx / 100.0}
    return inputs, outputs


def test_rows_schema_and_nulls(tmp_path: Path) -> None:
    with LakeWriter(tmp_path, flush_interval_s=60) as lake:
        for r in range(3):
            inputs, outputs = _request(4, start=4 * r)
            assert lake.write(
                model="churn", version=2, signature=SIG, inputs=inputs, outputs=outputs,
                request_id=f"req-{r}", latency_ms=1.5,
            )  # fmt: skip
    assert lake.written == 12 and lake.dropped == 0
    files = list(tmp_path.glob("model=churn/version=2/date=*/part-*.parquet"))
    assert len(files) == 1
    assert not list(tmp_path.rglob(".*.tmp"))
    table = read_lake(tmp_path)
    assert table.column_names == [
        "ts", "model", "model_version", "request_id", "row", "latency_ms",
        "age", "n", "flag", "plan", "input.model", "output.label", "output.probability",
    ]  # fmt: skip
    schema = table.schema
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("model_version").type == pa.int64()
    assert schema.field("n").type == pa.int64() and schema.field("flag").type == pa.bool_()
    assert schema.field("plan").type == pa.string() and schema.field("input.model").type == pa.float32()
    data = table.to_pylist()
    assert [d["row"] for d in data] == [0, 1, 2, 3] * 3
    assert [d["request_id"] for d in data[:5]] == ["req-0"] * 4 + ["req-1"]
    assert data[0]["age"] is None and data[1]["age"] == 1.0  # NaN -> null
    assert data[0]["plan"] is None and data[1]["plan"] == "p1"  # MISSING_STRING -> null
    assert data[5]["output.probability"] == pytest.approx(0.05)


def test_queue_bound_and_closed_writer_drop(tmp_path: Path) -> None:
    lake = LakeWriter(tmp_path, flush_interval_s=60, max_queue_rows=10)
    inputs, outputs = _request(6)
    common = {"model": "m", "version": 1, "signature": SIG, "request_id": "r", "latency_ms": 1.0}
    assert lake.write(inputs=inputs, outputs=outputs, **common)  # type: ignore[arg-type]
    assert not lake.write(inputs=inputs, outputs=outputs, **common)  # type: ignore[arg-type]
    lake.close()
    assert not lake.write(inputs=inputs, outputs=outputs, **common)  # type: ignore[arg-type]
    assert (lake.written, lake.dropped) == (6, 12)


def test_failed_write_is_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "lake"
    blocker.write_text("not a directory")
    lake = LakeWriter(blocker, flush_interval_s=60)
    inputs, outputs = _request(3)
    lake.write(model="m", version=1, signature=SIG, inputs=inputs, outputs=outputs, request_id="r", latency_ms=1.0)
    lake.close()
    assert (lake.written, lake.dropped) == (0, 3)
    assert "dropped 3 row(s)" in caplog.text


def test_background_flush_and_filters(tmp_path: Path) -> None:
    lake = LakeWriter(tmp_path, flush_interval_s=0.05)
    now = datetime.now(UTC).timestamp()
    for version, ts in ((1, now - 86400 * 3), (2, now)):
        inputs, outputs = _request(2)
        lake.write(
            model="churn", version=version, signature=SIG, inputs=inputs, outputs=outputs,
            request_id="r", latency_ms=1.0, ts=ts,
        )  # fmt: skip
    for _ in range(100):
        if lake.written == 4:
            break
        import time

        time.sleep(0.02)
    assert lake.written == 4  # flushed by the thread, before close
    lake.close()
    assert read_lake(tmp_path, model="churn", version=2).num_rows == 2
    assert read_lake(tmp_path, model="other").num_rows == 0
    since = datetime.now(UTC) - timedelta(days=1)
    assert read_lake(tmp_path, since=since).column("model_version").to_pylist() == [2, 2]
    assert read_lake(tmp_path, until=since.replace(tzinfo=None)).column("model_version").to_pylist() == [1, 1]
    assert len({p.parent.name for p in tmp_path.rglob("part-*.parquet")}) == 2  # two date partitions


@pytest.mark.parametrize("model", ["../../x", "a/b", "..", "", "penguins\n"])
def test_model_names_cannot_leave_the_root(tmp_path: Path, model: str) -> None:
    root = tmp_path / "deep" / "lake"
    writer = LakeWriter(root, flush_interval_s=60)
    inputs, outputs = _request(2)
    try:
        with pytest.raises(ParityError, match="must match"):
            writer.write(
                model=model, version=1, signature=SIG, inputs=inputs, outputs=outputs, request_id="r", latency_ms=1.0
            )
    finally:
        writer.close()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_request_ids_are_dictionary_encoded(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path, flush_interval_s=60)
    for i in range(3):
        inputs, outputs = _request(100)
        writer.write(
            model="m", version=1, signature=SIG, inputs=inputs, outputs=outputs, request_id=f"id{i}", latency_ms=1.0
        )
    writer.close()
    table = read_lake(tmp_path)
    column = table["request_id"]
    assert pa.types.is_dictionary(column.type)
    assert sorted(column.to_pylist()) == ["id0"] * 100 + ["id1"] * 100 + ["id2"] * 100
    assert sum(len(chunk.dictionary) for chunk in column.chunks) == 3  # one copy per request, not per row
