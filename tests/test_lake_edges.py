"""The lake writer's less travelled paths: bad settings, ack mode in-process, failing observers and publishers,
unencodable rows, a signature change within one partition, and the async put when full or closed."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from parity.errors import LakeError, LakeFullError
from parity.lake import LakeWriter, read_lake
from parity.schema import ColumnSpec, OutputSpec, Signature

SIG = Signature((ColumnSpec("x", "FP64", True),), (OutputSpec("y", "FP64"),))
SIG2 = Signature((ColumnSpec("x", "FP64", True), ColumnSpec("z", "INT64", False)), (OutputSpec("y", "FP64"),))


def rows(n: int, start: int = 0) -> dict[str, Any]:
    x = np.arange(start, start + n, dtype=np.float64)
    return {"signature": SIG, "inputs": {"x": x}, "outputs": {"y": x * 2}, "latency_ms": 1.0}


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"overflow": "spill"}, "overflow must be one of ('block', 'shed', 'drop'); got 'spill'"),
        ({"durability": "eventual"}, "durability must be one of ('buffered', 'ack'); got 'eventual'"),
        ({"max_queue_rows": 0}, "must be >= 1 and flush_interval_s > 0; got 0,"),
        ({"flush_interval_s": 0}, "must be >= 1 and flush_interval_s > 0; got"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(tmp_path: Path, kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(LakeError) as info:
        LakeWriter(tmp_path, **kwargs)
    assert words in str(info.value)
    assert not list(tmp_path.iterdir())  # refused before anything was created


def test_ack_write_returns_once_the_rows_are_in_the_write_ahead_log(tmp_path: Path) -> None:
    lake = LakeWriter(tmp_path, flush_interval_s=3600, durability="ack")
    assert lake.write(model="m", version=1, request_id="a", **rows(4))
    segments = list(tmp_path.glob(".wal/*/*.arrows"))
    assert len(segments) == 1 and segments[0].stat().st_size > 0  # fsynced before write() returned
    assert read_lake(tmp_path).num_rows == 0 and lake.queued == 4 and lake.queued_bytes > 0
    lake.close()
    table = read_lake(tmp_path)
    assert table.column("x").to_pylist() == [0.0, 1.0, 2.0, 3.0] and lake.written == 4
    assert not list(tmp_path.glob(".wal/*/*.arrows"))  # published: the log is gone


def test_a_failing_observer_never_breaks_the_writer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, int]] = []

    def broken(outcome: str, n: int) -> None:
        raise RuntimeError("metrics backend down")

    with LakeWriter(tmp_path, flush_interval_s=3600) as lake:
        lake.observe(broken)
        lake.observe(lambda outcome, n: seen.append((outcome, n)))
        assert lake.write(model="m", version=1, request_id="a", **rows(3))
    assert seen == [("written", 3)] and lake.written == 3
    assert "lake observer failed" in caplog.text


def test_rows_that_cannot_be_encoded_are_dropped_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with LakeWriter(tmp_path, flush_interval_s=3600) as lake:
        bad = {"x": np.array(["not", "a number"], dtype=object)}
        assert lake.write(model="bad", version=1, request_id="b", signature=SIG, inputs=bad,
                          outputs={"y": np.zeros(2)}, latency_ms=1.0)  # fmt: skip
        assert lake.write(model="good", version=1, request_id="g", **rows(3))
    assert (lake.written, lake.dropped, lake.queued) == (3, 2, 0)
    assert read_lake(tmp_path, model="good").num_rows == 3 and not (tmp_path / "model=bad").exists()
    assert "dropped 2 row(s) it cannot encode" in caplog.text


def test_a_new_signature_in_the_same_partition_starts_a_new_file(tmp_path: Path) -> None:
    with LakeWriter(tmp_path, flush_interval_s=3600) as lake:
        assert lake.write(model="m", version=1, request_id="old", ts=1.7e9, **rows(2))
        lake.flush()  # the first record is encoded into its file before the second arrives
        z = {"x": np.array([7.0]), "z": np.array([5], dtype=np.int64)}
        assert lake.write(model="m", version=1, request_id="new", signature=SIG2, inputs=z,
                          outputs={"y": np.array([1.0])}, latency_ms=1.0, ts=1.7e9)  # fmt: skip
    files = sorted(tmp_path.glob("model=m/version=1/date=*/part-*.parquet"))
    assert len(files) == 2 and lake.written == 3
    names = sorted((pq.read_schema(f).names for f in files), key=len)
    assert names[0][-2:] == ["x", "output.y"] and names[1][-3:] == ["x", "z", "output.y"]


class FailingPublisher:
    """Stages locally and never publishes (an object store that is down for good)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.discarded: list[Path] = []

    def stage(self, key: str) -> Path:
        path = self.root / "staging" / key.replace("/", "_")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def publish(self, staged: Path, key: str) -> None:
        raise OSError(5, "store unreachable")

    def discard(self, staged: Path) -> None:
        self.discarded.append(staged)
        staged.unlink()

    def exists(self, key: str) -> bool:
        return False


def test_rows_that_were_never_published_are_counted_as_dropped_on_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = FailingPublisher(tmp_path)
    lake = LakeWriter(tmp_path / "lake", flush_interval_s=3600, publisher=publisher)
    assert lake.write(model="m", version=1, request_id="a", **rows(3))
    lake.close()
    assert (lake.written, lake.dropped) == (0, 3) and not lake.healthy
    assert "store unreachable" in str(lake.status()["error"])
    assert publisher.discarded and not any(p.exists() for p in publisher.discarded)  # no staged file left
    assert "dropped 3 row(s) it could not write before closing" in caplog.text


def test_in_ack_mode_unpublished_rows_stay_in_the_log_for_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "parity")
    lake = LakeWriter(tmp_path, flush_interval_s=3600, durability="ack", publisher=FailingPublisher(tmp_path / "s"))
    assert lake.write(model="m", version=1, request_id="a", **rows(5))
    lake.close()
    assert lake.dropped == 0 and "5 row(s) stay in the write-ahead log for the next start" in caplog.text
    with LakeWriter(tmp_path, flush_interval_s=3600) as again:
        assert again.recovered == 5
    assert read_lake(tmp_path).column("x").to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_async_put_on_a_closed_full_or_dropping_writer(tmp_path: Path) -> None:
    closed = LakeWriter(tmp_path / "a", flush_interval_s=3600)
    closed.close()
    with pytest.raises(LakeError, match="closed"):
        asyncio.run(closed.put(model="m", version=1, request_id="a", **rows(1)))

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "model=m").write_text("in the way")  # writes fail: the queue cannot drain
    dropping = LakeWriter(tmp_path / "b", flush_interval_s=0.05, max_queue_rows=4, overflow="drop")
    assert asyncio.run(dropping.put(model="m", version=1, request_id="a", **rows(3)))
    assert not asyncio.run(dropping.put(model="m", version=1, request_id="b", **rows(3)))
    assert dropping.dropped == 3
    (tmp_path / "b" / "model=m").unlink()
    dropping.close()
    assert dropping.written == 3

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "model=m").write_text("in the way")
    full = LakeWriter(tmp_path / "c", flush_interval_s=0.05, max_queue_rows=4)
    assert asyncio.run(full.put(model="m", version=1, request_id="a", **rows(3)))
    with pytest.raises(LakeFullError, match="no room for this request's rows within its deadline"):
        asyncio.run(full.put(model="m", version=1, request_id="b", timeout=0.0, **rows(3)))
    with pytest.raises(LakeFullError, match="no room for this request's rows within its deadline"):
        asyncio.run(full.put(model="m", version=1, request_id="c", timeout=0.05, **rows(3)))
    (tmp_path / "c" / "model=m").unlink()
    full.close()
    assert full.written == 3
