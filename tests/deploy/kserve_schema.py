"""Validate KServe resources (YAML on stdin) against the KServe SDK's API model classes; run in the SDK's venv.

Each object is walked along the SDK's ``openapi_types`` / ``attribute_map`` (and the Kubernetes client's
models they reference): an unknown field, a wrong type or a missing required field is an error, and
each model is constructed with client-side validation on. Prints "ok KIND NAME" per valid object.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import kserve.models as kserve_models
import kubernetes.client.models as k8s_models
import yaml

KINDS = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
}
PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (object,),
    "datetime": (str,),
    "date": (str,),
    "bytes": (str,),
    "ResourceQuantity": (str, int, float),
}


def model_class(name: str) -> Any:
    """The SDK (or Kubernetes client) class named ``name``."""
    for module in (kserve_models, k8s_models):
        if hasattr(module, name):
            return getattr(module, name)
    raise SystemExit(f"schema error: no model class {name}")


def build(value: Any, kind: str, path: str) -> Any:
    """Check ``value`` against the declared type and return the model instance / value."""
    if match := re.fullmatch(r"[Ll]ist\[(.+)\]", kind):
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected a list, got {type(value).__name__}")
        return [build(v, match.group(1), f"{path}[{i}]") for i, v in enumerate(value)]
    if match := re.fullmatch(r"dict\((\w+), (.+)\)|Dict\[(\w+), (.+)\]", kind):
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected a mapping, got {type(value).__name__}")
        inner = match.group(2) or match.group(4)
        return {k: build(v, inner, f"{path}.{k}") for k, v in value.items()}
    if kind in PRIMITIVES:
        if kind != "object" and (
            not isinstance(value, PRIMITIVES[kind]) or (kind == "int" and isinstance(value, bool))
        ):
            raise ValueError(f"{path}: expected {kind}, got {value!r}")
        return value
    cls = model_class(kind)
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected an object ({kind}), got {type(value).__name__}")
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    kwargs = {}
    for key, item in value.items():
        if key not in by_json:
            raise ValueError(f"{path}: unknown field {key!r} for {kind}; known: {sorted(by_json)}")
        attr = by_json[key]
        kwargs[attr] = build(item, cls.openapi_types[attr], f"{path}.{key}")
    return cls(**kwargs)  # required fields and enums are checked by the generated constructors


def main() -> int:
    """Validate every document on stdin."""
    for doc in yaml.safe_load_all(sys.stdin):
        if doc is None:
            continue
        kind = KINDS.get((doc.get("apiVersion"), doc.get("kind")))
        if kind is None:
            continue
        try:
            build(doc, kind, doc["kind"])
        except (ValueError, TypeError) as exc:
            print(f"invalid {doc['kind']}: {exc}")
            return 1
        print(f"ok {doc['kind']} {doc['metadata']['name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
