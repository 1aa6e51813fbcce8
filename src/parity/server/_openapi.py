"""The hand-written OpenAPI 3 document of the REST adapter (served at ``GET /openapi.json``)."""

from __future__ import annotations

from typing import Any

import parity
from parity.schema import DATATYPES

__all__ = ["openapi_document"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json_response("Invalid request (names the input, expected and received)", _ref("Error")),
    "401": _json_response("Missing or invalid bearer token", _ref("Error")),
    "404": _json_response("Unknown model or version", _ref("Error")),
    "413": _json_response("Request body too large", _ref("Error")),
    "503": _json_response("Not ready or overloaded", _ref("Error")),
    "504": _json_response("Request timed out", _ref("Error")),
}

_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Live": {"type": "object", "properties": {"live": {"type": "boolean"}}},
    "Ready": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    "ModelReady": {"type": "object", "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}}},
    "ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "TensorMetadata": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "parameters": {"type": "object"},
        },
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _ref("TensorMetadata")},
            "outputs": {"type": "array", "items": _ref("TensorMetadata")},
            "parameters": {
                "type": "object",
                "description": "ref, desired_version (what the ref points at now) and served_version",
            },
        },
    },
    "RequestInput": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": list(DATATYPES)},
            "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
            "data": {"type": "array", "items": {}},
        },
    },
    "RequestOutput": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}},
        },
    },
    "InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
            "inputs": {"type": "array", "items": _ref("RequestInput")},
            "outputs": {"type": "array", "items": _ref("RequestOutput")},
        },
    },
    "ResponseOutput": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "parameters": {"type": "object"},
            "data": {"type": "array", "items": {}},
        },
    },
    "InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _ref("ResponseOutput")},
        },
    },
    "V1Request": {
        "type": "object",
        "required": ["instances"],
        "properties": {"instances": {"type": "array", "items": {"type": "object"}}},
    },
    "V1Response": {
        "type": "object",
        "required": ["predictions"],
        "properties": {"predictions": {"type": "array", "items": {"type": "object"}}},
    },
    "RepositoryIndexRequest": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    "RepositoryModel": {
        "type": "object",
        "required": ["name", "state"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "state": {"type": "string", "enum": ["READY", "UNAVAILABLE", "LOADING"]},
            "reason": {"type": "string"},
        },
    },
}


def _infer_op(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": params,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _ref("InferenceRequest")},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "responses": {
                "200": {
                    "description": "Outputs, one tensor per declared output",
                    "content": {
                        "application/json": {"schema": _ref("InferenceResponse")},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                **_ERRORS,
            },
        }
    }


def _get(
    summary: str, schema: str, params: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    responses = {"200": _json_response(summary, _ref(schema)), **(extra or {})}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    return {"get": op}


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.0 description of every REST route."""
    not_ready = {"503": _json_response("Not ready", _ref("Ready"))}
    model_ready_errors = {
        "400": _json_response("Model not ready", _ref("ModelReady")),
        "404": _ERRORS["404"],
        "401": _ERRORS["401"],
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "parity model server",
            "version": parity.__version__,
            "description": "Open Inference Protocol V2 (with Triton binary tensors), KServe V1 records, "
            "model repository extension and Prometheus metrics.",
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v2/health/live": _get("Server live", "Live", None, not_ready),
            "/v2/health/ready": _get("Server ready", "Ready", None, not_ready),
            "/v2": _get("Server metadata", "ServerMetadata", None, {"401": _ERRORS["401"]}),
            "/v2/models/{name}": _get("Model metadata", "ModelMetadata", [_NAME], extra={"404": _ERRORS["404"]}),
            "/v2/models/{name}/versions/{version}": _get(
                "Model version metadata", "ModelMetadata", [_NAME, _VERSION], extra={"404": _ERRORS["404"]}
            ),
            "/v2/models/{name}/ready": _get("Model ready", "ModelReady", [_NAME], extra=model_ready_errors),
            "/v2/models/{name}/versions/{version}/ready": _get(
                "Model version ready", "ModelReady", [_NAME, _VERSION], extra=model_ready_errors
            ),
            "/v2/models/{name}/infer": _infer_op("Inference", [_NAME]),
            "/v2/models/{name}/versions/{version}/infer": _infer_op("Inference on a version", [_NAME, _VERSION]),
            "/v1/models/{name}:predict": {
                "post": {
                    "summary": "KServe V1 predict (records)",
                    "parameters": [_NAME],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("V1Request")}}},
                    "responses": {"200": _json_response("One prediction per instance", _ref("V1Response")), **_ERRORS},
                }
            },
            "/v2/repository/index": {
                "post": {
                    "summary": "Repository index",
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref("RepositoryIndexRequest")}},
                    },
                    "responses": {
                        "200": _json_response("Models", {"type": "array", "items": _ref("RepositoryModel")}),
                        **_ERRORS,
                    },
                }
            },
            "/v2/repository/models/{name}/load": {
                "post": {
                    "summary": "Load (or reload) a model",
                    "parameters": [_NAME],
                    "responses": {"200": _json_response("Loaded", {"type": "object"}), **_ERRORS},
                }
            },
            "/v2/repository/models/{name}/unload": {
                "post": {
                    "summary": "Unload a model",
                    "parameters": [_NAME],
                    "responses": {"200": _json_response("Unloaded", {"type": "object"}), **_ERRORS},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        "401": _ERRORS["401"],
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": _json_response("OpenAPI document", {"type": "object"}),
                        "401": _ERRORS["401"],
                    },
                }
            },
        },
    }
