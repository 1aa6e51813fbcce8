"""Acceptance: schemathesis fuzzes the real server from its own OpenAPI document; no response may be a 5xx.

Two CLI runs (a subprocess each, so schemathesis' own warnings never meet ``filterwarnings=error``):

1. ``/openapi.json`` exactly as served, every operation, arbitrary model names (mostly 404s, but it
   validates the document itself and fuzzes routing, bodies and headers), on a server of its own.
2. The same document specialised to the served model (path ``name``/``version`` pinned, the model's
   real input tensors and V1 records described), written to a file, so that generated requests
   reach tensor decoding, column validation and the model. ``unload`` is left out: it would stop
   serving the model the run is testing.

Both are deterministic (``--generation-deterministic``) and bounded (``--max-examples``). The
requests they (and the triage after them) found answering 5xx are pinned below as plain regression
tests, which do not need schemathesis.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._servers import ServerProcess
from tests.server.conftest import ModelEnv, shared_server_args

needs_schemathesis = pytest.mark.skipif(
    importlib.util.find_spec("schemathesis") is None,
    reason="schemathesis is not installed (pip install 'schemathesis>=4,<5')",
)

MAX_EXAMPLES = 40
UNLOAD = "/v2/repository/models/{name}/unload"

_VALUE_SCHEMAS: dict[str, dict[str, Any]] = {
    "FP64": {"type": "number"},
    "FP32": {"type": "number"},
    "INT64": {"type": "integer"},
    "INT32": {"type": "integer"},
    "BOOL": {"type": "boolean"},
    "BYTES": {"type": "string"},
}


def _st() -> str:
    exe = Path(sys.executable).with_name("st")
    return str(exe) if exe.exists() else "st"


def run_schemathesis(location: str, tmp_path: Path, base_url: str | None = None, token: str | None = None) -> None:
    """``st run LOCATION --checks not_a_server_error`` with a fixed budget; fail with its output on exit != 0."""
    config = tmp_path / "schemathesis.toml"  # explicit and empty: no stray config file is picked up
    config.write_text("")
    cmd = [
        _st(),
        "--config-file",
        str(config),
        "run",
        location,
        "--checks",
        "not_a_server_error",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--request-timeout",
        "10",
        "--workers",
        "1",
        "--no-color",
    ]
    if base_url is not None:
        cmd += ["--url", base_url]
    token = token or os.environ.get("PARITY_TOKEN")  # the server fixture inherits the environment
    if token:
        cmd += ["--header", f"Authorization: Bearer {token}"]
    start = time.monotonic()
    proc = subprocess.run(
        cmd,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if k != "SCHEMATHESIS_HOOKS"}, "NO_COLOR": "1"},
    )
    elapsed = time.monotonic() - start
    output = f"$ {' '.join(cmd)}\n(exit {proc.returncode} after {elapsed:.1f} s)\n{proc.stdout}{proc.stderr}"
    assert proc.returncode == 0, output
    assert "generated" in proc.stdout, output  # it did run test cases


def _value_schema(tensor: dict[str, Any]) -> dict[str, Any]:
    schema = dict(_VALUE_SCHEMAS.get(tensor["datatype"], {}))
    if (tensor.get("parameters") or {}).get("nullable"):
        schema["nullable"] = True
    return schema


def specialise(document: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document narrowed to one served model so generated requests reach the model."""
    doc = copy.deepcopy(document)
    doc["paths"].pop(UNLOAD)
    pinned = {"name": [metadata["name"]], "version": metadata["versions"]}
    for item in doc["paths"].values():
        for op in item.values():
            for param in op.get("parameters", []):
                if param["in"] == "path" and param["name"] in pinned:
                    param["schema"] = {"type": "string", "enum": pinned[param["name"]]}
    schemas = doc["components"]["schemas"]
    inputs = metadata["inputs"]
    rows = 2
    # One variant per model input: its name and datatype, shape [2] or [2, 1], two values of its type.
    schemas["RequestInput"] = {
        "oneOf": [
            {
                "type": "object",
                "required": ["name", "datatype", "shape", "data"],
                "properties": {
                    "name": {"type": "string", "enum": [t["name"]]},
                    "datatype": {"type": "string", "enum": [t["datatype"]]},
                    "shape": {"type": "array", "items": {"type": "integer"}, "enum": [[rows], [rows, 1]]},
                    "data": {"type": "array", "items": _value_schema(t), "minItems": rows, "maxItems": rows},
                },
            }
            for t in inputs
        ]
    }
    request = schemas["InferenceRequest"]["properties"]
    request["inputs"] = {"type": "array", "items": {"$ref": "#/components/schemas/RequestInput"}}
    request["inputs"].update(minItems=len(inputs), maxItems=len(inputs), uniqueItems=True)
    request["outputs"]["items"] = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "enum": [o["name"] for o in metadata["outputs"]]},
            "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}},
        },
    }
    schemas["V1Request"]["properties"]["instances"] = {
        "type": "array",
        "minItems": 1,
        "maxItems": 3,
        "items": {
            "type": "object",
            "required": [t["name"] for t in inputs],
            "additionalProperties": False,
            "properties": {t["name"]: _value_schema(t) for t in inputs},
        },
    }
    # Only JSON bodies: random octet-stream bytes never get past the JSON header.
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        doc["paths"][path]["post"]["requestBody"]["content"].pop("application/octet-stream")
    return doc


@needs_schemathesis
def test_no_server_errors_on_model_specific_requests(server: ServerProcess, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        document = client.get("/openapi.json").raise_for_status().json()
        metadata = client.get("/v2/models/churn").raise_for_status().json()
    schema_path = tmp_path / "openapi-churn.json"
    schema_path.write_text(json.dumps(specialise(document, metadata)))
    run_schemathesis(str(schema_path), tmp_path, base_url=server.url)
    assert server.proc.poll() is None, server.log()


@needs_schemathesis
def test_no_server_errors_on_the_served_document(
    model_env: ModelEnv, start_server: type[ServerProcess], tmp_path: Path
) -> None:
    # A server of its own, configured like the shared one: this run may unload the model (schemathesis
    # picks the name up from responses), which must not leak into other tests.
    server = start_server(shared_server_args(model_env, tmp_path / "lake"))
    server.wait_ready()
    run_schemathesis(server.url + "/openapi.json", tmp_path)
    assert server.proc.poll() is None, server.log()


_ROW = {"age": 41.0, "income": 52.0, "plan": "pro"}
_TENSORS = [
    {"name": "age", "datatype": "FP64", "shape": [1], "data": [41.0]},
    {"name": "income", "datatype": "FP64", "shape": [1], "data": [52.0]},
    {"name": "plan", "datatype": "BYTES", "shape": [1], "data": ["pro"]},
]


def _infer_body(**changes: Any) -> bytes:
    inputs = [dict(t, **changes.get(t["name"], {})) for t in _TENSORS]
    return json.dumps({"inputs": inputs, **changes.get("request", {})}).encode()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # Found by schemathesis: each was a 500 before the fix.
        ("/v1/models/churn:predict", json.dumps({"instances": [dict(_ROW, income=[None, None])]}).encode()),
        ("/v1/models/churn:predict", json.dumps({"instances": [dict(_ROW, age=[1.0]), _ROW]}).encode()),
        ("/v2/models/churn/infer", _infer_body(plan={"datatype": {}})),
        ("/v2/models/churn/infer", _infer_body(age={"data": [1.0, [2.0]], "shape": [2]})),
        # Found while triaging them: numbers and strings only the stdlib JSON fallback accepts.
        ("/v2/models/churn/infer", _infer_body(age={"data": [10**400]})),
        ("/v2/models/churn/infer", _infer_body(plan={"data": ["\udc80"]})),
        ("/v2/models/churn/infer", _infer_body(request={"id": "\udc80"})),
        ("/v1/models/churn:predict", json.dumps({"instances": [dict(_ROW, plan="\ud800")]}).encode()),
        # The load route takes model names, not paths on the server ('.x' and '~x' were read as paths).
        ("/v2/repository/models/.exe/load", b""),
        ("/v2/repository/models/~/load", b""),
    ],
    ids=[
        "v1-list-value",
        "v1-ragged-column",
        "oip-datatype-object",
        "oip-ragged-data",
        "oip-int-beyond-float",
        "oip-lone-surrogate-data",
        "oip-lone-surrogate-id",
        "v1-lone-surrogate",
        "load-dot-path",
        "load-home-path",
    ],
)
def test_client_mistakes_are_4xx(server: ServerProcess, path: str, body: bytes) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, response.text
        assert isinstance(response.json()["error"], str)
        # The model still serves (a bad request in a batch must not fail it).
        ok = client.post("/v2/models/churn/infer", content=_infer_body())
        assert ok.status_code == 200, ok.text


_REPOSITORY_PATHS = ("/v2/repository/index", "/v2/repository/models/{name}/load", UNLOAD, "/v1/models/{name}:predict")


def repository_document(document: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The repository extension and V1 operations only, model names drawn from served and unknown refs."""
    doc = copy.deepcopy(document)
    doc["paths"] = {path: doc["paths"][path] for path in _REPOSITORY_PATHS}
    for item in doc["paths"].values():
        for op in item.values():
            for param in op.get("parameters", []):
                if param["in"] == "path" and param["name"] == "name":
                    param["schema"] = {"type": "string", "enum": names}
    return doc


@needs_schemathesis
def test_no_server_errors_on_the_repository_extension_and_v1(
    model_env: ModelEnv, start_server: type[ServerProcess], tmp_path: Path
) -> None:
    # Its own server: load/unload change what it serves (served only with the flag, behind a token).
    token = "schemathesis-token"
    auth = {"Authorization": f"Bearer {token}"}
    args = [*shared_server_args(model_env, tmp_path / "lake"), "--enable-repository-api"]
    server = start_server(args, env={"PARITY_TOKEN": token})
    server.wait_ready()
    with httpx.Client(base_url=server.url, timeout=10, headers=auth) as client:
        document = client.get("/openapi.json").raise_for_status().json()
    names = ["churn", "churn:1", "churn@production", "churn:999", "churn@nope", "nope", "penguins:1", "../churn"]
    schema_path = tmp_path / "openapi-repository.json"
    schema_path.write_text(json.dumps(repository_document(document, names)))
    run_schemathesis(str(schema_path), tmp_path, base_url=server.url, token=token)
    assert server.proc.poll() is None, server.log()
    with httpx.Client(base_url=server.url, timeout=10, headers=auth) as client:
        assert client.post("/v2/repository/models/churn@production/load").status_code == 200
        index = client.post("/v2/repository/index").json()
        assert len(index) <= len(names) + 1, index  # one slot per distinct ref at most
        assert client.post("/v2/models/churn/infer", content=_infer_body()).status_code == 200
