"""Every writer is atomic: each file a reader can see under its final name arrived by a rename.

The check records the destination of every ``os.replace``/``os.rename`` while a writer runs, then
walks the output: a visible file must be a rename destination or sit inside a renamed directory,
and no temp file may be left behind. A writer that writes straight to the final name fails.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import parity
from parity._io import atomic_write_bytes, atomic_write_json
from parity.cli import app
from parity.codec import encode_frame
from parity.lake import LakeWriter, read_lake
from parity.registry import Registry
from parity.skew import skew_report, write_html
from tests.fixtures import pipeline, raw_frame, targets

# Not rewritten files: the registry's per-model lock (opened, never written) and its alias history, an
# append-only log whose reader drops a torn last line (tested in tests/registry).
NOT_DATA = {".lock", "history.jsonl"}


class Renames:
    """Destinations of every os.replace / os.rename since the fixture started."""

    def __init__(self) -> None:
        self.destinations: set[Path] = set()

    def check(self, root: Path) -> list[Path]:
        """Assert every visible file under ``root`` appeared by a rename; return those files."""
        files = [p for p in root.rglob("*") if p.is_file()]
        leftovers = [
            p for p in files if p.name.endswith(".tmp") or any(part.startswith(".") for part in p.parts[-3:-1])
        ]
        assert not leftovers, f"temp files left behind: {leftovers}"
        visible = [p for p in files if p.name not in NOT_DATA and not p.name.endswith(".lock")]
        not_renamed = [
            p
            for p in visible
            if p.resolve() not in self.destinations and not (set(p.resolve().parents) & self.destinations)
        ]
        assert not not_renamed, f"written in place, not renamed into place: {not_renamed}"
        return visible


@pytest.fixture
def renames(monkeypatch: pytest.MonkeyPatch) -> Iterator[Renames]:
    seen = Renames()
    real_replace, real_rename = os.replace, os.rename

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str], **kw: object) -> None:
        real_replace(src, dst, **kw)  # type: ignore[arg-type]
        seen.destinations.add(Path(dst).resolve())

    def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str], **kw: object) -> None:
        real_rename(src, dst, **kw)  # type: ignore[arg-type]
        seen.destinations.add(Path(dst).resolve())

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    yield seen


@pytest.fixture(scope="module")
def artifact() -> parity.Artifact:
    data = raw_frame(200)
    model = pipeline(LogisticRegression(max_iter=500)).fit(data, targets(data, "binary"))
    return parity.package(model, data, name="atomic")


def test_io_helpers(renames: Renames, tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a" / "x.bin", b"12345")
    atomic_write_json(tmp_path / "b.json", {"k": 1})
    atomic_write_bytes(tmp_path / "a" / "x.bin", b"6")  # replacing an existing file
    assert len(renames.check(tmp_path)) == 2
    assert (tmp_path / "a" / "x.bin").read_bytes() == b"6"


def test_artifact_save(renames: Renames, artifact: parity.Artifact, tmp_path: Path) -> None:
    artifact.save(tmp_path / "out" / "atomic")
    files = renames.check(tmp_path)
    assert {p.name for p in files} >= {"manifest.json", "model.onnx", "profile.json", "parity_sample.parquet"}
    parity.load(tmp_path / "out" / "atomic")  # and it is whole


def test_registry_push_and_alias(renames: Renames, artifact: parity.Artifact, tmp_path: Path) -> None:
    src = artifact.save(tmp_path / "src" / "atomic")
    registry = Registry(tmp_path / "home")
    renames.destinations.clear()
    v1 = registry.push(src)
    registry.set_alias("atomic", "production", v1.version)
    files = renames.check(tmp_path / "home")
    assert any(p.name == "model.onnx" for p in files) and any(p.name == "index.json" for p in files)
    assert registry.get("atomic@production").version == 1


def test_lake_writer(renames: Renames, artifact: parity.Artifact, tmp_path: Path) -> None:
    frame = raw_frame(30, seed=3)
    inputs = encode_frame(artifact.signature, frame)
    outputs = artifact.predict_columns({c: frame[c] for c in frame.columns})
    writer = LakeWriter(tmp_path / "lake", flush_interval_s=3600)
    for i in range(3):
        writer.write(
            model="atomic", version=1, signature=artifact.signature, inputs=inputs, outputs=outputs,
            request_id=f"r{i}", latency_ms=1.0,
        )  # fmt: skip
        writer.flush()
    writer.close()
    files = renames.check(tmp_path / "lake")
    assert len(files) == 3 and all(p.suffix == ".parquet" for p in files)
    assert read_lake(tmp_path / "lake").num_rows == 90


def test_lake_reader_polling_never_sees_a_partial_file(artifact: parity.Artifact, tmp_path: Path) -> None:
    frame = raw_frame(400, seed=4)
    inputs = encode_frame(artifact.signature, frame)
    outputs = artifact.predict_columns({c: frame[c] for c in frame.columns})
    lake = tmp_path / "lake"
    writer = LakeWriter(lake, flush_interval_s=3600)
    done = threading.Event()
    errors: list[str] = []
    reads = 0

    def poll() -> None:
        nonlocal reads
        while not done.is_set():
            for path in lake.rglob("part-*.parquet"):
                try:
                    assert pq.read_table(path).num_rows == 400
                    reads += 1
                except Exception as exc:  # a partial file fails to parse or has too few rows
                    errors.append(f"{path.name}: {type(exc).__name__}: {exc}")

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        for i in range(20):
            writer.write(
                model="atomic", version=1, signature=artifact.signature, inputs=inputs, outputs=outputs,
                request_id=f"r{i}", latency_ms=1.0,
            )  # fmt: skip
            writer.flush()
    finally:
        writer.close()
        done.set()
        thread.join()
    assert errors == []
    assert reads > 0 and writer.written == 8000


def test_cli_predict_output(renames: Renames, artifact: parity.Artifact, tmp_path: Path) -> None:
    art_dir = artifact.save(tmp_path / "art")
    raw_frame(50, seed=5).to_csv(tmp_path / "in.csv", index=False)
    renames.destinations.clear()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for fmt in ("csv", "parquet", "jsonl"):
        result = CliRunner().invoke(
            app, ["predict", str(art_dir), "--input", str(tmp_path / "in.csv"), "--output", str(out_dir / f"p.{fmt}")]
        )
        assert result.exit_code == 0, result.output
    assert len(renames.check(out_dir)) == 3
    assert len(pd.read_csv(out_dir / "p.csv")) == 50


def test_skew_reports_and_profile(renames: Renames, artifact: parity.Artifact, tmp_path: Path) -> None:
    data = tmp_path / "serving.parquet"
    raw_frame(300, seed=6).to_parquet(data)
    report = skew_report(artifact, data)
    out = tmp_path / "reports"
    report.to_json(out / "skew.json")
    write_html(report, out / "skew.html")
    artifact.profile.save(out / "profile.json")
    files = renames.check(out)
    assert {p.name for p in files} == {"skew.json", "skew.html", "profile.json"}
    assert report.to_dict()["data"]["rows"] == 300
