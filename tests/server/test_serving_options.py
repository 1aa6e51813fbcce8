"""Server paths with options: several models at once, --trusted, the inference timeout (504),
a model that is not ready (503), and --max-batch-size / --max-batch-delay-ms."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import parity
from parity.errors import UntrustedArtifactError
from parity.server import DataPlane
from parity.server._errors import ModelNotReady, status_for
from tests._servers import ServerProcess
from tests.server.conftest import ModelEnv, trusted_env
from tests.server.slow_step import SLOW_MARKER
from tests.server.test_rest import _metric, tensors


def _infer(client: httpx.Client, model: str, rows: Any) -> httpx.Response:
    return client.post(f"/v2/models/{model}/infer", json={"inputs": tensors(rows)})


def _outputs(response: httpx.Response) -> dict[str, list[Any]]:
    assert response.status_code == 200, response.text
    return {o["name"]: o["data"] for o in response.json()["outputs"]}


def test_untrusted_artifact_is_refused_without_trusted(
    start_server: type[ServerProcess], model_env: ModelEnv, slow_dir: Path
) -> None:
    server = start_server([str(model_env.artifact_dir), str(slow_dir), "--lake", "none"], env=trusted_env())
    assert server.proc.wait(120) != 0
    assert "--trusted" in server.log() or "trusted=True" in server.log(), server.log()


def test_two_models_trusted_and_the_inference_timeout(
    start_server: type[ServerProcess], model_env: ModelEnv, slow_dir: Path
) -> None:
    server = start_server(
        [str(model_env.artifact_dir), str(slow_dir), "--lake", "none", "--trusted", "--request-timeout", "3"],
        env=trusted_env(),
    )
    server.wait_ready()
    rows = model_env.frame.head(8)
    churn = model_env.artifact.predict(rows.reset_index(drop=True))
    slow = parity.load(slow_dir, trusted=True).predict(rows.reset_index(drop=True))
    with httpx.Client(base_url=server.url, timeout=30) as c:
        index = c.post("/v2/repository/index").json()
        assert sorted((m["name"], m["state"]) for m in index) == [("churn", "READY"), ("slow", "READY")]
        for name, want in (("churn", churn), ("slow", slow)):
            out = _outputs(_infer(c, name, rows))
            assert out["label"] == want["label"].tolist()
            np.testing.assert_allclose(out["probability"], want["probability"].to_numpy(), rtol=1e-12, atol=0)

        marked = rows.copy()
        marked.loc[marked.index[0], "income"] = SLOW_MARKER
        r = _infer(c, "slow", marked)
        assert r.status_code == 504, r.text
        assert "within 3 s" in r.json()["error"]
        # The other model is unaffected while the slow run still holds its worker.
        assert _outputs(_infer(c, "churn", rows))["label"] == churn["label"].tolist()


def test_model_not_ready_is_503(model_env: ModelEnv) -> None:
    dp = DataPlane([str(model_env.artifact_dir)])
    columns = {c: model_env.frame[c].head(2).tolist() for c in ("age", "income", "plan")}

    async def main() -> None:
        await dp.start()
        try:
            dp.repository.get("churn").ready = False  # as during a swap or an unload
            assert not dp.model_ready("churn") and not dp.ready()
            with pytest.raises(ModelNotReady, match="is not ready") as info:
                await dp.infer("churn", None, columns, request_id="r", protocol="rest")
            assert (status_for(info.value).http, status_for(info.value).grpc) == (503, "UNAVAILABLE")
        finally:
            await dp.stop()

    asyncio.run(main())


def _batches(server: ServerProcess, frame: Any, n: int) -> tuple[float, float]:
    """Send ``n`` concurrent 1-row requests; return (model runs, requests run) from /metrics."""
    with httpx.Client(base_url=server.url) as c:
        before = c.get("/metrics").text

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as ac:
            bodies = [{"inputs": tensors(frame.iloc[[i % len(frame)]])} for i in range(n)]
            return await asyncio.gather(*(ac.post("/v2/models/churn/infer", json=b) for b in bodies))

    assert all(r.status_code == 200 for r in asyncio.run(run()))
    with httpx.Client(base_url=server.url) as c:
        after = c.get("/metrics").text
    runs = _metric(after, "parity_batch_size_requests_count") - _metric(before, "parity_batch_size_requests_count")
    requests = _metric(after, "parity_batch_size_requests_sum") - _metric(before, "parity_batch_size_requests_sum")
    return runs, requests


@pytest.mark.parametrize("size", [1, 4])  # bucket bounds of parity_batch_size_rows
def test_max_batch_size_caps_every_merged_batch(
    start_server: type[ServerProcess], model_env: ModelEnv, size: int
) -> None:
    server = start_server(
        [str(model_env.artifact_dir), "--lake", "none", "--max-batch-size", str(size), "--max-batch-delay-ms", "50"]
    )
    server.wait_ready()
    runs, requests = _batches(server, model_env.frame, 120)
    assert requests == 120
    if size == 1:
        assert runs == 120  # batching off: every request ran alone
    else:
        assert 120 / size <= runs < 120  # 50 ms of waiting for company merged some requests
    with httpx.Client(base_url=server.url) as c:
        text = c.get("/metrics").text
    # No model run above `size` rows: the histogram's le=size bucket holds every run.
    assert _metric(text, "parity_batch_size_rows_bucket", le=f"{float(size)}") == runs
    assert _metric(text, "parity_batch_size_rows_count") == runs


def test_untrusted_load_error_names_the_flag(slow_dir: Path) -> None:
    with pytest.raises(UntrustedArtifactError, match="trusted"):
        parity.load(slow_dir)
