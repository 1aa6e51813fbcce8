"""The prediction lake: schema, nulls, partitions, bounded queue, failure accounting, reading back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

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
    with pytest.raises(LakeError, match=r"not writable \(File exists\); pass a writable directory"):
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


def test_rows_either_side_of_utc_midnight_land_in_their_own_day(tmp_path: Path) -> None:
    midnight = datetime(2024, 2, 10, tzinfo=UTC).timestamp()
    with LakeWriter(tmp_path, flush_interval_s=60) as lake:
        for ts in (midnight - 0.1, midnight, midnight + 0.1, midnight - 0.2):  # the day's key is cached
            inputs, outputs = _request(1)
            lake.write(model="churn", version=1, signature=SIG, inputs=inputs, outputs=outputs,
                       request_id="r", latency_ms=1.0, ts=ts)  # fmt: skip
    import pyarrow.parquet as pq

    days = {p.day.isoformat(): sum(pq.read_metadata(f).num_rows for f in p.files) for p in partitions(tmp_path)}
    assert days == {"2024-02-09": 2, "2024-02-10": 2}


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


# --------------------------------------------------------------------------- layout and WAL, unit level


def test_partition_key_layout_and_the_walker_skips_foreign_directories(tmp_path: Path) -> None:
    from datetime import date

    from parity.lake import partition_key

    assert partition_key("churn", 3, date(2024, 2, 9)) == "model=churn/version=3/date=2024-02-09"
    day = tmp_path / "model=churn/version=3/date=2024-02-09"
    day.mkdir(parents=True)
    for name in ("part-b.parquet", "part-a.parquet", ".part-c.parquet.tmp", "other.parquet"):
        (day / name).write_bytes(b"")
    (day / "part-dir.parquet").mkdir()  # not a file
    for junk in ("model=churn/version=x/date=2024-02-09", "model=churn/version=3/date=someday",
                 "model=churn/notaversion=1/date=2024-02-09", "modelx/version=1/date=2024-02-09",
                 "model=churn/version=3/day=2024-02-10"):  # fmt: skip
        (tmp_path / junk).mkdir(parents=True)
    [p] = partitions(tmp_path)
    assert (p.model, p.version, p.day, p.path) == ("churn", 3, date(2024, 2, 9), day)
    assert p.files == (day / "part-a.parquet", day / "part-b.parquet")  # sorted; temp files and dirs skipped
    assert partitions(tmp_path, model="churn", version=3) == [p]
    assert partitions(tmp_path, model="chur") == [] and partitions(tmp_path, version=4) == []
    assert partitions(tmp_path / "missing") == []


def test_partitions_window_is_half_open_on_days(tmp_path: Path) -> None:
    from datetime import date

    for d in ("2024-02-08", "2024-02-09", "2024-02-10"):
        (tmp_path / f"model=m/version=1/date={d}").mkdir(parents=True)

    def days(since: datetime | None = None, until: datetime | None = None) -> list[str]:
        return [p.day.isoformat() for p in partitions(tmp_path, since=since, until=until)]

    midnight = datetime(2024, 2, 9, tzinfo=UTC)
    assert days(since=midnight) == ["2024-02-09", "2024-02-10"]
    assert days(since=midnight + timedelta(hours=23)) == ["2024-02-09", "2024-02-10"]  # the day overlaps
    assert days(until=midnight) == ["2024-02-08"]  # until is exclusive: 02-09 starts at it
    assert days(until=midnight + timedelta(microseconds=1)) == ["2024-02-08", "2024-02-09"]
    assert days(since=midnight, until=midnight + timedelta(days=1)) == ["2024-02-09"]
    # Naive datetimes are UTC; aware ones in another zone are converted first.
    assert days(since=datetime(2024, 2, 10)) == ["2024-02-10"]
    plus_two = timezone(timedelta(hours=2))
    assert days(since=datetime(2024, 2, 10, 1, tzinfo=plus_two)) == ["2024-02-09", "2024-02-10"]
    assert date(2024, 2, 9).isoformat() in days()


def test_read_lake_filters_rows_half_open_by_timestamp(tmp_path: Path) -> None:
    base = datetime(2024, 2, 9, 12, tzinfo=UTC).timestamp()
    with LakeWriter(tmp_path, flush_interval_s=60) as lake:
        for i in range(4):  # one row each at 12:00, 12:01, 12:02, 12:03
            inputs, outputs = _request(1, start=i)
            lake.write(model="m", version=1, signature=SIG, inputs=inputs, outputs=outputs,
                       request_id=f"r{i}", latency_ms=1.0, ts=base + 60 * i)  # fmt: skip
    t = datetime(2024, 2, 9, 12, 1, tzinfo=UTC)
    ids = lambda **kw: read_lake(tmp_path, **kw).column("request_id").to_pylist()  # noqa: E731
    assert ids(since=t) == ["r1", "r2", "r3"]  # since is inclusive
    assert ids(until=t) == ["r0"]  # until is exclusive
    assert ids(since=t, until=t + timedelta(minutes=2)) == ["r1", "r2"]
    assert ids(since=t.replace(tzinfo=None), until=(t + timedelta(minutes=1)).replace(tzinfo=None)) == ["r1"]
    assert read_lake(tmp_path, model="none").schema.names[:6] == [
        "ts", "model", "model_version", "request_id", "row", "latency_ms",
    ]  # fmt: skip
    assert read_lake(tmp_path, model="none").num_rows == 0


def test_local_publisher_stages_a_dot_file_and_renames_it(tmp_path: Path) -> None:
    from parity.lake import LocalPublisher

    pub = LocalPublisher(tmp_path)
    key = "model=m/version=1/date=2024-02-09/part-x.parquet"
    staged = pub.stage(key)
    assert staged == tmp_path / "model=m/version=1/date=2024-02-09/.part-x.parquet.tmp"
    assert staged.parent.is_dir() and not pub.exists(key)
    staged.write_bytes(b"complete")
    pub.publish(staged, key)
    assert pub.exists(key) and (tmp_path / key).read_bytes() == b"complete" and not staged.exists()
    again = pub.stage(key)
    again.write_bytes(b"x")
    pub.discard(again)
    pub.discard(again)  # already gone: not an error
    assert not again.exists() and pub.exists(key)


def _one_request_row_group(root: Path, rows: int) -> Any:
    """Write one ``rows``-row request to a lake at ``root`` and return its file's first row-group metadata."""
    import pyarrow.parquet as pq

    with LakeWriter(root, flush_interval_s=60) as lake:
        inputs, outputs = _request(rows)
        lake.write(model="m", version=1, signature=SIG, inputs=inputs, outputs=outputs, request_id="r", latency_ms=1.0)
    [path] = root.rglob("part-*.parquet")
    return pq.ParquetFile(path).metadata.row_group(0)


def test_lake_files_dictionary_encode_text_only(tmp_path: Path) -> None:
    meta = _one_request_row_group(tmp_path, 50)
    encoded = {
        meta.column(i).path_in_schema: "RLE_DICTIONARY" in str(meta.column(i).encodings)
        for i in range(meta.num_columns)
    }
    assert encoded["model"] and encoded["request_id"] and encoded["plan"] and encoded["model_version"]
    assert not encoded["age"] and not encoded["output.probability"] and not encoded["latency_ms"]


def test_lake_files_keep_statistics_for_ts_only(tmp_path: Path) -> None:
    meta = _one_request_row_group(tmp_path, 20)
    stats = {meta.column(i).path_in_schema: meta.column(i).statistics for i in range(meta.num_columns)}
    ts = stats.pop("ts")
    assert ts is not None and ts.has_min_max and ts.min <= ts.max  # time pruning by other engines still works
    assert all(s is None or not s.has_min_max for s in stats.values()), stats


def test_writer_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="overflow must be one of"):
        LakeWriter(tmp_path, overflow="spill")  # type: ignore[arg-type]
    with pytest.raises(LakeError, match="durability must be one of"):
        LakeWriter(tmp_path, durability="sync")  # type: ignore[arg-type]
    for bad in ({"max_queue_rows": 0}, {"max_queue_bytes": 0}, {"file_bytes": 0}, {"flush_interval_s": 0}):
        with pytest.raises(LakeError, match="must be >= 1 and flush_interval_s > 0"):
            LakeWriter(tmp_path, **bad)  # type: ignore[arg-type]
    with LakeWriter(tmp_path, max_queue_rows=1, max_queue_bytes=1, file_bytes=1, flush_interval_s=0.5) as lake:
        assert lake.status() == {
            "ok": True, "error": None, "queued_rows": 0, "queued_bytes": 0, "last_flush": None,
            "durability": "buffered", "overflow": "block",
        }  # fmt: skip


def _segment_table(rows: int) -> pa.Table:
    return pa.table({"x": pa.array(range(rows), pa.int64())})


def test_wal_recovery_skips_live_writers_published_files_and_garbage(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from parity.lake import LocalPublisher
    from parity.lake._wal import Wal, recover

    pub = LocalPublisher(tmp_path)
    key = "model=m/version=1/date=2024-02-09/part-a.parquet"
    dead = Wal(tmp_path)
    seg = dead.segment("part-a.parquet", _segment_table(0).schema, key)
    for batch in _segment_table(5).to_batches(max_chunksize=2):  # 3 batches: 2 + 2 + 1 rows
        seg.append(batch)
    seg.sync()
    seg.close()
    (dead.directory / "part-junk.parquet.arrows").write_bytes(b"not arrow")  # no schema: never acknowledged
    (tmp_path / key).parent.mkdir(parents=True)
    stale_copy = pub.stage(key)
    stale_copy.write_bytes(b"half a file of the dead writer")
    live = Wal(tmp_path)  # holds its lock: a running writer
    live_seg = live.segment(
        "part-b.parquet", _segment_table(0).schema, "model=m/version=1/date=2024-02-09/part-b.parquet"
    )
    live_seg.append(_segment_table(3).to_batches()[0])
    live_seg.sync()
    dead.close(remove=False)  # the dead writer's lock is released, its files stay

    assert recover(tmp_path, pub) == 5
    assert pq.read_table(tmp_path / key).column("x").to_pylist() == [0, 1, 2, 3, 4]
    assert not stale_copy.exists() and not dead.directory.exists()
    assert live.directory.is_dir() and (live.directory / "part-b.parquet.arrows").exists()  # not touched
    assert recover(tmp_path, pub) == 0  # still locked by the live writer; the dead one is gone
    live_seg.close()
    live.close(remove=False)
    assert recover(tmp_path, pub) == 3
    assert not list((tmp_path / ".wal").iterdir())


def test_wal_recovery_never_publishes_a_file_twice_and_skips_a_torn_tail(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from parity.lake import LocalPublisher
    from parity.lake._wal import Wal, recover

    pub = LocalPublisher(tmp_path)
    day = "model=m/version=1/date=2024-02-09"
    wal = Wal(tmp_path)
    done = wal.segment("part-a.parquet", _segment_table(0).schema, f"{day}/part-a.parquet")
    done.append(_segment_table(4).to_batches()[0])
    done.sync()
    done.close()
    torn = wal.segment("part-b.parquet", _segment_table(0).schema, f"{day}/part-b.parquet")
    torn.append(_segment_table(3).to_batches()[0])
    torn.append(pa.table({"x": pa.array(range(100, 150), pa.int64())}).to_batches()[0])
    torn.sync()  # the process dies here: no close, so no end-of-stream marker
    wal.close(remove=True)  # segments are left: the directory stays for the replay
    assert wal.directory.is_dir()
    path = wal.directory / "part-b.parquet.arrows"
    os.truncate(path, path.stat().st_size - 16)  # the last batch was cut short
    (tmp_path / day).mkdir(parents=True)
    (tmp_path / day / "part-a.parquet").write_bytes(b"already published")  # died before deleting its segment

    assert recover(tmp_path, pub) == 3
    assert (tmp_path / day / "part-a.parquet").read_bytes() == b"already published"
    assert pq.read_table(tmp_path / day / "part-b.parquet").column("x").to_pylist() == [0, 1, 2]
    assert not wal.directory.exists()
    torn.close()
    empty = Wal(tmp_path)
    empty.close(remove=True)  # nothing pending: the directory goes
    assert not empty.directory.exists()
    assert recover(tmp_path / "no-wal-here", pub) == 0


def test_queued_rows_and_bytes_return_to_zero_once_published(tmp_path: Path) -> None:
    numbers = {"a": np.zeros(10), "b": np.zeros(10, dtype=np.int32)}
    assert LakeWriter.estimate_bytes(numbers) == 10 * 8 + 10 * 4  # numeric columns: their buffers
    assert LakeWriter.estimate_bytes({"s": np.array(["x", "y", "z"], dtype=object)}) == 3 * 48  # per str
    with LakeWriter(tmp_path, flush_interval_s=60) as lake:
        inputs, outputs = _request(5)
        lake.write(model="m", version=1, signature=SIG, inputs=inputs, outputs=outputs, request_id="r", latency_ms=1.0)
        columns_bytes = LakeWriter.estimate_bytes(inputs) + LakeWriter.estimate_bytes(outputs)
        assert lake.queued == 5 and lake.queued_bytes > columns_bytes
        lake.flush()
        assert (lake.queued, lake.queued_bytes, lake.written) == (0, 0, 5)
        assert lake.status()["queued_bytes"] == 0 and lake.last_flush is not None


def test_the_byte_bound_admits_up_to_exactly_its_size(tmp_path: Path) -> None:
    inputs, outputs = _request(4)
    common = {"model": "m", "version": 1, "signature": SIG, "inputs": inputs, "outputs": outputs, "latency_ms": 1.0}
    with LakeWriter(tmp_path / "probe", flush_interval_s=60) as probe:
        probe.write(request_id="r", **common)  # type: ignore[arg-type]
        size = probe.queued_bytes  # what one such request counts against the bound
    for bound, accepted in ((2 * size, [True, True]), (2 * size - 1, [True, False])):
        with LakeWriter(tmp_path / str(bound), flush_interval_s=60, max_queue_bytes=bound, overflow="drop") as lake:
            assert [lake.write(request_id="r", **common) for _ in range(2)] == accepted  # type: ignore[arg-type]
            assert lake.has_room(0, bound - lake.queued_bytes) and not lake.has_room(0, bound - lake.queued_bytes + 1)


def test_a_request_id_counts_its_length_against_the_byte_bound(tmp_path: Path) -> None:
    inputs, outputs = _request(2)
    sizes = []
    for request_id in ("r", "r" * 1000):
        with LakeWriter(tmp_path / str(len(request_id)), flush_interval_s=60) as lake:
            lake.write(model="m", version=1, signature=SIG, inputs=inputs, outputs=outputs,
                       request_id=request_id, latency_ms=1.0)  # fmt: skip
            sizes.append(lake.queued_bytes)
    assert sizes[1] - sizes[0] == 999  # stored once per request (dictionary-encoded), byte for byte


def test_put_in_block_mode_gives_up_at_its_deadline(tmp_path: Path) -> None:
    (tmp_path / "model=m").write_text("in the way")  # writes fail: the queue never drains
    inputs, outputs = _request(6)
    common = {"model": "m", "version": 1, "signature": SIG, "inputs": inputs, "outputs": outputs, "latency_ms": 1.0}
    with LakeWriter(tmp_path, flush_interval_s=60, max_queue_rows=8) as lake:
        assert asyncio.run(lake.put(request_id="a", **common))  # type: ignore[arg-type]

        async def late() -> None:
            # The outer bound only matters if the deadline is not honoured (the failing case).
            await asyncio.wait_for(lake.put(request_id="b", timeout=0.05, **common), 10)  # type: ignore[arg-type]

        with pytest.raises(LakeFullError, match="no room for this request's rows within its deadline"):
            asyncio.run(late())
        assert lake.blocked == 6 and lake.queued == 6
        (tmp_path / "model=m").unlink()


def test_observers_see_every_count_and_a_failing_one_breaks_nothing(tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []

    def broken(outcome: str, rows: int) -> None:
        raise RuntimeError("observer bug")

    inputs, outputs = _request(3)
    common = {"model": "m", "version": 1, "signature": SIG, "inputs": inputs, "outputs": outputs, "latency_ms": 1.0}
    with LakeWriter(tmp_path, flush_interval_s=60, max_queue_rows=4, overflow="drop") as lake:
        lake.observe(broken)
        lake.observe(lambda outcome, rows: seen.append((outcome, rows)))
        assert lake.write(request_id="a", **common)  # type: ignore[arg-type]
        assert not lake.write(request_id="b", **common)  # type: ignore[arg-type]  # queue full: dropped
        lake.flush()
    assert seen == [("dropped", 3), ("written", 3)]
    assert (lake.written, lake.dropped) == (3, 3)


def test_a_clean_close_reports_no_loss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, int]] = []
    with LakeWriter(tmp_path, flush_interval_s=60) as lake:
        lake.observe(lambda outcome, rows: seen.append((outcome, rows)))
        inputs, outputs = _request(2)
        lake.write(model="m", version=1, signature=SIG, inputs=inputs, outputs=outputs, request_id="r", latency_ms=1.0)
    assert seen == [("written", 2)] and lake.dropped == 0
    assert "could not write" not in caplog.text and "write-ahead log for the next start" not in caplog.text


def test_ack_mode_refuses_to_acknowledge_rows_the_wal_could_not_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parity.lake import _wal

    def disk_full(self: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_wal.WalSegment, "sync", disk_full)
    inputs, outputs = _request(2)
    common = {"model": "m", "version": 1, "signature": SIG, "inputs": inputs, "outputs": outputs, "latency_ms": 1.0}
    with LakeWriter(tmp_path, flush_interval_s=60, durability="ack") as lake:
        assert lake.write(request_id="a", **common) is False  # type: ignore[arg-type]
        with pytest.raises(LakeError, match=r"write-ahead log cannot be written \(No space left on device\)"):
            asyncio.run(lake.put(request_id="b", **common))  # type: ignore[arg-type]
        assert not lake.healthy


def test_the_documented_file_size_default(tmp_path: Path) -> None:
    with LakeWriter(tmp_path) as lake:
        assert lake.file_bytes == 67_108_864  # docs/serving.md, --lake-file-bytes
        assert (lake.flush_interval_s, lake.overflow, lake.durability) == (2.0, "block", "buffered")
