"""The prediction lake: schema, nulls, partitions, bounded queue, failure accounting, reading back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from parity.errors import LakeError, LakeFullError, ParityError
from parity.lake import LakeWriter, partitions, read_lake
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
    lake = LakeWriter(tmp_path, flush_interval_s=60, max_queue_rows=10, overflow="drop")
    inputs, outputs = _request(6)
    common = {"model": "m", "version": 1, "signature": SIG, "request_id": "r", "latency_ms": 1.0}
    assert lake.write(inputs=inputs, outputs=outputs, **common)  # type: ignore[arg-type]
    assert not lake.write(inputs=inputs, outputs=outputs, **common)  # type: ignore[arg-type]
    lake.close()
    assert not lake.write(inputs=inputs, outputs=outputs, **common)  # type: ignore[arg-type]
    assert (lake.written, lake.dropped) == (6, 12)


def test_startup_check_refuses_an_unwritable_root(tmp_path: Path) -> None:
    blocker = tmp_path / "lake"
    blocker.write_text("not a directory")
    with pytest.raises(LakeError, match="not writable"):
        LakeWriter(blocker, flush_interval_s=60)


def test_failed_write_keeps_rows_and_retries(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A file where the model's partition directory must go: every write fails until it is removed.
    (tmp_path / "model=m").write_text("in the way")
    lake = LakeWriter(tmp_path, flush_interval_s=0.05)
    inputs, outputs = _request(3)
    assert lake.write(model="m", version=1, signature=SIG, inputs=inputs, outputs=outputs, request_id="r", latency_ms=1)
    deadline = time.monotonic() + 10
    while lake.healthy and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not lake.healthy and lake.status()["error"] and lake.queued == 3
    assert (lake.written, lake.dropped) == (0, 0)
    (tmp_path / "model=m").unlink()
    while not lake.healthy and time.monotonic() < deadline:
        time.sleep(0.02)
    lake.close()
    assert (lake.written, lake.dropped, lake.queued) == (3, 0, 0)
    assert lake.last_flush is not None and "retrying" in caplog.text
    assert read_lake(tmp_path).num_rows == 3


def test_block_waits_for_room_and_times_out(tmp_path: Path) -> None:
    (tmp_path / "model=m").write_text("in the way")  # writes fail: the queue cannot drain
    lake = LakeWriter(tmp_path, flush_interval_s=0.05, max_queue_rows=8)
    inputs, outputs = _request(6)
    common = {"model": "m", "version": 1, "signature": SIG, "request_id": "r", "latency_ms": 1.0}
    assert lake.write(inputs=inputs, outputs=outputs, **common)  # type: ignore[arg-type]
    assert not lake.write(inputs=inputs, outputs=outputs, timeout=0.2, **common)  # type: ignore[arg-type]
    assert lake.blocked == 6 and lake.dropped == 6

    async def wait_then_fit() -> bool:
        task = asyncio.ensure_future(lake.put(inputs=inputs, outputs=outputs, timeout=10, **common))  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
        assert not task.done()  # blocked: no room while the write keeps failing
        await asyncio.to_thread((tmp_path / "model=m").unlink)
        return await task

    assert asyncio.run(wait_then_fit())
    with pytest.raises(LakeFullError, match="exceeds the lake queue bound"):
        asyncio.run(lake.put(inputs=_request(9)[0], outputs=_request(9)[1], **common))  # type: ignore[arg-type]
    lake.close()
    assert lake.written == 12


def test_shed_refuses_when_full(tmp_path: Path) -> None:
    (tmp_path / "model=m").write_text("in the way")
    lake = LakeWriter(tmp_path, flush_interval_s=60, max_queue_rows=8, overflow="shed")
    inputs, outputs = _request(6)
    common = {"model": "m", "version": 1, "signature": SIG, "request_id": "r", "latency_ms": 1.0}
    assert asyncio.run(lake.put(inputs=inputs, outputs=outputs, **common))  # type: ignore[arg-type]
    assert not lake.has_room(6)
    with pytest.raises(LakeFullError, match="full"):
        asyncio.run(lake.put(inputs=inputs, outputs=outputs, **common))  # type: ignore[arg-type]
    (tmp_path / "model=m").unlink()
    lake.close()
    assert (lake.written, lake.dropped) == (6, 0)


def test_rotation_by_size_and_unsafe_model_names(tmp_path: Path) -> None:
    with LakeWriter(tmp_path, flush_interval_s=60, file_bytes=1) as lake:
        for r in range(3):
            inputs, outputs = _request(4, start=4 * r)
            lake.write(model="m", version=1, signature=SIG, inputs=inputs, outputs=outputs, request_id=f"{r}",
                       latency_ms=1)  # fmt: skip
            lake.flush()
        with pytest.raises(ParityError, match="must match"):
            lake.write(model="../../x", version=1, signature=SIG, inputs=inputs, outputs=outputs, request_id="r",
                       latency_ms=1)  # fmt: skip
    assert len(list(tmp_path.rglob("part-*.parquet"))) == 3
    assert not (tmp_path.parent / "x").exists()


_CRASH = """
import os, sys
import numpy as np
from tests.server.test_lake import SIG, _request
from parity.lake import LakeWriter
lake = LakeWriter(sys.argv[1], flush_interval_s=3600, durability="ack")
for r in range(5):
    inputs, outputs = _request(7, start=7 * r)
    ok = lake.write(model="m", version=3, signature=SIG, inputs=inputs, outputs=outputs, request_id=f"a{r}",
                    latency_ms=1)
    assert ok
os._exit(9)  # no close, no flush: like kill -9
"""


def test_ack_mode_replays_the_wal_after_a_crash(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert read_lake(tmp_path).num_rows == 0  # nothing was published before the crash
    assert len(list(tmp_path.glob(".wal/*/*.arrows"))) == 1
    with LakeWriter(tmp_path, flush_interval_s=60) as lake:
        assert lake.recovered == 35
    table = read_lake(tmp_path)
    assert table.num_rows == 35 and sorted(set(table.column("request_id").to_pylist())) == [f"a{r}" for r in range(5)]
    assert table.column("n").to_pylist() == list(range(35))
    assert not list(tmp_path.glob(".wal/*"))
    with LakeWriter(tmp_path, flush_interval_s=60) as lake:  # replaying twice publishes nothing twice
        assert lake.recovered == 0
    assert read_lake(tmp_path).num_rows == 35


def test_partitions_prune_by_model_version_and_window(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with LakeWriter(tmp_path, flush_interval_s=60) as lake:
        for version, days in ((1, 3), (2, 0)):
            inputs, outputs = _request(2)
            ts = (now - timedelta(days=days)).timestamp()
            lake.write(model="churn", version=version, signature=SIG, inputs=inputs, outputs=outputs,
                       request_id="r", latency_ms=1, ts=ts)  # fmt: skip
    assert [p.version for p in partitions(tmp_path)] == [1, 2]
    assert [p.version for p in partitions(tmp_path, version=2)] == [2]
    assert partitions(tmp_path, model="other") == []
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    assert [p.version for p in partitions(tmp_path, since=now - timedelta(days=1))] == [2]
    assert [p.version for p in partitions(tmp_path, until=midnight)] == [1]  # [since, until): today excluded
    assert all(len(p.files) == 1 for p in partitions(tmp_path))


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
