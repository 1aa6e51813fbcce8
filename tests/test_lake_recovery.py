"""Write-ahead log recovery in-process: a torn tail, a segment without even a schema, a log still owned by a live
writer, and stray partition directories a reader must skip."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from parity.lake import LakeWriter, read_lake
from parity.schema import ColumnSpec, OutputSpec, Signature

SIG = Signature((ColumnSpec("x", "FP64", False),), (OutputSpec("y", "FP64"),))


def write(lake: LakeWriter, request_id: str, xs: list[float]) -> None:
    x = np.asarray(xs, dtype=np.float64)
    assert lake.write(model="m", version=1, signature=SIG, inputs={"x": x}, outputs={"y": x * 2},
                      request_id=request_id, latency_ms=1.0, ts=1.7e9)  # fmt: skip


def _crash_copy(src: Path, dest: Path) -> Path:
    """What a kill -9 leaves: the WAL as written so far, its lock no longer held by anyone."""
    shutil.copytree(src / ".wal", dest / ".wal")
    (segment,) = dest.glob(".wal/*/*.arrows")
    return segment


def test_a_torn_last_batch_is_skipped_and_the_acknowledged_ones_recovered(tmp_path: Path) -> None:
    live = LakeWriter(tmp_path / "live", flush_interval_s=3600, durability="ack")
    for i in range(3):
        write(live, f"r{i}", [float(i), float(i) + 0.5])  # each acknowledged: one fsynced batch each
    segment = _crash_copy(tmp_path / "live", tmp_path / "crashed")
    data = segment.read_bytes()
    segment.write_bytes(data[:-20])  # the tail of the last batch never reached the disk
    with LakeWriter(tmp_path / "crashed", flush_interval_s=3600) as again:
        assert again.recovered == 4
    assert read_lake(tmp_path / "crashed").column("x").to_pylist() == [0.0, 0.5, 1.0, 1.5]
    live.close()
    assert read_lake(tmp_path / "live").num_rows == 6


def test_a_segment_without_a_schema_holds_nothing_acknowledged(tmp_path: Path) -> None:
    live = LakeWriter(tmp_path / "live", flush_interval_s=3600, durability="ack")
    write(live, "r0", [1.0])
    segment = _crash_copy(tmp_path / "live", tmp_path / "crashed")
    segment.write_bytes(b"\xff\xff")  # not even the stream header
    with LakeWriter(tmp_path / "crashed", flush_interval_s=3600) as again:
        assert again.recovered == 0
    assert read_lake(tmp_path / "crashed").num_rows == 0
    live.close()


def test_a_log_owned_by_a_live_writer_is_left_alone(tmp_path: Path) -> None:
    first = LakeWriter(tmp_path, flush_interval_s=3600, durability="ack")
    write(first, "r0", [1.0, 2.0])
    with LakeWriter(tmp_path, flush_interval_s=3600) as second:  # same root, while the first runs
        assert second.recovered == 0  # its lock is held: replaying would publish the rows twice
    assert read_lake(tmp_path).num_rows == 0
    first.close()
    assert read_lake(tmp_path).column("x").to_pylist() == [1.0, 2.0]  # published once, by its owner


def test_stray_partition_directories_are_skipped_by_readers(tmp_path: Path) -> None:
    with LakeWriter(tmp_path, flush_interval_s=3600) as lake:
        write(lake, "r0", [3.0])
    (tmp_path / "model=m" / "version=latest" / "date=2024-01-01").mkdir(parents=True)
    (tmp_path / "model=m" / "version=1" / "date=yesterday").mkdir(parents=True)
    table = read_lake(tmp_path, model="m")
    assert table.column("x").to_pylist() == [3.0] and table.column("model_version").to_pylist() == [1]
