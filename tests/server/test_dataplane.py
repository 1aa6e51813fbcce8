"""The DataPlane contract used by both adapters, exercised in-process (no transport)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from parity.errors import SchemaError
from parity.lake import LakeWriter, read_lake
from parity.registry import Registry
from parity.server import DataPlane, InferResult, ModelNotFound
from tests.server.conftest import ModelEnv


def test_dataplane_api(model_env: ModelEnv, tmp_path: Path) -> None:
    lake = LakeWriter(tmp_path / "lake", flush_interval_s=60)
    dp = DataPlane(["churn@production"], registry=Registry(model_env.registry_root), lake=lake)
    rows = model_env.frame.head(4)
    columns = {
        "age": rows["age"].tolist(),  # NaN present: a null in a nullable column
        "income": np.asarray(rows["income"]),
        "plan": [None if p is None else p for p in rows["plan"]],
    }
    want = model_env.artifact.predict(rows)
    result_labels: dict[str, tuple[str, str]] = {}

    async def main() -> None:
        assert not dp.ready()
        await dp.start()
        assert dp.live() and dp.ready()
        assert dp.server_metadata()["name"] == "parity"
        meta = dp.model_metadata("churn", "")
        assert meta["versions"] == ["1"] and meta["platform"] == "parity-onnx"
        assert [i["shape"] for i in meta["inputs"]] == [[-1]] * 3
        assert dp.model_ready("churn") and dp.model_ready("churn", "1") and dp.model_ready("churn", 1)
        result = await dp.infer("churn", None, columns, request_id="r1", protocol="grpc")
        result_labels["r1"] = (result.model_name, result.model_version)
        assert isinstance(result, InferResult)
        assert (result.model_name, result.model_version, result.request_id) == ("churn", "1", "r1")
        assert list(result.outputs) == ["label", "probability"]
        assert result.outputs["label"].dtype == object and result.outputs["probability"].dtype == np.float64
        assert result.outputs["label"].tolist() == want["label"].tolist()
        np.testing.assert_allclose(result.outputs["probability"], want["probability"].to_numpy(), rtol=1e-12, atol=0)
        assert np.ptp(result.outputs["probability"]) > 0  # four different answers, not one constant
        assert result.datatypes == {"label": "BYTES", "probability": "FP64"}
        with pytest.raises(SchemaError, match="unknown input 'zip'") as info:
            await dp.infer("churn", "1", {**columns, "zip": [1, 2, 3, 4]}, request_id="r2", protocol="grpc")
        assert info.value.column == "zip"
        with pytest.raises(SchemaError, match="income"):
            await dp.infer("churn", None, {**columns, "income": [1.0, None, 2.0, 3.0]}, request_id="r3", protocol="v2")
        for name, version in (("nope", None), ("churn", "2"), ("churn", "x")):
            with pytest.raises(ModelNotFound):
                await dp.infer(name, version, columns, request_id="r4", protocol="v2")
        assert [m["state"] for m in dp.repository_index()] == ["READY"]
        await dp.unload("churn")
        with pytest.raises(ModelNotFound, match="unloaded"):
            dp.model_metadata("churn")
        await dp.load("churn")
        assert dp.model_ready("churn")
        await dp.stop()
        assert not dp.ready()

    asyncio.run(main())
    lake.close()
    table = read_lake(tmp_path / "lake")
    assert table.num_rows == 4 and table.column("request_id").to_pylist() == ["r1"] * 4
    # infer() leaves counting to the adapter, which calls record_answer once the answer is written.
    text = dp.metrics.render().decode()
    assert "parity_requests_total{" not in text
    assert 'parity_request_compute_seconds_count{model="churn",version="1"} 1.0' in text
    dp.record_answer("churn", None, "grpc", 200, 0.25, result_labels["r1"])
    dp.record_answer("churn", "1", "grpc", 400, 0.5)
    for name, version in (("nope", None), ("churn", "2"), ("churn", "x")):
        dp.record_answer(name, version, "v2", 404, None)
    text = dp.metrics.render().decode()
    assert 'parity_requests_total{code="200",model="churn",protocol="grpc",version="1"} 1.0' in text
    assert 'parity_request_errors_total{code="200"' not in text
    assert 'parity_request_errors_total{code="400",model="churn",protocol="grpc",version="1"} 1.0' in text
    assert 'parity_request_errors_total{code="404",model="_unknown",protocol="v2",version=""} 1.0' in text
    assert 'parity_request_errors_total{code="404",model="churn",protocol="v2",version=""} 2.0' in text
    assert 'parity_request_latency_seconds_sum{code="400",model="churn",protocol="grpc",version="1"} 0.5' in text
    # Answers recorded without a duration are counted, not timed.
    assert 'parity_request_latency_seconds_count{code="404",model="churn",protocol="v2",version=""} 0.0' in text


def test_repository_slots_are_matched_on_the_ref_and_capped(
    model_env: ModelEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parity.server import _errors, _repository

    registry = Registry(model_env.registry_root)
    for i in range(3):
        registry.set_alias("churn", f"a{i}", 1)
    monkeypatch.setattr(_repository, "MAX_SLOTS", 3)
    dp = DataPlane(["churn@production"], registry=registry, max_batch_size=1)

    async def main() -> None:
        await dp.start()
        try:
            for _ in range(5):
                await dp.load("churn:1")  # the same ref, however often: one slot
            assert len(dp.repository_index()) == 2
            await dp.load("churn@a0")
            with pytest.raises(_errors.LimitExceeded, match="limit is 3"):
                await dp.load("churn@a1")
            assert len(dp.repository_index()) == 3
        finally:
            await dp.stop()

    asyncio.run(main())
