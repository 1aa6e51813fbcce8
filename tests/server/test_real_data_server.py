"""Issue 7 over HTTP: missing text as JSON null, failed-parity artifacts, the extra-input policy (real servers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import parity
from tests._servers import ServerProcess


@pytest.fixture(scope="module")
def crm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Pipeline, pd.DataFrame]:
    """A text model packaged from a frame read with pd.read_csv, and a failed-parity artifact."""
    root = tmp_path_factory.mktemp("crm")
    rng = np.random.default_rng(0)
    n = 300
    raw = pd.DataFrame({"income": rng.normal(50, 15, n), "city": rng.choice(["paris", "lyon", "nice"], n)})
    raw.loc[rng.random(n) < 0.15, "city"] = None
    raw.to_csv(root / "train.csv", index=False)
    data = pd.read_csv(root / "train.csv")
    text = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    pre = ColumnTransformer([("num", StandardScaler(), ["income"]), ("txt", text, ["city"])])
    model = make_pipeline(pre, LogisticRegression()).fit(data, (data["income"] > 50) ^ (data["city"] == "paris"))
    good = parity.package(model, data, name="crm").save(root / "crm")
    failed = parity.package(model, data, name="risky", tolerance=-1.0, allow_mismatch=True).save(root / "risky")
    return good, failed, model, data


def _infer(url: str, model: str, income: list[float], city: list[Any], **extra: Any) -> httpx.Response:
    inputs = [
        {"name": "income", "datatype": "FP64", "shape": [len(income)], "data": income},
        {"name": "city", "datatype": "BYTES", "shape": [len(city)], "data": city},
    ]
    inputs += [{"name": k, "datatype": "FP64", "shape": [len(v)], "data": v} for k, v in extra.items()]
    return httpx.post(f"{url}/v2/models/{model}/infer", json={"inputs": inputs}, timeout=10)


def test_json_null_is_the_training_marker(
    crm: tuple[Path, Path, Pipeline, pd.DataFrame], start_server: type[ServerProcess]
) -> None:
    good, _, model, data = crm
    server = start_server([str(good), "--lake", "none", "--reload-interval", "0"])
    server.wait_ready(180)
    income = data["income"].head(3).tolist()
    response = _infer(server.url, "crm", income, [None, None, None])
    assert response.status_code == 200, response.text
    got = {o["name"]: o["data"] for o in response.json()["outputs"]}
    rows = pd.DataFrame({"income": income, "city": pd.Series([np.nan] * 3, dtype=data["city"].dtype)})
    np.testing.assert_allclose(got["probability"], model.predict_proba(rows)[:, 1], rtol=1e-9)
    # Extra inputs are refused by default (naming them) ...
    refused = _infer(server.url, "crm", income, ["lyon"] * 3, note=[1.0, 2.0, 3.0])
    assert refused.status_code == 400 and "note" in refused.text
    v1 = httpx.post(f"{server.url}/v1/models/crm:predict", json={"instances": [{"income": 1.0, "city": "a", "x": 1}]})
    assert v1.status_code == 400 and "'x'" in v1.text


def test_extra_inputs_can_be_ignored(
    crm: tuple[Path, Path, Pipeline, pd.DataFrame], start_server: type[ServerProcess]
) -> None:
    good, *_ = crm
    server = start_server([str(good), "--lake", "none", "--reload-interval", "0", "--extra-inputs", "ignore"])
    server.wait_ready(180)
    response = _infer(server.url, "crm", [1.0], ["lyon"], note=[1.0])
    assert response.status_code == 200, response.text
    v1 = httpx.post(f"{server.url}/v1/models/crm:predict", json={"instances": [{"income": 1.0, "city": "a", "x": 1}]})
    assert v1.status_code == 200, v1.text


def test_failed_parity_is_not_served_unless_forced(
    crm: tuple[Path, Path, Pipeline, pd.DataFrame], start_server: type[ServerProcess]
) -> None:
    _, failed, *_ = crm
    refused = start_server([str(failed), "--lake", "none", "--reload-interval", "0"])
    assert refused.proc.wait(60) != 0
    assert "FAILED its parity check" in refused.log() and "allow_failed_parity" in refused.log()
    forced = start_server([str(failed), "--lake", "none", "--reload-interval", "0", "--allow-failed-parity"])
    forced.wait_ready(180)
    meta = httpx.get(f"{forced.url}/v2/models/risky").json()
    assert meta["parameters"]["parity"] == "FAILED"
    assert "does not answer what the Python pipeline answers" in meta["parameters"]["warning"]
    assert "'risky' FAILED its parity check" in forced.log()
